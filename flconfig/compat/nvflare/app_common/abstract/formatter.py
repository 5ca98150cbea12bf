"""FLARE's ``Formatter``: turns cross-site results into text."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class Formatter(FLComponent, ABC):
    """A formatter of the job's code (CrossSiteModelEval's ``formatter_id``, accepted; flconfig
    writes ``cross_val_results.json`` itself)."""

    @abstractmethod
    def format(self, fl_ctx: FLContext) -> str:
        """The results as text."""
