"""FLARE's ``LearnablePersistor``: loads and saves the global learnable."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class LearnablePersistor(FLComponent, ABC):
    """A persistor of the job's code (a workflow's ``persistor_id``)."""

    @abstractmethod
    def load(self, fl_ctx: FLContext) -> Any:
        """The initial learnable (a ModelLearnable)."""

    @abstractmethod
    def save(self, learnable: Any, fl_ctx: FLContext) -> None:
        """Persist ``learnable``."""
