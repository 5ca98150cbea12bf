"""The plain objects components exchange at run time: models, events, contexts.

Nothing here imports torch, tensorboard or grpc.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol


def is_torch_tensor(value: object) -> bool:
    """Whether ``value`` is a torch tensor, told without importing torch."""
    return type(value).__module__.startswith("torch") and hasattr(value, "detach")


class ReturnCode:
    """Result codes a site can send back with a task result (FLARE's names)."""

    OK = "OK"
    EXECUTION_EXCEPTION = "EXECUTION_EXCEPTION"
    TASK_UNKNOWN = "TASK_UNKNOWN"
    TASK_UNSUPPORTED = "TASK_UNSUPPORTED"
    EMPTY_RESULT = "EMPTY_RESULT"
    TASK_ABORTED = "TASK_ABORTED"


@dataclass
class FLModel:
    """What travels between server and sites: named arrays plus metadata.

    ``params`` maps parameter names to numpy arrays (or tensors on a site);
    ``meta`` holds plain values such as ``NUM_STEPS_CURRENT_ROUND``;
    ``metrics`` holds validation results; ``rc`` is a :class:`ReturnCode`.
    """

    params: dict[str, Any] = field(default_factory=dict)
    meta: dict[str, Any] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)
    params_type: str = "FULL"
    rc: str = ReturnCode.OK

    @classmethod
    def error(cls, rc: str, message: str = "") -> FLModel:
        return cls(rc=rc, meta={"error": message} if message else {})


class Signal:
    """A flag one thread raises to ask others to stop (FLARE's abort signal)."""

    def __init__(self) -> None:
        self._event = threading.Event()
        self.reason = ""

    def trigger(self, reason: str = "") -> None:
        self.reason = reason
        self._event.set()

    @property
    def triggered(self) -> bool:
        return self._event.is_set()

    def wait(self, timeout: float | None = None) -> bool:
        return self._event.wait(timeout)


@dataclass(frozen=True)
class Event:
    """Something that happened at a site.

    ``scope`` is ``"local"`` (stays on its site) or ``"fed"`` (crossed, or will
    cross, to the server). ``origin`` is the site that fired it: for events
    that came over the network it is the authenticated identity of the
    connection, never a field of the payload.
    """

    type: str
    data: Any = None
    scope: str = "local"
    origin: str = ""


class RunContext(Protocol):
    """What a component may ask of the site it runs on."""

    site_name: str
    job_id: str
    workspace: Path
    run_dir: Path

    def get_component(self, component_id: str) -> Any: ...

    @property
    def components(self) -> Mapping[str, Any]: ...

    def fire_event(self, event_type: str, data: Any = None) -> None: ...

    def fire_fed_event(self, event_type: str, data: Any = None) -> None: ...


class TaskSender(Protocol):
    """How a workflow on the server sends tasks to sites and gathers their results (the
    server end of the link, :class:`flconfig.transport.server.CommServer`)."""

    def alive_sites(self) -> list[str]: ...

    def broadcast_and_wait(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None,
        min_responses: int,
        wait_time_after_min_received: float = 0,
        timeout: float = 0,
        abort: Signal | None = None,
        on_result: Callable[[str, FLModel], None] | None = None,
    ) -> dict[str, FLModel]: ...

    def send_and_wait(self, task_name: str, data: FLModel, site: str, timeout: float = 0) -> FLModel: ...


class ServerContext(RunContext, Protocol):
    """What a workflow may ask of the server it runs on, beyond :class:`RunContext`."""

    #: Free-form run state shared between components (e.g. ``current_round``).
    props: dict[str, Any]
    #: Every client site of this run, in launch order.
    client_sites: tuple[str, ...]

    @property
    def comm(self) -> TaskSender: ...

    def progress(self, message: str) -> None: ...


class EventType:
    """The run-lifecycle events every component can receive."""

    ABOUT_TO_START_RUN = "_about_to_start_run"
    START_RUN = "_start_run"
    ABOUT_TO_END_RUN = "_about_to_end_run"
    END_RUN = "_end_run"
    ABORT_TASK = "_abort_task"
    BEFORE_TASK_EXECUTION = "_before_task_execution"
    AFTER_TASK_EXECUTION = "_after_task_execution"
    ROUND_STARTED = "_round_started"
    ROUND_DONE = "_round_done"
