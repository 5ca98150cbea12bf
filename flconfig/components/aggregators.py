"""InTimeAccumulateWeightedAggregator: weighted averaging of site results as they arrive."""

from __future__ import annotations

import re
from typing import Any, ClassVar

from .base import Aggregator, check_bool

#: The kinds of data a site result may carry (FLARE's DataKind names).
DATA_KINDS = ("WEIGHTS", "WEIGHT_DIFF", "METRICS")


class InTimeAccumulateWeightedAggregator(Aggregator):
    """Accumulates each accepted result, weighted by the site's weight and (by
    default) its number of local training steps, and averages on aggregate
    (FLARE's ``InTimeAccumulateWeightedAggregator``).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "expected_data_kind": {
            "anyOf": [
                {"enum": ["WEIGHTS", "WEIGHT_DIFF", "METRICS"]},
                {
                    "type": "object",
                    "additionalProperties": {"enum": ["WEIGHTS", "WEIGHT_DIFF", "METRICS"]},
                },
            ]
        },
        "aggregation_weights": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "additionalProperties": {"type": "number"}},
            ]
        },
    }

    def __init__(
        self,
        exclude_vars: str | dict | None = None,
        aggregation_weights: dict | None = None,
        expected_data_kind: str | dict = "WEIGHT_DIFF",
        weigh_by_local_iter: bool = True,
    ) -> None:
        """
        Args:
            exclude_vars: regular expression of parameter names left out of the
                average; with a dict ``expected_data_kind``, a dict of such
                expressions by key. None leaves nothing out.
            aggregation_weights: weight of each site's result by site name;
                sites not listed weigh 1.0.
            expected_data_kind: what site results carry: ``WEIGHTS``,
                ``WEIGHT_DIFF`` or ``METRICS``; or a dict of these by key, for
                results made of several parts.
            weigh_by_local_iter: also weigh each result by the number of local
                steps the site reports.
        """
        self.expected_data_kind = _check_data_kind(expected_data_kind)
        self.exclude_vars = _check_exclude_vars(exclude_vars, self.expected_data_kind)
        self.aggregation_weights = _check_weights(aggregation_weights)
        self.weigh_by_local_iter = check_bool("weigh_by_local_iter", weigh_by_local_iter)


def _check_data_kind(value: Any) -> str | dict[str, str]:
    if isinstance(value, str):
        if value not in DATA_KINDS:
            raise ValueError(
                f"expected_data_kind must be one of {', '.join(DATA_KINDS)}, got {value!r}"
            )
        return value
    if isinstance(value, dict):
        if not value:
            raise ValueError("expected_data_kind must not be an empty dict")
        for key, kind in value.items():
            if kind not in DATA_KINDS:
                raise ValueError(
                    f"expected_data_kind[{key!r}] must be one of {', '.join(DATA_KINDS)}, got {kind!r}"
                )
        return dict(value)
    raise TypeError(f"expected_data_kind must be a string or a dict, got {type(value).__name__}")


def _check_regex(name: str, value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a regular expression string, got {type(value).__name__}")
    try:
        re.compile(value)
    except re.error as exc:
        raise ValueError(f"{name} is not a valid regular expression: {exc}") from exc
    return value


def _check_exclude_vars(value: Any, data_kind: str | dict[str, str]) -> str | dict | None:
    if isinstance(value, dict):
        if not isinstance(data_kind, dict):
            raise TypeError("exclude_vars may be a dict only when expected_data_kind is a dict")
        return {key: _check_regex(f"exclude_vars[{key!r}]", v) for key, v in value.items()}
    return _check_regex("exclude_vars", value)


def _check_weights(value: Any) -> dict[str, float] | None:
    if value is None:
        return None
    if not isinstance(value, dict):
        raise TypeError(f"aggregation_weights must be a dict, got {type(value).__name__}")
    weights: dict[str, float] = {}
    for site, weight in value.items():
        if isinstance(weight, bool) or not isinstance(weight, (int, float)):
            raise TypeError(f"aggregation_weights[{site!r}] must be a number, got {weight!r}")
        if weight < 0:
            raise ValueError(f"aggregation_weights[{site!r}] must be >= 0, got {weight}")
        weights[str(site)] = float(weight)
    return weights
