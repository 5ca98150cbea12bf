"""FLARE's ``DXO``: the data of a Shareable (weights, weight differences, metrics) and its meta."""

from __future__ import annotations

from typing import Any

from .fl_constant import FLMetaKey
from .shareable import ReservedHeaderKey, Shareable


class DataKind:
    """What a DXO holds (FLARE's names)."""

    FL_MODEL = "FL_MODEL"
    WEIGHTS = "WEIGHTS"
    WEIGHT_DIFF = "WEIGHT_DIFF"
    METRICS = "METRICS"
    ANALYTIC = "ANALYTIC"
    COLLECTION = "COLLECTION"
    STATISTICS = "STATISTICS"
    PSI = "PSI"
    APP_DEFINED = "APP_DEFINED"


class MetaKey(FLMetaKey):
    """Keys of a DXO's meta (``NUM_STEPS_CURRENT_ROUND``, ``initial_metrics`` ...)."""


_DXO = "DXO"


class DXO:
    """``DXO(data_kind, data, meta)``; ``to_shareable()`` puts it in a Shareable."""

    def __init__(self, data_kind: str, data: Any, meta: dict[str, Any] | None = None) -> None:
        self.data_kind = data_kind
        self.data = {} if data is None else data
        self.meta = {} if meta is None else meta
        if data_kind != DataKind.APP_DEFINED and not isinstance(self.data, dict):
            raise ValueError(f"invalid DXO: invalid data: expect dict but got {type(self.data)}")
        if not isinstance(self.meta, dict):
            raise ValueError(f"invalid DXO: invalid props: expect dict but got {type(self.meta)}")

    def get_meta_prop(self, key: str, default: Any = None) -> Any:
        return self.meta.get(key, default)

    def set_meta_prop(self, key: str, value: Any) -> None:
        self.meta[key] = value

    def remove_meta_props(self, keys: list[str]) -> None:
        for key in keys or ():
            self.meta.pop(key, None)

    def get_meta_props(self) -> dict[str, Any]:
        return self.meta

    def update_meta_props(self, meta: dict[str, Any]) -> None:
        self.meta.update(meta)

    def to_dict(self) -> dict[str, Any]:
        """``{"kind", "data", "meta"}``: what a Shareable holds, and :func:`from_dict` reads."""
        return {"kind": self.data_kind, "data": self.data, "meta": self.meta}

    def update_shareable(self, shareable: Shareable) -> Shareable:
        shareable.set_header(ReservedHeaderKey.CONTENT_TYPE, _DXO)
        shareable[_DXO] = self.to_dict()
        return shareable

    def to_shareable(self) -> Shareable:
        return self.update_shareable(Shareable())

    def validate(self) -> str:
        return ""


def from_shareable(shareable: Shareable) -> DXO:
    """The DXO in ``shareable``; ValueError when it holds none."""
    if shareable.get_header(ReservedHeaderKey.CONTENT_TYPE) != _DXO:
        raise ValueError("the shareable is not a valid DXO - expect content_type DXO but got "
                         f"{shareable.get_header(ReservedHeaderKey.CONTENT_TYPE)}")
    encoded = shareable.get(_DXO)
    if not isinstance(encoded, dict):
        raise ValueError("the shareable is not a valid DXO - missing content")
    return from_dict(encoded)


def from_dict(encoded: dict[str, Any]) -> DXO:
    """The DXO that :meth:`DXO.to_dict` wrote; ValueError when ``encoded`` is not a dict."""
    if not isinstance(encoded, dict):
        raise ValueError(f"encoded value must be dict but got {type(encoded)}")
    return DXO(encoded.get("kind"), encoded.get("data"), encoded.get("meta"))  # type: ignore[arg-type]
