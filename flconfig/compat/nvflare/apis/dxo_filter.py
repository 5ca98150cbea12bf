"""FLARE's ``DXOFilter``: a filter of the DXO inside a Shareable, by data kind."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .dxo import DXO, from_shareable
from .filter import Filter
from .fl_constant import ReturnCode
from .fl_context import FLContext
from .shareable import Shareable


class DXOFilter(Filter, ABC):
    """Calls ``process_dxo`` on a Shareable's DXO when its kind is among the filtered ones
    (all ``supported_data_kinds`` when ``data_kinds_to_filter`` is empty); a reply that is
    not OK, or a DXO of another kind, passes unchanged."""

    def __init__(self, supported_data_kinds: list[str] | None, data_kinds_to_filter: list[str] | None) -> None:
        super().__init__()
        if supported_data_kinds and not isinstance(supported_data_kinds, list):
            raise ValueError(f"supported_data_kinds must be a list of str but got {type(supported_data_kinds)}")
        if data_kinds_to_filter and not isinstance(data_kinds_to_filter, list):
            raise ValueError(f"data_kinds_to_filter must be a list of str but got {type(data_kinds_to_filter)}")
        if supported_data_kinds and data_kinds_to_filter:
            if not all(kind in supported_data_kinds for kind in data_kinds_to_filter):
                raise ValueError(f"invalid data kinds: {data_kinds_to_filter}. Only support {supported_data_kinds}")
        self.data_kinds = data_kinds_to_filter or supported_data_kinds

    def process(self, shareable: Shareable, fl_ctx: FLContext) -> Shareable:
        if shareable.get_return_code() != ReturnCode.OK:
            return shareable
        try:
            dxo = from_shareable(shareable)
        except ValueError:
            return shareable
        if self.data_kinds and dxo.data_kind not in self.data_kinds:
            return shareable
        result = self.process_dxo(dxo, shareable, fl_ctx)
        return shareable if result is None else result.update_shareable(shareable)

    @abstractmethod
    def process_dxo(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext) -> DXO | None:
        """The filtered DXO, or None to leave it as it is."""
