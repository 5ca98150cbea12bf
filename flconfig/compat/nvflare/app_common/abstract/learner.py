"""FLARE's ``Learner``: train, validate and hand over a model, on Shareables."""

from __future__ import annotations

from ...apis.fl_component import FLComponent
from ...apis.fl_constant import ReturnCode
from ...apis.fl_context import FLContext
from ...apis.shareable import Shareable, make_reply
from ...apis.signal import Signal


class Learner(FLComponent):
    """A FLARE Learner, driven by flconfig's LearnerExecutor (the tasks arrive as Shareables
    holding a DXO, the results go back the same way)."""

    def initialize(self, parts: dict, fl_ctx: FLContext) -> None:  # type: ignore[type-arg]
        """Called once before the first task, with the site's components by id."""

    def train(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def get_model_for_validation(self, model_name: str, fl_ctx: FLContext) -> Shareable:
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def validate(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return make_reply(ReturnCode.TASK_UNKNOWN)

    def abort(self, fl_ctx: FLContext) -> None:
        """Asked from another thread to stop the current task."""

    def finalize(self, fl_ctx: FLContext) -> None:
        """Called once at the end of the run."""
