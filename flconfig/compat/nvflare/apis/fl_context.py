"""FLARE's ``FLContext``: what a FLARE component asks of its site, answered by flconfig's site."""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

from .client import Client
from .fl_constant import FLContextKey, ReservedKey


class _Workspace:
    """FLARE's ``Workspace`` of a site: its folders."""

    def __init__(self, site: Any) -> None:
        self._site = site

    def get_root_dir(self) -> str:
        return str(self._site.workspace)

    def get_run_dir(self, job_id: str | None = None) -> str:
        """The site's run folder (``WORKSPACE/<site>/<job id>``)."""
        return str(self._site.run_dir)

    def get_app_dir(self, job_id: str | None = None) -> str:
        """The job's app folder (the one holding ``config/`` and ``custom/``)."""
        custom = getattr(self._site, "custom_dir", None)
        return str(Path(custom).parent) if custom is not None else str(self._site.run_dir)

    def get_app_custom_dir(self, job_id: str | None = None) -> str:
        custom = getattr(self._site, "custom_dir", None)
        return str(custom) if custom is not None else ""

    def get_app_config_dir(self, job_id: str | None = None) -> str:
        return str(Path(self.get_app_dir(job_id)) / "config")


def _as_is(component: Any, site: Any) -> Any:
    return component


#: How the engine shows a site's component to FLARE code (``engine.get_component``): flconfig's
#: adapters install theirs when imported (:mod:`flconfig.compat.component_adapter`, which every
#: run that builds components imports); until then, as it is.
_component_view: Callable[[Any, Any], Any] = _as_is


def show_components_with(view: Callable[[Any, Any], Any]) -> None:
    """Install ``view(component, site)``: what FLARE code gets for a site's component. The
    adapters' hook: FLARE's classes here sit below the adapters that wrap them and never
    import them."""
    global _component_view
    _component_view = view


class _Engine:
    """FLARE's engine as a component sees it: the site's components, folders and events."""

    def __init__(self, site: Any) -> None:
        self._site = site

    def get_component(self, component_id: str) -> Any:
        """The site's component (the job's own object, not flconfig's wrapper of it), or None."""

        return _component_view(self._site.get_component(component_id), self._site)

    def get_all_components(self) -> dict[str, Any]:
        return {key: _component_view(value, self._site) for key, value in self._site.components.items()}

    def get_workspace(self) -> _Workspace:
        return _Workspace(self._site)

    def get_clients(self) -> list[Any]:
        """The connected sites (on the server), as FLARE ``Client`` objects."""

        comm = getattr(self._site, "comm", None)
        alive = list(comm.alive_sites()) if comm is not None else []
        order = [s for s in getattr(self._site, "client_sites", ()) if s in alive]
        return [Client(name) for name in order + [s for s in alive if s not in order]]

    def fire_event(self, event_type: str, fl_ctx: FLContext) -> None:
        self._site.fire_event(event_type, fl_ctx.get_prop(FLContextKey.EVENT_DATA))

    @contextlib.contextmanager
    def new_context(self) -> Iterator[FLContext]:
        yield FLContext(self._site)


def _sticky(site: Any) -> dict[str, Any]:
    """The sticky FLContext properties of ``site`` (kept with its run state)."""
    props = getattr(site, "props", None)
    if not isinstance(props, dict):
        return {}
    store = props.get("__flare_sticky_props__")
    if not isinstance(store, dict):
        store = props["__flare_sticky_props__"] = {}
    return store


class FLContext:
    """Properties (``get_prop``/``set_prop``) and the site behind them (``get_engine()``)."""

    def __init__(self, site: Any = None) -> None:
        self._site = site
        self._props: dict[str, Any] = {}
        self._public: set[str] = set()
        if site is not None:
            custom = getattr(site, "custom_dir", None)
            self._props.update({
                ReservedKey.IDENTITY_NAME: site.site_name,
                FLContextKey.CLIENT_NAME: site.site_name,
                FLContextKey.CURRENT_RUN: site.job_id,
                FLContextKey.CURRENT_JOB_ID: site.job_id,
                FLContextKey.WORKSPACE_ROOT: str(site.workspace),
                FLContextKey.APP_ROOT: str(Path(custom).parent) if custom is not None else str(site.run_dir),
                FLContextKey.WORKSPACE_OBJECT: _Workspace(site),
                FLContextKey.RUN_ABORT_SIGNAL: getattr(site, "abort_signal", None),
                ReservedKey.ENGINE: _Engine(site),
            })
            self._props.update(_sticky(site))

    def get_prop(self, key: str, default: Any = None) -> Any:
        return self._props.get(key, default)

    def set_prop(self, key: str, value: Any, private: bool = True, sticky: bool = True) -> bool:
        """Set ``key``; a sticky one (FLARE's default) is also in every FLContext of this
        site made after, as FLARE's engine carries sticky properties on; a public one
        (``private=False``) set by a workflow's task callback goes to the site with the task,
        as the peer context's property (FLARE's rule)."""
        self._props[key] = value
        if self._site is not None:
            store = _sticky(self._site)
            if sticky:
                store[key] = value
            else:
                store.pop(key, None)
        if private:
            self._public.discard(key)
        else:
            self._public.add(key)
        return True

    def get_public_props(self) -> dict[str, Any]:
        """The properties set with ``private=False``."""
        return {key: self._props[key] for key in self._public if key in self._props}

    def remove_prop(self, key: str) -> None:
        self._props.pop(key, None)

    def get_all_public_props(self) -> dict[str, Any]:
        return dict(self._props)

    def get_identity_name(self, default: str = "") -> str:
        return self._props.get(ReservedKey.IDENTITY_NAME, default)

    def get_job_id(self, default: str = "") -> str:
        return self._props.get(FLContextKey.CURRENT_JOB_ID, default)

    def get_run_number(self) -> Any:
        return self.get_job_id()

    def get_engine(self) -> _Engine | None:
        return self._props.get(ReservedKey.ENGINE)

    def get_run_abort_signal(self) -> Any:
        return self._props.get(FLContextKey.RUN_ABORT_SIGNAL)

    def get_peer_context(self) -> FLContext | None:
        """The sender's public properties of the current task (``current_round`` ...), or None."""
        return self._props.get(ReservedKey.PEER_CTX)

    @property
    def site(self) -> Any:
        """The flconfig site behind this context (flconfig's addition)."""
        return self._site
