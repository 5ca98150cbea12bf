"""FLARE's ``FLComponentWrapper``: a component that keeps its task's context on itself.

ModelLearnerExecutor sets the attributes before each task (``fl_ctx``, ``shareable``,
``abort_signal``, ``site_name``, ``job_id``, ``app_root``, ``current_round`` ...), so
the learner's methods take no context arguments.
"""

from __future__ import annotations

from typing import Any

from ...apis.fl_component import FLComponent
from ...apis.fl_exception import TaskExecutionError


class FLComponentWrapper(FLComponent):
    """The base of FLARE's ModelLearner: its task's context as attributes, logging without
    an ``fl_ctx`` argument."""

    STATE = None

    def __init__(self) -> None:
        super().__init__()
        self.engine: Any = None
        self.fl_ctx: Any = None
        self.workspace: Any = None
        self.shareable: Any = None
        self.args: Any = None
        self.site_name: Any = None
        self.job_id: Any = None
        self.app_root: Any = None
        self.job_root: Any = None
        self.workspace_root: Any = None
        self.abort_signal: Any = None
        self.current_round: Any = 0
        self.total_rounds: Any = 0

    def is_aborted(self) -> bool:
        """Whether the running task was asked to stop."""
        return bool(self.abort_signal and self.abort_signal.triggered)

    def get_shareable_header(self, key: str, default: Any = None) -> Any:
        """A header of the task's Shareable (``default`` without one)."""
        if not self.shareable:
            return default
        return self.shareable.get_header(key, default)

    def get_context_prop(self, key: str, default: Any = None) -> Any:
        """A property of the task's FLContext (``default`` without one)."""
        if not self.fl_ctx:
            return default
        return self.fl_ctx.get_prop(key, default)

    def get_component(self, component_id: str) -> Any:
        """The site's component with this id, or None (FLARE: no error for a missing one)."""
        return self.engine.get_component(component_id) if self.engine else None

    def debug(self, msg: str) -> None:
        self.log_debug(self.fl_ctx, msg)

    def info(self, msg: str) -> None:
        self.log_info(self.fl_ctx, msg)

    def warning(self, msg: str) -> None:
        self.log_warning(self.fl_ctx, msg)

    def error(self, msg: str) -> None:
        self.log_error(self.fl_ctx, msg)

    def exception(self, msg: str) -> None:
        self.log_exception(self.fl_ctx, msg)

    def critical(self, msg: str) -> None:
        self.log_critical(self.fl_ctx, msg)

    def stop_task(self, reason: str) -> None:
        """End the running task with ``reason`` (its result is an EXECUTION_EXCEPTION)."""
        self.log_error(self.fl_ctx, f"Task stopped: {reason}")
        raise TaskExecutionError(reason)

    def initialize(self) -> None:
        """Called once, before the first task."""

    def abort(self) -> None:
        """Called from another thread to stop the running task."""

    def finalize(self) -> None:
        """Called once at the end of the run."""

    def event(self, event_type: str) -> None:
        """Fire ``event_type`` on the site."""
        self.fire_event(event_type, self.fl_ctx)

    def panic(self, reason: str) -> None:
        """Fail the site's run with ``reason``."""
        self.system_panic(reason, self.fl_ctx)
