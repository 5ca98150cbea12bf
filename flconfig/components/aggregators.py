"""InTimeAccumulateWeightedAggregator: weighted averaging of site results as they arrive."""

from __future__ import annotations

import logging
import math
import re
from typing import Any, ClassVar

import numpy as np

from ..errors import JobError
from ..types import FLModel, ReturnCode, RunContext, is_torch_tensor
from .base import Aggregator, site_logger

log = logging.getLogger(__name__)

#: The kinds of data a site result may carry (FLARE's DataKind names).
DATA_KINDS = ("WEIGHTS", "WEIGHT_DIFF", "METRICS")
#: The ``params_type`` a result must have for each data kind.
PARAMS_TYPE_OF_KIND = {"WEIGHTS": "FULL", "WEIGHT_DIFF": "DIFF"}
#: FLARE's DataKind of each ``params_type`` a model of weights may have.
KIND_OF_PARAMS_TYPE = {v: k for k, v in PARAMS_TYPE_OF_KIND.items()}
#: Meta key of the number of local training steps behind a result (FLARE's MetaKey).
NUM_STEPS_KEY = "NUM_STEPS_CURRENT_ROUND"


class InTimeAccumulateWeightedAggregator(Aggregator):
    """Accumulates each accepted result, weighted by the site's weight and (by
    default) its number of local training steps, and averages on aggregate
    (FLARE's ``InTimeAccumulateWeightedAggregator``).

    A result's weight is ``meta["NUM_STEPS_CURRENT_ROUND"]`` (1 when
    ``weigh_by_local_iter`` is false, or when the site did not report it)
    times ``aggregation_weights.get(site, 1.0)``. With ``WEIGHTS`` or
    ``WEIGHT_DIFF`` the weighted mean is taken of every parameter not matched
    by ``exclude_vars`` (accumulated in float64, returned in each parameter's
    original dtype), and of the numeric metrics; with ``METRICS`` only of the
    metrics. Parameters left out are missing from the aggregate, so the
    global model keeps its own values for them.

    :meth:`accept` refuses, and logs why, a result whose ``rc`` is not OK,
    whose ``params_type`` does not fit ``expected_data_kind`` (WEIGHTS takes
    FULL, WEIGHT_DIFF takes DIFF), a second result from the same site in a
    round, or parameters whose names or shapes differ from the first
    accepted result's. :attr:`rejections` keeps the reasons of the round.

    A dict ``expected_data_kind`` (FLARE's results made of several DXOs) is
    accepted by the validator but cannot be aggregated: flconfig results are
    one set of params and metrics, so :meth:`accept` raises JobError.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "expected_data_kind": {
            "anyOf": [
                {"type": "string", "enum": ["WEIGHTS", "WEIGHT_DIFF", "METRICS"]},
                {
                    "type": "object",
                    "minProperties": 1,
                    "additionalProperties": {"enum": ["WEIGHTS", "WEIGHT_DIFF", "METRICS"]},
                },
            ]
        },
        "exclude_vars": {
            "anyOf": [
                {"type": ["string", "null"], "format": "regex"},
                {"type": "object", "additionalProperties": {"type": ["string", "null"], "format": "regex"}},
            ]
        },
        "aggregation_weights": {
            "anyOf": [
                {"type": "null"},
                {"type": "object", "additionalProperties": {"type": "number", "minimum": 0}},
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
        if isinstance(exclude_vars, dict) and not isinstance(expected_data_kind, dict):
            raise TypeError("exclude_vars may be a dict only when expected_data_kind is a dict")
        self.expected_data_kind = expected_data_kind
        self.exclude_vars = exclude_vars
        self.aggregation_weights = (
            None if aggregation_weights is None
            else {str(site): float(w) for site, w in aggregation_weights.items()}
        )
        self.weigh_by_local_iter = weigh_by_local_iter
        #: Why each refused result of the current round was refused, by site.
        self.rejections: dict[str, str] = {}
        self._exclude = (
            re.compile(self.exclude_vars) if isinstance(self.exclude_vars, str) else None
        )
        self._sites: list[str] = []
        self._total_weight = 0.0
        # name -> (float64 sum, original dtype, shape); dtype is a numpy or torch dtype.
        self._sums: dict[str, tuple[np.ndarray, Any, tuple[int, ...]]] = {}
        self._metric_sums: dict[str, list[float]] = {}  # name -> [weighted sum, weight]

    # -- run time -------------------------------------------------------------------

    def reset(self, ctx: RunContext | None = None) -> None:
        """Forget the accepted results (a new round starts)."""
        self.rejections = {}
        self._sites = []
        self._total_weight = 0.0
        self._sums = {}
        self._metric_sums = {}

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        """Add ``site``'s result to the round's weighted sums; False (logged why) to refuse it."""
        if isinstance(self.expected_data_kind, dict):
            raise JobError(
                "InTimeAccumulateWeightedAggregator: a dict expected_data_kind (results made of "
                "several parts) cannot be aggregated by flconfig; use 'WEIGHTS', 'WEIGHT_DIFF' "
                "or 'METRICS'"
            )
        reason = self._refusal(site, result)
        weight = None
        converted: dict[str, tuple[np.ndarray, Any]] = {}
        if reason is None:
            weight, reason = self._weight(site, result)
        if reason is None and self.expected_data_kind != "METRICS":
            converted, reason = self._convert(result)
        if reason is not None:
            self.rejections[site] = reason
            site_logger(ctx, log).warning("aggregator refused the result of site %s: %s", site, reason)
            return False
        assert weight is not None
        for name, (values, dtype) in converted.items():
            values *= weight  # a private float64 copy (see as_float64)
            if name in self._sums:
                np.add(self._sums[name][0], values, out=self._sums[name][0])
            else:
                self._sums[name] = (values, dtype, values.shape)
        for name, value in _numeric_metrics(result.metrics).items():
            entry = self._metric_sums.setdefault(name, [0.0, 0.0])
            entry[0] += value * weight
            entry[1] += weight
        self._sites.append(site)
        self._total_weight += weight
        return True

    def aggregate(self, ctx: RunContext) -> FLModel:
        """The weighted mean of the accepted results; resets for the next round.

        Raises JobError when no result was accepted or their weights sum to 0.
        """
        if not self._sites:
            refused = "; ".join(f"{s}: {r}" for s, r in self.rejections.items())
            raise JobError(
                "aggregator: no result was accepted this round, nothing to aggregate"
                + (f" (refused: {refused})" if refused else "")
            )
        total = self._total_weight
        if total <= 0:
            raise JobError(
                f"aggregator: the accepted results of {', '.join(self._sites)} weigh 0 in total "
                "(NUM_STEPS_CURRENT_ROUND 0, or aggregation_weights 0); nothing to average"
            )
        params = {
            name: restore_dtype(acc / total, dtype) for name, (acc, dtype, _) in self._sums.items()
        }
        metrics = {name: s / w for name, (s, w) in self._metric_sums.items() if w > 0}
        kind = self.expected_data_kind
        model = FLModel(
            params=params,
            params_type=PARAMS_TYPE_OF_KIND.get(kind, "METRICS"),  # type: ignore[arg-type]
            metrics=metrics,
            meta={"contributors": list(self._sites), "total_weight": total},
        )
        self.reset(ctx)
        return model

    # -- checks ---------------------------------------------------------------------

    def _refusal(self, site: str, result: FLModel) -> str | None:
        if result.rc != ReturnCode.OK:
            error = result.meta.get("error") if isinstance(result.meta, dict) else None
            return f"its return code is {result.rc}" + (f" ({error})" if error else "")
        if site in self._sites:
            return "a result from this site was already accepted this round"
        kind = self.expected_data_kind
        if kind == "METRICS":
            if not _numeric_metrics(result.metrics):
                return "expected_data_kind is METRICS but the result holds no numeric metrics"
            return None
        expected = PARAMS_TYPE_OF_KIND[kind]  # type: ignore[index]
        if result.params_type != expected:
            return (
                f"its params_type is {result.params_type!r}, but expected_data_kind {kind} "
                f"takes {expected!r}"
            )
        if not result.params:
            return "it holds no params"
        return None

    def _weight(self, site: str, result: FLModel) -> tuple[float | None, str | None]:
        weight = 1.0
        if self.weigh_by_local_iter:
            steps = result.meta.get(NUM_STEPS_KEY)
            if steps is None:
                log.debug("site %s reported no %s; weighing its result 1", site, NUM_STEPS_KEY)
            elif (
                isinstance(steps, bool)
                or not isinstance(steps, (int, float))
                or not math.isfinite(steps)
                or steps < 0
            ):
                return None, f"{NUM_STEPS_KEY} must be a number >= 0, got {steps!r}"
            else:
                weight = float(steps)
        if self.aggregation_weights is not None:
            weight *= self.aggregation_weights.get(site, 1.0)
        return weight, None

    def _convert(self, result: FLModel) -> tuple[dict[str, tuple[np.ndarray, Any]], str | None]:
        converted: dict[str, tuple[np.ndarray, Any]] = {}
        for name, value in result.params.items():
            if self._exclude is not None and self._exclude.search(name):
                continue
            try:
                converted[name] = as_float64(value)
            except (TypeError, ValueError) as exc:
                return {}, f"params[{name!r}]: {exc}"
        if not converted:
            return {}, "every parameter is excluded by exclude_vars"
        if self._sums:
            missing = sorted(set(self._sums) - set(converted))
            extra = sorted(set(converted) - set(self._sums))
            if missing or extra:
                parts = []
                if missing:
                    parts.append(f"missing {', '.join(missing[:5])}")
                if extra:
                    parts.append(f"unexpected {', '.join(extra[:5])}")
                return {}, (
                    "its parameter names differ from the first accepted result's: "
                    + "; ".join(parts)
                )
            for name, (values, _) in converted.items():
                shape = self._sums[name][2]
                if values.shape != shape:
                    return {}, (
                        f"params[{name!r}] has shape {values.shape}, "
                        f"the first accepted result's has {shape}"
                    )
        return converted, None



def _numeric_metrics(metrics: Any) -> dict[str, float]:
    if not isinstance(metrics, dict):
        return {}
    return {
        name: float(value)
        for name, value in metrics.items()
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)
    }


def as_float64(value: Any) -> tuple[np.ndarray, Any]:
    """``value`` as a float64 numpy array, with the dtype to give the mean back in."""
    if is_torch_tensor(value):
        import torch

        tensor = value.detach().cpu()
        if tensor.is_complex():
            raise TypeError(f"complex tensors cannot be averaged here ({tensor.dtype})")
        return tensor.to(torch.float64, copy=True).numpy(), tensor.dtype
    array = np.asarray(value)
    if array.dtype.kind not in "biuf":
        raise TypeError(f"dtype {array.dtype} cannot be averaged")
    return array.astype(np.float64, copy=True), array.dtype


def restore_dtype(mean: np.ndarray, dtype: Any) -> Any:
    """``mean`` in the dtype the parameter came in (integers rounded, bools by majority)."""
    if isinstance(dtype, np.dtype):
        if dtype.kind in "iu":
            return np.rint(mean).astype(dtype)
        if dtype.kind == "b":
            return mean >= 0.5
        return mean.astype(dtype)
    import torch

    tensor = torch.from_numpy(mean)
    if dtype == torch.bool:
        return tensor >= 0.5
    if not dtype.is_floating_point:
        tensor = torch.round(tensor)
    return tensor.to(dtype)
