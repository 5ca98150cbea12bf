"""The privacy rules a site applies to its statistics before they leave it: FLARE's
StatisticsPrivacyFilter and its three cleansers.

Each cleanser takes ``{statistic: {dataset: {feature: value}}}`` (a histogram as FLARE's
``Histogram``) and returns it cleansed, with whether it changed: the interface of FLARE's
``StatisticsPrivacyCleanser``, which a job's own cleanser may implement too.
"""

from __future__ import annotations

import logging
import random
from typing import Any, ClassVar

from ...compat.nvflare.app_common.statistics.statistics_privacy_cleanser import (
    StatisticsPrivacyCleanser,
)
from ...errors import JobError
from ...types import FLModel, RunContext
from ..base import Component, Filter
from ._values import COUNT, FAILURE_COUNT, HISTOGRAM, MAX, MIN, TASK_KEY, decode, encode

log = logging.getLogger(__name__)


class StatisticsPrivacyFilter(Filter):
    """Applies the cleansers ``result_cleanser_ids`` names, in order, to this site's statistics
    (FLARE's ``StatisticsPrivacyFilter``; a ``task_result_filters`` entry for ``fed_stats``).

    A cleanser is a component with ``apply(statistics, client_name) -> (statistics, changed)``;
    a disabled one is skipped. Results that are not statistics pass unchanged.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"result_cleanser_ids": {"type": "array", "items": {"type": "string"}}}
    REFERENCES: ClassVar[dict[str, str]] = {"result_cleanser_ids": "any"}

    def __init__(self, result_cleanser_ids: list[str]) -> None:
        """
        Args:
            result_cleanser_ids: ids of the cleansers to apply, in order.
        """
        self.result_cleanser_ids = result_cleanser_ids

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        """The result with its statistics cleansed."""
        task = data.params.get(TASK_KEY) if data.rc == "OK" else None
        if not isinstance(task, str) or not isinstance(data.params.get(task), dict):
            return data
        statistics = decode(data.params[task])
        changed = False
        for cleanser_id in self.result_cleanser_ids:
            cleanser = ctx.get_component(cleanser_id)
            if cleanser is None:
                continue  # disabled (FLARE skips it too)
            if not callable(getattr(cleanser, "apply", None)):
                raise JobError(f"StatisticsPrivacyFilter: '{cleanser_id}' is a {type(cleanser).__name__}, not a "
                               "statistics privacy cleanser (it has no apply(statistics, client_name))")
            statistics, modified = cleanser.apply(statistics, ctx.site_name)
            changed = changed or bool(modified)
        if not changed:
            return data
        return FLModel(params={**data.params, task: encode(statistics)}, meta=dict(data.meta),
                       metrics=dict(data.metrics), params_type=data.params_type, rc=data.rc)


def _effective_counts(statistics: dict[str, Any], ds: str) -> dict[str, float]:
    counts = statistics.get(COUNT, {}).get(ds, {})
    failures = statistics.get(FAILURE_COUNT, {}).get(ds, {})
    return {feature: count - (failures.get(feature) or 0) for feature, count in counts.items()}


class MinCountCleanser(Component, StatisticsPrivacyCleanser):
    """Withholds every statistic but the count of a feature with fewer than ``min_count``
    usable records (count minus failure count) in a dataset (FLARE's ``MinCountCleanser``)."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"min_count": {"minimum": 0}}

    def __init__(self, min_count: float) -> None:
        """
        Args:
            min_count: the fewest records a feature's statistics may come from.
        """
        self.min_count = min_count

    def apply(self, statistics: dict[str, Any], client_name: str) -> tuple[dict[str, Any], bool]:
        valid = {ds: {f: n >= self.min_count for f, n in _effective_counts(statistics, ds).items()}
                 for ds in statistics.get(COUNT, {})}
        for ds, features in valid.items():
            for feature, ok in features.items():
                if not ok:
                    log.info("dataset %s feature '%s' of site %s has fewer than %s records: its statistics "
                             "are withheld", ds, feature, client_name, self.min_count)
        return self.cleanse(statistics, list(statistics), valid)


class HistogramBinsCleanser(Component, StatisticsPrivacyCleanser):
    """Withholds a feature's histogram whose number of bins reaches ``max_bins_percent`` % of its
    usable records (FLARE's ``HistogramBinsCleanser``): bins nearly as many as the records
    could reveal them."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"max_bins_percent": {"type": "number", "minimum": 0, "maximum": 100}}

    def __init__(self, max_bins_percent: float) -> None:
        """
        Args:
            max_bins_percent: the most bins allowed, in percent of a feature's record count.
        """
        self.max_bins_percent = max_bins_percent

    def apply(self, statistics: dict[str, Any], client_name: str) -> tuple[dict[str, Any], bool]:
        if HISTOGRAM not in statistics:
            return statistics, False
        valid: dict[str, dict[str, bool]] = {}
        for ds, features in statistics[HISTOGRAM].items():
            effective = _effective_counts(statistics, ds)
            valid[ds] = {}
            for feature, hist in features.items():
                limit = round(effective.get(feature, 0) * self.max_bins_percent / 100)
                valid[ds][feature] = len(hist.bins) < limit
                if not valid[ds][feature]:
                    log.info("the histogram of dataset %s feature '%s' of site %s has %d bins, not fewer than %d "
                             "(%s%% of its records): withheld", ds, feature, client_name, len(hist.bins), limit,
                             self.max_bins_percent)
        return self.cleanse(statistics, [HISTOGRAM], valid)


class AddNoiseToMinMax(Component, StatisticsPrivacyCleanser):
    """Widens each local min and max by a random ``min_noise_level``-``max_noise_level``
    fraction before they leave the site (FLARE's ``AddNoiseToMinMax``): the server estimates
    the histograms' ranges without learning the true extremes."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "min_noise_level": {"type": "number", "minimum": 0, "maximum": 1},
        "max_noise_level": {"type": "number", "minimum": 0, "maximum": 1},
    }

    def __init__(self, min_noise_level: float, max_noise_level: float) -> None:
        """
        Args:
            min_noise_level: the smallest relative noise (0.1: 10 %).
            max_noise_level: the largest relative noise; at least ``min_noise_level``.
        """
        if min_noise_level > max_noise_level:
            raise ValueError(f"min_noise_level {min_noise_level} must not exceed max_noise_level {max_noise_level}")
        self.min_noise_level = min_noise_level
        self.max_noise_level = max_noise_level

    def _widen(self, value: float, up: bool) -> float:
        r = random.uniform(self.min_noise_level, self.max_noise_level)
        if value == 0:
            return (1 + r) * 1e-5 if up else -(1 - r) * 1e-5
        grow = (value > 0) == up
        return value * (1 + r) if grow else value * (1 - r)

    def apply(self, statistics: dict[str, Any], client_name: str) -> tuple[dict[str, Any], bool]:
        changed = False
        for name, up in ((MIN, False), (MAX, True)):
            for features in statistics.get(name, {}).values():
                for feature, value in features.items():
                    if value is not None:
                        features[feature] = self._widen(value, up)
                        changed = True
        return statistics, changed
