"""FLARE's ``StatisticsWriter``: where a statistics workflow saves the combined statistics."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class StatisticsWriter(FLComponent, ABC):
    """Saves the statistics the controller combined (``writer_id``); a job's own writer
    subclasses it."""

    @abstractmethod
    def save(self, data: dict, overwrite_existing: bool, fl_ctx: FLContext) -> None:  # type: ignore[type-arg]
        """Write ``data`` (``{feature: {statistic: {site or "Global": {dataset: value}}}}``)."""
