"""FLARE's ``numpy_utils``: a feature's DataType from its dtype, standard histogram buckets."""

from __future__ import annotations

import json
from typing import Any

import numpy as np

from ..abstract.statistics_spec import Bin, BinRange, DataType


class NpEncoder(json.JSONEncoder):
    """JSON for numpy scalars and arrays."""

    def default(self, obj: Any) -> Any:
        if isinstance(obj, np.integer):
            return int(obj)
        if isinstance(obj, np.floating):
            return float(obj)
        if isinstance(obj, np.ndarray):
            return obj.tolist()
        return super().default(obj)


def dtype_to_data_type(dtype: Any) -> DataType:
    """FLOAT for floats, INT for integers and booleans, DATETIME for dates and durations,
    STRING for the rest (numpy dtypes and pandas' extension dtypes alike)."""
    try:
        from pandas.api.types import (
            is_bool_dtype,
            is_datetime64_any_dtype,
            is_float_dtype,
            is_integer_dtype,
        )
    except ImportError:  # numpy only
        kind = getattr(np.dtype(dtype), "kind", "O")
        return {"f": DataType.FLOAT, "b": DataType.INT, "i": DataType.INT, "u": DataType.INT,
                "M": DataType.DATETIME, "m": DataType.DATETIME}.get(kind, DataType.STRING)
    if is_float_dtype(dtype):
        return DataType.FLOAT
    if is_bool_dtype(dtype) or is_integer_dtype(dtype):
        return DataType.INT
    if is_datetime64_any_dtype(dtype) or getattr(dtype, "kind", "") == "m":
        return DataType.DATETIME
    return DataType.STRING


def get_std_histogram_buckets(nums: np.ndarray, num_bins: int = 10, br: BinRange | None = None) -> list[Bin]:
    """Equal-width buckets of ``nums`` (over ``br`` when given); infinities are counted in the
    first and last buckets, which then reach ``-inf``/``inf``."""
    nums = np.asarray(nums)
    neg_inf = int(np.isneginf(nums).sum()) if nums.dtype.kind == "f" else 0
    pos_inf = int(np.isposinf(nums).sum()) if nums.dtype.kind == "f" else 0
    finite = nums[np.isfinite(nums)] if nums.dtype.kind == "f" else nums
    if br is not None:
        counts, edges = np.histogram(finite, bins=num_bins, range=(br.min_value, br.max_value))
    else:
        counts, edges = np.histogram(finite, bins=num_bins)
    buckets: list[Bin] = []
    last = len(counts) - 1
    for i, count in enumerate(counts):
        low, high, n = float(edges[i]), float(edges[i + 1]), int(count)
        if i == 0 and neg_inf:
            low, n = float("-inf"), n + neg_inf
        elif i == last and pos_inf:
            high, n = float("inf"), n + pos_inf
        buckets.append(Bin(low_value=low, high_value=high, sample_count=n))
    if len(edges):
        if pos_inf:
            buckets.append(Bin(float("inf"), float("inf"), pos_inf))
        elif neg_inf:
            buckets.append(Bin(float("-inf"), float("-inf"), neg_inf))
    return buckets
