"""Histograms as record values: TensorBoard's histogram of an array or tensor, computed on
the sending site as torch's ``SummaryWriter`` does (numpy is imported when used)."""

from __future__ import annotations

from typing import Any

from .logged_values import as_array
from .records import MAX_BUCKETS


def _tensorflow_bins() -> list[float]:
    # TensorFlow's default histogram buckets (torch's SummaryWriter.default_bins).
    v = 1e-12
    buckets: list[float] = []
    while v < 1e20:
        buckets.append(v)
        v *= 1.1
    return [-b for b in reversed(buckets)] + [0.0] + buckets


_TF_BINS: list[float] | None = None


def histogram_value(
    tag: str, values: Any, bins: Any = "tensorflow", max_bins: int | None = None
) -> dict[str, Any]:
    """TensorBoard's histogram of ``values`` (torch's ``make_histogram``), as a record value."""
    import numpy as np

    global _TF_BINS
    arr = as_array(tag, "values", values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"values of {tag!r} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"values of {tag!r} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"values of {tag!r} contain NaN or infinity")
    if isinstance(bins, str) and bins == "tensorflow":
        if _TF_BINS is None:
            _TF_BINS = _tensorflow_bins()
        bins = _TF_BINS
    if max_bins is not None and (
        isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 1
    ):
        raise ValueError(f"max_bins of {tag!r} must be an int >= 1 or None, got {max_bins!r}")
    try:
        counts, limits = np.histogram(arr, bins=bins)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bins of {tag!r}: {exc}") from None
    num_bins = len(counts)
    if max_bins is not None and num_bins > max_bins:
        sub = num_bins // max_bins
        rem = num_bins % sub
        if rem:
            counts = np.pad(counts, (0, sub - rem))
        counts = counts.reshape(-1, sub).sum(axis=-1)
        new_limits = np.empty(counts.size + 1, limits.dtype)
        new_limits[:-1] = limits[:-1:sub]
        new_limits[-1] = limits[-1]
        limits = new_limits
    # Keep the support only; TensorBoard reads right edges, so keep one empty
    # bucket on the left to carry the leftmost edge.
    cum = np.cumsum(np.greater(counts, 0))
    start, end = np.searchsorted(cum, [0, cum[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1 : end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start : end + 1]
    if len(limits) > MAX_BUCKETS:
        raise ValueError(f"histogram of {tag!r} has {len(limits)} buckets; pass max_bins")
    return {
        "min": float(arr.min()),
        "max": float(arr.max()),
        "num": int(arr.size),
        "sum": float(arr.sum()),
        "sum_squares": float(arr.dot(arr)),
        "bucket_limits": [float(x) for x in limits],
        "bucket_counts": [float(x) for x in counts],
    }
