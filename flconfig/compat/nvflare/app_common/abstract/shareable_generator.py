"""FLARE's ``ShareableGenerator``: the global model to task data, and the aggregate back."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext
from ...apis.shareable import Shareable


class ShareableGenerator(FLComponent, ABC):
    """A shareable generator of the job's code (a workflow's ``shareable_generator_id``);
    ``fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)`` is the current global ModelLearnable."""

    @abstractmethod
    def learnable_to_shareable(self, model: Any, fl_ctx: FLContext) -> Shareable:
        """The task data for the global ``model`` (a ModelLearnable)."""

    @abstractmethod
    def shareable_to_learnable(self, shareable: Shareable, fl_ctx: FLContext) -> Any:
        """The next global ModelLearnable from the aggregate."""
