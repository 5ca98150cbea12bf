"""FLARE's ``FLModel``: what a Client API script receives and sends.

The same fields, defaults and checks as FLARE's class. flconfig's executors turn
it into flconfig's own :class:`flconfig.types.FLModel` at the site's boundary.
"""

from __future__ import annotations

from enum import Enum
from typing import Any

from ...apis.fl_constant import FLMetaKey


class ParamsType(str, Enum):
    """Whether ``FLModel.params`` are whole weights or the change to the received ones."""

    FULL = "FULL"
    DIFF = "DIFF"


class FLModelConst:
    """FLModel's field names."""

    PARAMS_TYPE = "params_type"
    PARAMS = "params"
    OPTIMIZER_PARAMS = "optimizer_params"
    METRICS = "metrics"
    CURRENT_ROUND = "current_round"
    START_ROUND = "start_round"
    TOTAL_ROUNDS = "total_rounds"
    META = "meta"


class MetaKey(FLMetaKey):
    """Keys of ``FLModel.meta`` (``NUM_STEPS_CURRENT_ROUND``, ``initial_metrics`` ...)."""


def _non_negative_int(name: str, value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative int, got {value!r}")


class FLModel:
    """A model and what goes with it, as FLARE's Client API exchanges it.

    Args:
        params_type: ``FULL`` or ``DIFF`` (a :class:`ParamsType` or its name); FULL when
            ``params`` are given without it.
        params: the model's parameters (a dict of arrays or tensors).
        optimizer_params: the optimizer's state (kept on the site; not sent).
        metrics: evaluation results, ``{"accuracy": 0.9}``.
        start_round, current_round, total_rounds: where the run is.
        meta: anything else, e.g. ``{"NUM_STEPS_CURRENT_ROUND": 120}``.
    """

    def __init__(
        self,
        params_type: None | str | ParamsType = None,
        params: Any = None,
        optimizer_params: Any = None,
        metrics: dict[str, Any] | None = None,
        start_round: int | None = 0,
        current_round: int | None = None,
        total_rounds: int | None = None,
        meta: dict[str, Any] | None = None,
    ) -> None:
        if params_type is None:
            if params is not None:
                params_type = ParamsType.FULL
        else:
            params_type = ParamsType(params_type)
        if params_type is not None and params is None:
            raise ValueError(f"params must be provided when params_type is {params_type.value}")
        if metrics is not None and not isinstance(metrics, dict):
            raise TypeError(f"metrics must be a dict, got {type(metrics).__name__}")
        for name, value in (("start_round", start_round), ("current_round", current_round),
                            ("total_rounds", total_rounds)):
            if value is not None:
                _non_negative_int(name, value)
        if meta is not None and not isinstance(meta, dict):
            raise TypeError(f"meta must be a dict, got {type(meta).__name__}")
        self.params_type: ParamsType | None = params_type
        self.params = params
        self.optimizer_params = optimizer_params
        self.metrics = metrics
        self.start_round = start_round
        self.current_round = current_round
        self.total_rounds = total_rounds
        self.meta: dict[str, Any] = {} if meta is None else meta

    def summary(self) -> dict[str, Any]:
        """What the model holds, in a few words (FLARE's summary)."""
        out: dict[str, Any] = {}
        for key in ("params", "optimizer_params", "metrics", "meta", "params_type", "start_round",
                    "current_round", "total_rounds"):
            value = getattr(self, key)
            if not value:
                continue
            if isinstance(value, dict):
                out[key] = len(value)
            elif isinstance(value, (ParamsType, int)):
                out[key] = value
            else:
                out[key] = type(value)
        return out

    def __repr__(self) -> str:
        return str(self.summary())
