"""FLARE's ``nvflare.job_config.api``: ``FedJob``, the Job API's job.

Components are added to targets — ``"server"``, a site name, or ``"@ALL"`` (every
client) — with :meth:`FedJob.to`; :meth:`FedJob.export_job` writes the job folder FLARE
would write (one ``app`` for the server and ``@ALL``, else ``app_server`` and one
``app_<site>`` per site), and :meth:`FedJob.simulator_run` checks it and runs it with
flconfig's launcher. Components become config entries as described in
:mod:`flconfig.compat.jobapi.export`.
"""

from __future__ import annotations

import os
import re
import uuid
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...jobapi.checking import say_problems
from ...jobapi.export import Authored, Provenance
from ...jobapi.running import JobFailed, simulate
from ...jobapi.standins import Standin, authored_at
from ...jobapi.writer import staged, write_job
from ...nvflare.apis.executor import Executor
from ...nvflare.apis.filter import Filter
from ...nvflare.apis.impl.controller import Controller
from ...nvflare.app_common.workflows.base_model_controller import BaseModelController
from .defs import ALL_SITES, SERVER_SITE_NAME, FilterType, JobTargetType

__all__ = ["ClientApp", "FedApp", "FedJob", "JobCtx", "ServerApp", "validate_target_name"]

_SPECIAL_CHARACTERS = '"!@#$%^&*()+?=,<>/'
_JOB_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")


def validate_target_name(target: str) -> None:
    """A target is ``"server"``, ``"@ALL"`` or a site name without special characters."""
    if not target or not isinstance(target, str):
        raise ValueError("Must provide a valid target name")
    if target != ALL_SITES and any(c in _SPECIAL_CHARACTERS for c in target):
        raise ValueError(f"target {target} name contains invalid character")


@dataclass
class JobCtx:
    """What :meth:`FedJob.to` passes an object's ``add_to_fed_job``: the object, its target
    and the id asked for."""

    obj: Any
    target: str
    comp_id: str | None
    #: Where the job script added it.
    site: tuple[str, int] | None = None


@dataclass(eq=False)
class FedApp:
    """What one target gets: workflows (server), executors (clients), components, filters,
    top-level params and files."""

    target: str
    workflows: list[tuple[str, Any, Authored]] = field(default_factory=list)
    components: list[tuple[str, Any, Authored]] = field(default_factory=list)
    executors: list[tuple[list[str], Any, Authored]] = field(default_factory=list)
    #: section ("task_data_filters" | "task_result_filters") -> [(tasks, filters, where)]
    filters: dict[str, list[tuple[list[str], list[Any], Authored]]] = field(default_factory=dict)
    params: dict[str, Any] = field(default_factory=dict)
    #: Scripts and folders for custom/: (path as given, where).
    scripts: list[tuple[str, Authored]] = field(default_factory=list)
    folders: list[tuple[str, Authored]] = field(default_factory=list)
    #: Files for custom/ or config/: (source, dest_dir, "custom" | "config").
    file_sources: list[tuple[str, str | None, str]] = field(default_factory=list)
    _ids: dict[int, str] = field(default_factory=dict)
    _used: set[str] = field(default_factory=set)

    @property
    def is_server(self) -> bool:
        return self.target == SERVER_SITE_NAME

    def get_app_config(self) -> FedApp:
        return self

    def add_component(self, component: Any, comp_id: str | None = None, where: Authored | None = None) -> str:
        """Add ``component`` (once: the same object again gets its id back)."""
        known = self._ids.get(id(component))
        if known is not None:
            return known
        final = self.unique_id(comp_id or "component")
        self._ids[id(component)] = final
        self.components.append((final, component, where or Authored()))
        return final

    def unique_id(self, base: str) -> str:
        """``base``, or FLARE's next free variant of it (``component1``, ``receiver1`` ...)."""
        name = base
        while name in self._used:
            digits = re.search(r"\d+", name)
            name = name.replace(digits.group(0), str(int(digits.group(0)) + 1)) if digits else name + "1"
        self._used.add(name)
        return name


class ServerApp(FedApp):
    """The server's app."""

    def __init__(self) -> None:
        super().__init__(SERVER_SITE_NAME)


