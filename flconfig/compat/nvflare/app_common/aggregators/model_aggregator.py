"""FLARE's ``ModelAggregator``: an aggregator of FLModels, for FedAvg's ``aggregator``."""

from __future__ import annotations

from abc import abstractmethod
from typing import Any

from ...apis.event_type import EventType
from ...apis.fl_context import FLContext
from ...apis.shareable import Shareable
from ..abstract.aggregator import Aggregator
from ..abstract.fl_model import FLModel
from ..utils.fl_model_utils import FLModelUtils


class ModelAggregator(Aggregator):
    """Combines the FLModels the sites send in a round (FLARE's ``ModelAggregator``).

    FedAvg (``aggregator``, a nested spec) calls :meth:`accept_model` with each site's
    result (its site in ``meta["client_name"]``), :meth:`aggregate_model` once the round's
    results are in and :meth:`reset_stats` before the next round; ``self.fl_ctx`` is the
    server's context of the call. As an ``aggregator_id`` of ScatterAndGather it takes
    Shareables like any FLARE Aggregator.
    """

    def __init__(self) -> None:
        super().__init__()
        self.fl_ctx: Any = None

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        if event_type == EventType.START_RUN:
            self.fl_ctx = fl_ctx

    @abstractmethod
    def accept_model(self, model: FLModel) -> None:
        """Take one site's result (add it to sums, counts ...)."""

    @abstractmethod
    def aggregate_model(self) -> FLModel:
        """The round's aggregate."""

    @abstractmethod
    def reset_stats(self) -> None:
        """Forget the round's results."""

    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        self.fl_ctx = fl_ctx
        self.accept_model(FLModelUtils.from_shareable(shareable, fl_ctx))
        return True

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        self.fl_ctx = fl_ctx
        return FLModelUtils.to_shareable(self.aggregate_model())

    def reset(self, fl_ctx: FLContext) -> None:
        self.fl_ctx = fl_ctx
        self.reset_stats()

    def info(self, message: str) -> None:
        self.log_info(self.fl_ctx, message)

    def warning(self, message: str) -> None:
        self.log_warning(self.fl_ctx, message)

    def error(self, message: str) -> None:
        self.log_error(self.fl_ctx, message)

    def exception(self, message: str) -> None:
        self.log_exception(self.fl_ctx, message)
