"""FLARE's ``Filter``: changes task data or results on their way."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .fl_component import FLComponent
from .fl_context import FLContext
from .shareable import Shareable


class Filter(FLComponent, ABC):
    """A filter of the job's code in ``task_data_filters``/``task_result_filters``."""

    @abstractmethod
    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        """The filtered Shareable."""
