"""FLARE's statistics API (``nvflare.app_common.abstract.statistics_spec``): what a federated
statistics job's generator implements, and the value types it returns.

A site's ``Statistics`` generator answers, per dataset and feature, the statistics the
server asks for (count, sum, mean, stddev, variance with the global mean, histogram, min,
max, quantiles). flconfig's StatisticsExecutor calls it as FLARE's does; the types keep
FLARE's names, fields and values.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from enum import IntEnum
from typing import NamedTuple

from ...apis.fl_context import FLContext
from .init_final_component import InitFinalComponent


class DataType(IntEnum):
    """A feature's type; only INT and FLOAT features get statistics."""

    INT = 0
    FLOAT = 1
    STRING = 2
    BYTES = 3
    STRUCT = 4
    DATETIME = 5


class BinRange(NamedTuple):
    """A histogram bucket's range: ``min_value`` inclusive, ``max_value`` exclusive."""

    min_value: float
    max_value: float


class Bin(NamedTuple):
    """A histogram bucket: its range and how many samples fell in it (may be fractional)."""

    low_value: float
    high_value: float
    sample_count: float


class HistogramType(IntEnum):
    """STANDARD: equal-width buckets; QUANTILES: equal-count buckets."""

    STANDARD = 0
    QUANTILES = 1


class Histogram(NamedTuple):
    """A histogram: its type, its buckets from lowest to highest, an optional name."""

    hist_type: HistogramType
    bins: list[Bin]
    hist_name: str | None = None


class Feature(NamedTuple):
    """A dataset's feature: its name and type."""

    feature_name: str
    data_type: DataType


class StatisticConfig(NamedTuple):
    """A statistic the server asks for, with its configuration (a histogram's bins ...)."""

    name: str
    config: dict  # type: ignore[type-arg]


class Statistics(InitFinalComponent, ABC):
    """A site's statistics generator (FLARE's ``Statistics``): the job's class subclasses it.

    :meth:`features` and :meth:`count` are required; each other method is needed only when
    its statistic is configured (``sum``, ``mean``, ``stddev``, ``variance_with_mean`` for
    a global stddev or var, ``histogram`` with ``min_value``/``max_value`` when a
    histogram's range is not configured, ``quantiles``). :meth:`initialize` is called when
    the run starts, with the site's FLContext.
    """

    def initialize(self, fl_ctx: FLContext) -> None:
        """Called once when the run starts (load the data here)."""

    def pre_run(self, statistics: list[str], num_of_bins: dict[str, int | None] | None,
                bin_ranges: dict[str, list[float] | None] | None) -> dict:  # type: ignore[type-arg]
        """The optional hand-shake: the statistics to compute and the histograms' settings."""
        return {}

    @abstractmethod
    def features(self) -> dict[str, list[Feature]]:
        """The features of each dataset: ``{"train": [Feature, ...], "test": [...]}``."""
        raise NotImplementedError

    @abstractmethod
    def count(self, dataset_name: str, feature_name: str) -> int:
        """The number of records (always asked: the privacy checks need it)."""
        raise NotImplementedError

    def sum(self, dataset_name: str, feature_name: str) -> float:
        raise NotImplementedError

    def mean(self, dataset_name: str, feature_name: str) -> float:
        raise NotImplementedError

    def stddev(self, dataset_name: str, feature_name: str) -> float:
        raise NotImplementedError

    def variance_with_mean(self, dataset_name: str, feature_name: str, global_mean: float,
                           global_count: float) -> float:
        """``sum((x - global_mean)²) / (global_count - 1)`` over this site's records."""
        raise NotImplementedError

    def histogram(self, dataset_name: str, feature_name: str, num_of_bins: int, global_min_value: float,
                  global_max_value: float) -> Histogram:
        raise NotImplementedError

    def max_value(self, dataset_name: str, feature_name: str) -> float:
        """The local maximum (noised before it leaves the site; for a histogram's range)."""
        raise NotImplementedError

    def min_value(self, dataset_name: str, feature_name: str) -> float:
        """The local minimum (noised before it leaves the site; for a histogram's range)."""
        raise NotImplementedError

    def failure_count(self, dataset_name: str, feature_name: str) -> int:
        """Records that could not be used (0 by default)."""
        return 0

    def quantiles(self, dataset_name: str, feature_name: str, percentiles: list) -> dict:  # type: ignore[type-arg]
        """``{"quantile": {p: value}}`` (and a digest to merge, where one is used)."""
        raise NotImplementedError

    def finalize(self, fl_ctx: FLContext) -> None:
        """Called once when the run ends."""
