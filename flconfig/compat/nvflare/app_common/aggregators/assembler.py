"""FLARE's ``Assembler``: the algorithm-specific half of CollectAndAssembleAggregator."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...apis.dxo import DXO
from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class Assembler(FLComponent, ABC):
    """Assembles the results CollectAndAssembleAggregator collected in a round into the
    next global model (FLARE's ``Assembler``; a job's k-means or SVM step subclasses it).

    The aggregator stores ``get_model_params(dxo)`` of each site's result in
    :attr:`collection` (by site name), calls :meth:`assemble` once the round's results
    are in, and :meth:`reset` after.
    """

    def __init__(self, data_kind: str) -> None:
        """
        Args:
            data_kind: the DataKind the site results must have (``WEIGHTS`` ...).
        """
        super().__init__()
        self.expected_data_kind = data_kind
        self._collection: dict = {}  # type: ignore[type-arg]

    def initialize(self, fl_ctx: FLContext) -> None:
        """Called once before the first result."""

    @property
    def collection(self) -> dict:  # type: ignore[type-arg]
        """What the aggregator collected this round: ``{site: get_model_params(dxo)}``."""
        return self._collection

    def get_expected_data_kind(self) -> str:
        return self.expected_data_kind

    @abstractmethod
    def get_model_params(self, dxo: DXO) -> dict:  # type: ignore[type-arg]
        """What to keep of one site's result."""

    @abstractmethod
    def assemble(self, data: dict, fl_ctx: FLContext) -> DXO:  # type: ignore[type-arg]
        """The round's result, from ``data`` (the collection)."""

    def reset(self) -> None:
        """Forget the round's collection (called after each aggregation)."""
        self._collection = {}
