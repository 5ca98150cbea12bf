"""FLARE's ``DFStatisticsCore``: the statistics of pandas DataFrames, for a job's generator.

A job subclasses it, loads ``self.data = {"train": DataFrame, "test": DataFrame}`` in
``initialize(fl_ctx)``, and inherits every statistic. Quantiles need the ``fastdigest``
package (as in FLARE); without it they are empty.
"""

from __future__ import annotations

from abc import ABC
from math import sqrt
from typing import Any

from ....app_common.abstract.statistics_spec import (
    BinRange,
    Feature,
    Histogram,
    HistogramType,
    Statistics,
)
from ....app_common.statistics.numpy_utils import dtype_to_data_type, get_std_histogram_buckets


class DFStatisticsCore(Statistics, ABC):
    """Statistics of each dataset's DataFrame in ``self.data`` (FLARE's ``DFStatisticsCore``)."""

    def __init__(self, max_bin: int | None = None) -> None:
        """
        Args:
            max_bin: the quantile digest's size (default: the square root of the row count).
        """
        super().__init__()
        self.data: dict[str, Any] | None = None
        self.max_bin = max_bin

    def _frame(self, dataset_name: str) -> Any:
        if self.data is None:
            raise RuntimeError(f"{type(self).__name__}: self.data is not loaded (load it in initialize)")
        return self.data[dataset_name]

    def features(self) -> dict[str, list[Feature]]:
        return {name: [Feature(column, dtype_to_data_type(frame[column].dtype)) for column in frame]
                for name, frame in (self.data or {}).items()}

    def count(self, dataset_name: str, feature_name: str) -> int:
        return int(self._frame(dataset_name)[feature_name].count())

    def sum(self, dataset_name: str, feature_name: str) -> float:
        return self._frame(dataset_name)[feature_name].sum().item()

    def mean(self, dataset_name: str, feature_name: str) -> float:
        return self.sum(dataset_name, feature_name) / self.count(dataset_name, feature_name)

    def stddev(self, dataset_name: str, feature_name: str) -> float:
        return self._frame(dataset_name)[feature_name].std().item()

    def variance_with_mean(self, dataset_name: str, feature_name: str, global_mean: float,
                           global_count: float) -> float:
        column = self._frame(dataset_name)[feature_name]
        return (((column - global_mean) ** 2).sum() / (global_count - 1)).item()

    def histogram(self, dataset_name: str, feature_name: str, num_of_bins: int, global_min_value: float,
                  global_max_value: float) -> Histogram:
        import numpy as np

        values = self._frame(dataset_name)[feature_name].to_numpy()
        values = values[values != np.array(None)]
        buckets = get_std_histogram_buckets(values, num_of_bins, BinRange(global_min_value, global_max_value))
        return Histogram(HistogramType.STANDARD, buckets)

    def max_value(self, dataset_name: str, feature_name: str) -> float:
        return self._frame(dataset_name)[feature_name].max()

    def min_value(self, dataset_name: str, feature_name: str) -> float:
        return self._frame(dataset_name)[feature_name].min()

    def quantiles(self, dataset_name: str, feature_name: str, percents: list) -> dict:  # type: ignore[type-arg]
        try:
            from fastdigest import TDigest
        except ImportError:
            return {"quantile": {}}
        column = self._frame(dataset_name)[feature_name]
        digest = TDigest(column)
        digest.compress(self.max_bin or round(sqrt(len(column))))
        return {"quantile": {p: round(digest.quantile(p), 4) for p in percents},
                "digest_coord": digest.to_dict()}
