"""The run context of one site: its components, its event bus, its folders.

Every component receives the events fired on its site, in build order. A
handler that raises is logged and the others still run (as in FLARE).
``fire_fed_event`` also hands the event to ``fed_sink``: on a client that
queues it for the server; on the server, events from clients arrive through
:meth:`SiteContext.deliver_fed_event` with the connection's identity as origin.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from ..compat.nvflare.apis.fl_constant import FLContextKey
from ..compat.shareables import flare_context
from ..errors import StorageError
from ..tracking.records import is_reserved_event
from ..types import Event, Signal

log = logging.getLogger(__name__)


class SiteContext:
    """What a component may ask of the site it runs on (implements :class:`flconfig.types.RunContext`)."""

    def __init__(
        self,
        site_name: str,
        job_id: str,
        workspace: Path,
        components: Mapping[str, Any],
        handlers: Sequence[Any],
        *,
        role: str = "client",
        comm: Any = None,
        fed_sink: Callable[[Event], None] | None = None,
        abort_signal: Signal | None = None,
        progress: Callable[[str], None] | None = None,
        device: str | None = None,
        client_sites: Sequence[str] = (),
        custom_dir: str | Path | None = None,
        run_dir: str | Path | None = None,
        outside_files: bool = True,
    ) -> None:
        self.site_name = site_name
        self.job_id = job_id
        self.workspace = Path(workspace)
        #: This site's folder for the run: ``WORKSPACE/SITE/JOB_ID`` unless given (a
        #: deployed job's folder).
        self.run_dir = Path(run_dir) if run_dir is not None else self.workspace / site_name / job_id
        self.run_dir.mkdir(parents=True, exist_ok=True)
        self.role = role
        #: On the server: the :class:`~flconfig.transport.server.CommServer` workflows send tasks with.
        self.comm = comm
        self.fed_sink = fed_sink
        self.abort_signal = abort_signal or Signal()
        self.device = device
        #: Every client site of this run, in launch order.
        self.client_sites = tuple(client_sites)
        #: The site's app's ``custom/`` folder (FLARE's ``get_app_custom_dir``), or None.
        self.custom_dir = Path(custom_dir) if custom_dir is not None else None
        #: Whether components may read files outside the job by absolute path
        #: (:func:`flconfig.files.outside_file`): the participant's choice.
        self.outside_files = outside_files
        #: Free-form run state shared between components (e.g. ``current_round``).
        self.props: dict[str, Any] = {}
        self._components = dict(components)
        self._handlers = list(handlers)
        self._progress = progress
        self.log = logging.getLogger(f"flconfig.{site_name}")
        #: Failures reported by components or background threads (see :meth:`report_failure`).
        self.failures: list[str] = []
        self._failure_lock = threading.Lock()

    def clear(self) -> None:
        """Drop this site's components, handlers and run state (a site released between
        tasks): what they hold is freed once nothing else refers to it, even where a
        component refers back to this context."""
        self._components.clear()
        self._handlers.clear()
        self.props.clear()

    @property
    def components(self) -> Mapping[str, Any]:
        return self._components

    def get_component(self, component_id: str) -> Any:
        """The component with this id, or None (FLARE's ``engine.get_component``)."""
        return self._components.get(component_id)

    def fire_event(self, event_type: str, data: Any = None) -> None:
        """Fire a local event: every component on this site sees it, nothing leaves the site."""
        self.dispatch(Event(event_type, data, "local", self.site_name))

    def fire_fed_event(self, event_type: str, data: Any = None) -> None:
        """Fire an event locally with federation scope and send it on to the server.

        If it cannot be sent (a record the server would refuse, the server gone
        for good), the site fails: the reason is logged and reported, and the
        job ends with an error instead of losing the event quietly.
        """
        event = Event(event_type, data, "fed", self.site_name)
        self.dispatch(event)
        if self.fed_sink is not None:
            try:
                self.fed_sink(event)
            except Exception as exc:
                self.report_failure(f"could not send event {event_type!r} to the server: {exc}")

    def report_failure(self, message: str) -> None:
        """Record that something this site must do failed (on any thread): the site's
        run then ends in failure with ``message``, and it is logged now."""
        with self._failure_lock:
            first = not self.failures
            self.failures.append(message)
        if first or len(self.failures) <= 5:
            log.error("%s: %s", self.site_name, message)

    def deliver_fed_event(self, event_type: str, data: Any, origin: str) -> None:
        """An event that arrived from site ``origin`` (the authenticated identity).

        A system event (``_start_run``, ``_end_run`` ...) from a peer is never
        delivered: lifecycle events are local to their site.
        """
        if is_reserved_event(event_type):
            log.warning("%s: refused the system event %r sent by site %s",
                        self.site_name, str(event_type)[:80], origin)
            return
        self.dispatch(Event(event_type, data, "fed", origin))

    def dispatch(self, event: Event) -> None:
        """Hand ``event`` to every handler. A :class:`~flconfig.errors.StorageError`
        (records not written) is raised after the other handlers ran, so whoever
        delivered the records keeps them; any other exception is logged."""
        storage: StorageError | None = None
        for handler in self._handlers:
            try:
                if getattr(type(handler), "_flare_component", False):  # FLARE's signature
                    self._flare_event(handler, event)
                    continue
                handler.handle_event(event, self)
            except StorageError as exc:
                storage = storage or exc
            except Exception:  # one broken handler must not stop the others
                log.exception(
                    "%s: %s failed to handle event %s",
                    self.site_name,
                    type(handler).__name__,
                    event.type,
                )
        if storage is not None:
            raise storage

    def _flare_event(self, handler: Any, event: Event) -> None:
        """``handler.handle_event(event_type, fl_ctx)``, as a FLARE component takes it."""

        handler.handle_event(event.type, flare_context(self, **{FLContextKey.EVENT_DATA: event.data}))

    def progress(self, message: str) -> None:
        """A line a person following the run wants to see (printed by the launcher)."""
        if self._progress is not None:
            self._progress(message)
        else:
            log.info(message)