class ClientApp(FedApp):
    """A client target's app (``@ALL`` or one site)."""

    def __init__(self, target: str = ALL_SITES) -> None:
        super().__init__(target)


def _kinds(obj: Any) -> frozenset[str]:
    """What ``obj`` is, as the registry would say: executor, workflow, filter ... ."""
    if isinstance(obj, Standin):
        return obj.KINDS | {obj.KIND}

    kinds = set()
    if isinstance(obj, Executor):
        kinds.add("executor")
    if isinstance(obj, (Controller, BaseModelController)):
        kinds.add("workflow")
    if isinstance(obj, Filter):
        kinds.add("filter")
    return frozenset(kinds)


class FedJob:
    """FLARE's ``FedJob`` (see the module docstring)."""

    def __init__(self, name: str = "fed_job", min_clients: int = 1, mandatory_clients: list[str] | None = None,
                 meta_props: dict[str, Any] | None = None, fail_fast: bool = False) -> None:
        if not isinstance(name, str) or not _JOB_NAME.fullmatch(name):
            raise ValueError(f"invalid job name {name!r}: a letter or digit, then letters, digits, '.', '_' "
                             "or '-'")
        if not isinstance(min_clients, int) or isinstance(min_clients, bool) or min_clients <= 0:
            raise ValueError(f"min_clients must be a positive int, got {min_clients!r}")
        if meta_props and "name" in meta_props:
            raise ValueError("meta_props may not set 'name': it is the job's name")
        self.name = name
        self.min_clients = min_clients
        self.mandatory_clients = list(mandatory_clients or [])
        self.meta_props: dict[str, Any] = dict(meta_props or {})
        self.resource_specs: dict[str, dict[str, Any]] = {}
        self.fail_fast = fail_fast
        self.clients: list[str] = []
        self._apps: dict[str, FedApp] = {}
        self._pending_ids: dict[str, Any] = {}
        self._app_packages: list[str] = []
        self.comp_ids: dict[str, str] = {}
        #: Where the job script made the job.
        self.site = authored_at(2)

    # FLARE's FedJobConfig (``job.job``): recipes read and set its meta and resource specs.
    @property
    def job(self) -> FedJob:
        return self

    def add_resource_spec(self, site: str, spec: dict[str, Any]) -> None:
        self.resource_specs[site] = spec

    # -- adding ------------------------------------------------------------------------------

    def _app(self, target: str) -> FedApp:
        validate_target_name(target)
        app = self._apps.get(target)
        if app is None:
            app = self._apps[target] = ServerApp() if target == SERVER_SITE_NAME else ClientApp(target)
            if target != SERVER_SITE_NAME:
                if target not in self.clients:
                    self.clients.append(target)
                self.set_up_client(target)
        return app

    def set_up_client(self, target: str) -> None:
        """A hook run when a client target is first used (BaseFedJob adds ConvertToFedEvent)."""

    def to(self, obj: Any, target: str, id: str | None = None, **kwargs: Any) -> Any:  # noqa: A002 - FLARE's name
        """Add ``obj`` to ``target``: a component, a controller (server) or an executor or
        filter (``tasks=``, ``filter_type=``), a script or folder for ``custom/`` (a path),
        top-level config params (a dict), or anything with ``add_to_fed_job``."""
        if obj is None or (not isinstance(obj, (int, float)) and not obj):
            raise ValueError("must provide a valid object to add to the job")
        if isinstance(obj, FedApp):
            raise ValueError("add components to the job, not apps")
        site = authored_at(2)
        where = Authored(*site) if site else Authored()
        app = self._app(target)
        if isinstance(obj, str):
            if os.path.isdir(obj):
                app.folders.append((obj, where))
            else:
                if not os.path.isabs(obj) and not os.path.exists(obj):
                    raise ValueError(f"{obj} does not exist: a script added to the job must exist "
                                     "(relative to the working folder)")
                app.scripts.append((obj, where))
            return None
        if isinstance(obj, Mapping):
            app.params.update(obj)
            return None
        ctx = JobCtx(obj, target, id, site)
        adder = getattr(obj, "add_to_fed_job", None)
        if callable(adder) and not isinstance(obj, Standin):
            result = adder(self, ctx, **kwargs)
        else:
            result = self._add_by_kind(obj, ctx, **kwargs)
        self._add_referenced(app, obj, where)
        return result

    def _add_by_kind(self, obj: Any, ctx: JobCtx, **kwargs: Any) -> Any:
        kinds = _kinds(obj)
        if "executor" in kinds:
            self.check_kwargs(kwargs, {"tasks": False})
            self.add_executor(obj, kwargs.get("tasks") or ["*"], ctx)
            return None
        if "workflow" in kinds and ctx.target == SERVER_SITE_NAME:
            self.check_kwargs(kwargs, {})
            return self.add_controller(obj, ctx)
        if "filter" in kinds and "filter_type" in kwargs:
            self.check_kwargs(kwargs, {"filter_type": True, "tasks": False})
            self.add_filter(obj, kwargs["filter_type"], kwargs.get("tasks") or ["*"], ctx)
            return None
        if "filter" in kinds:
            raise ValueError("a filter needs filter_type=FilterType.TASK_DATA or FilterType.TASK_RESULT")
        self.check_kwargs(kwargs, {})
        return self.add_component(ctx.comp_id, obj, ctx)

    def to_server(self, obj: Any, id: str | None = None, **kwargs: Any) -> Any:  # noqa: A002
        """:meth:`to` the server (not an executor)."""
        if "executor" in _kinds(obj):
            raise ValueError("an executor runs on the client sites, not on the server")
        return self.to(obj, SERVER_SITE_NAME, id, **kwargs)

    def to_clients(self, obj: Any, id: str | None = None, **kwargs: Any) -> Any:  # noqa: A002
        """:meth:`to` every client site (``@ALL``; not a controller)."""
        if "workflow" in _kinds(obj) and not isinstance(obj, str):
            raise ValueError("a controller runs on the server, not on the client sites")
        return self.to(obj, ALL_SITES, id, **kwargs)

    def as_id(self, obj: Any) -> str:
        """An id for ``obj`` to be named by (``aggregator_id=job.as_id(agg)``); ``obj`` is
        added, with that id, to the target of whatever names it."""
        ref = str(uuid.uuid4())
        self._pending_ids[ref] = obj
        return ref

    def _add_referenced(self, app: FedApp, obj: Any, where: Authored) -> None:
        if not self._pending_ids:
            return
        args = obj._flconfig_args if isinstance(obj, Standin) else getattr(obj, "__dict__", {})
        for value in list(args.values()):
            if isinstance(value, str) and value in self._pending_ids:
                referenced = self._pending_ids.pop(value)
                if referenced not in (c for _, c, _ in app.components):
                    app._ids[id(referenced)] = value
                    app._used.add(value)
                    app.components.append((value, referenced, where))
                self._add_referenced(app, referenced, where)

    # -- for add_to_fed_job authors ------------------------------------------------------------

    def add_component(self, comp_id: str | None, obj: Any, ctx: JobCtx) -> str:
        return self._app(ctx.target).add_component(obj, comp_id, Authored.of(obj, ctx.site))

    def add_controller(self, obj: Any, ctx: JobCtx) -> str:
        app = self._app(ctx.target)
        if not app.is_server:
            return self.add_component(ctx.comp_id, obj, ctx)
        known = app._ids.get(id(obj))
        if known is not None:
            return known
        final = app.unique_id(ctx.comp_id or "controller")
        app._ids[id(obj)] = final
        app.workflows.append((final, obj, Authored.of(obj, ctx.site)))
        return final

    def add_executor(self, obj: Any, tasks: list[str], ctx: JobCtx) -> None:
        app = self._app(ctx.target)
        if app.is_server:
            raise ValueError("an executor runs on the client sites, not on the server")
        app.executors.append((list(tasks), obj, Authored.of(obj, ctx.site)))

    def add_filter(self, obj: Any, filter_type: FilterType, tasks: list[str], ctx: JobCtx) -> None:
        app = self._app(ctx.target)
        kind = FilterType(filter_type)
        incoming = (kind == FilterType.TASK_RESULT)
        # A client's TASK_DATA filters the data it receives; the server's, the data it sends.
        section = "task_result_filters" if incoming else "task_data_filters"
        chains = app.filters.setdefault(section, [])
        where = Authored.of(obj, ctx.site)
        for chain_tasks, filters, _ in chains:
            if sorted(chain_tasks) == sorted(tasks):
                filters.append(obj)
                return
            if set(chain_tasks) & set(tasks):
                raise RuntimeError(f"filters for tasks {sorted(tasks)} overlap the filters for "
                                   f"{sorted(chain_tasks)}: give each set of tasks its own filters")
        chains.append((list(tasks), [obj], where))

    def add_resources(self, resources: list[str], ctx: JobCtx) -> None:
        for resource in resources:
            self.to(resource, ctx.target)

    def add_file_source(self, src_path: str, dest_dir: str | None, app_folder_type: str | None,
                        ctx: JobCtx) -> None:
        self._app(ctx.target).file_sources.append((src_path, dest_dir, app_folder_type or "custom"))

    def add_params(self, args: dict[str, Any], ctx: JobCtx) -> None:
        self._app(ctx.target).params.update(args)

    def add_file_to(self, src_path: str, target: str, dest_dir: str | None = None,
                    app_folder_type: str | None = None) -> None:
        """A file or folder copied into ``target``'s ``custom/`` (or ``config/``) at export."""
        if app_folder_type not in (None, "custom", "config"):
            raise ValueError(f"app_folder_type must be 'custom' or 'config', not {app_folder_type!r}")
        if not os.path.exists(src_path):
            raise ValueError(f"{src_path} does not exist")
        self._app(target).file_sources.append((src_path, dest_dir, app_folder_type or "custom"))

    def add_file_to_server(self, src_path: str, dest_dir: str | None = None,
                           app_folder_type: str | None = None) -> None:
        self.add_file_to(src_path, SERVER_SITE_NAME, dest_dir, app_folder_type)

    def add_file_to_clients(self, src_path: str, dest_dir: str | None = None,
                            app_folder_type: str | None = None) -> None:
        self.add_file_to(src_path, ALL_SITES, dest_dir, app_folder_type)

    def set_app_packages(self, app_packages: list[str]) -> None:
        """Packages FLARE would not copy into custom/ (flconfig never copies installed ones)."""
        self._app_packages = list(app_packages)

    @staticmethod
    def check_kwargs(args_to_check: dict[str, Any], args_expected: dict[str, bool]) -> None:
        """Refuse unknown keyword arguments and missing required ones (``name -> required``)."""
        unknown = [k for k in args_to_check if k not in args_expected]
        if unknown:
            raise ValueError(f"unexpected keyword argument(s): {', '.join(unknown)}")
        missing = [k for k, required in args_expected.items() if required and k not in args_to_check]
        if missing:
            raise ValueError(f"missing keyword argument(s): {', '.join(missing)}")

    # -- writing ---------------------------------------------------------------------------------

    def export_job(self, job_root: str) -> str:
        """Write the job folder ``job_root/<name>/``; its path."""

        folder, provenance, problems = self.write(Path(job_root))
        say_problems(problems)
        return str(folder)

    def write(self, job_root: Path) -> tuple[Path, dict[str, Provenance], list[Any]]:
        """Write the job folder; ``(folder, provenance by config file, export problems)``."""

        return write_job(self, job_root)

    def simulator_run(self, workspace: str, n_clients: int | None = None, clients: list[str] | None = None,
                      threads: int | None = None, gpu: str | None = None, log_config: str | None = None) -> int:
        """Check the job, then run it with flconfig's launcher in ``workspace``; the exit code
        (a job that fails raises RuntimeError, as FLARE does)."""

        if clients and n_clients:
            raise ValueError("give n_clients or clients, not both")
        named = [t for t in self.clients if t != ALL_SITES]
        if named and n_clients:
            raise ValueError("the job names its sites: n_clients cannot be given")
        if ALL_SITES in self.clients and not (n_clients or clients):
            raise ValueError("the job's clients are @ALL: give n_clients (or clients)")
        with staged(self) as (folder, provenance, problems):
            code = simulate(folder, provenance, problems, Path(workspace), clients=clients or named or None,
                            num_clients=n_clients, threads=threads, gpu=gpu)
        if code != 0:
            raise JobFailed(f"the job {self.name} failed (exit code {code}); see above")
        return code

    def target_type(self, target: str) -> str:
        return JobTargetType.get_target_type(target)
