"""Statistics values: FLARE's types on a site and in the output, plain JSON on the wire, and
the server's global statistics from the sites' (FLARE's formulas and rounding)."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from ...compat.nvflare.app_common.abstract.statistics_spec import Bin, Histogram, HistogramType

#: Statistics names (FLARE's ``StatisticsConstants``).
COUNT, FAILURE_COUNT, SUM, MEAN, VAR, STDDEV = "count", "failure_count", "sum", "mean", "var", "stddev"
HISTOGRAM, QUANTILE, MIN, MAX = "histogram", "quantile", "min", "max"
TASK_KEY = "fed_stats_task_key"
FIRST, SECOND = "fed_stats_1st_statistics", "fed_stats_2nd_statistics"
FEATURES = "stats_features"
TARGETS = "statistics"
GLOBAL_MEAN, GLOBAL_COUNT = "global_mean", "global_count"
DIGEST = "digest_coord"
GLOBAL = "Global"
PRE_RUN_TASK, STATS_TASK = "fed_stats_pre_run", "fed_stats"
#: Which statistics each task computes, in the order the server combines them.
ORDERED = {FIRST: [COUNT, SUM, MEAN, MIN, MAX, QUANTILE], SECOND: [FAILURE_COUNT, HISTOGRAM, VAR, STDDEV]}


def plain(value: Any) -> Any:
    """A numpy scalar as the Python number it holds; anything else as it is."""
    item = getattr(value, "item", None)
    if callable(item) and type(value).__module__ == "numpy" and getattr(value, "shape", None) == ():
        return item()
    return value


def encode(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """A site's statistics (FLARE's Histogram values) as plain JSON for the wire."""
    out: dict[str, Any] = {}
    for name, datasets in statistics.items():
        out[name] = {ds: {feature: _encode_value(value) for feature, value in features.items()}
                     for ds, features in datasets.items()}
    return out


def _encode_value(value: Any) -> Any:
    bins = getattr(value, "bins", None)
    if bins is not None:  # a Histogram
        return {"hist_type": int(plain(getattr(value, "hist_type", 0))),
                "bins": [[float(plain(b[0])), float(plain(b[1])), plain(b[2])] for b in bins],
                "hist_name": getattr(value, "hist_name", None)}
    if isinstance(value, Mapping):
        return {str(k): _encode_value(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_encode_value(v) for v in value]
    return plain(value)


def decode(statistics: Mapping[str, Any]) -> dict[str, Any]:
    """The wire's statistics with FLARE's Histogram and Bin for the histograms."""

    out: dict[str, Any] = {}
    for name, datasets in statistics.items():
        out[name] = {}
        for ds, features in (datasets or {}).items():
            out[name][ds] = {}
            for feature, value in (features or {}).items():
                if name == HISTOGRAM and isinstance(value, Mapping) and "bins" in value:
                    value = Histogram(HistogramType(int(value.get("hist_type", 0))),
                                      [Bin(float(b[0]), float(b[1]), b[2]) for b in value["bins"]],
                                      value.get("hist_name"))
                out[name][ds][feature] = value
    return out


def feature_bins(feature: str, config: Mapping[str, Any]) -> int:
    """A histogram's number of bins for ``feature`` (its own config, else ``"*"``)."""
    entry = config.get(feature) if feature in config else config.get("*")
    bins = entry.get("bins") if isinstance(entry, Mapping) else None
    if not bins:
        raise ValueError(f"feature '{feature}': the histogram config {dict(config)} gives no 'bins' for it "
                         "(nor for '*')")
    return int(bins)


def feature_range(feature: str, config: Mapping[str, Any]) -> list[float] | None:
    """A histogram's configured ``[low, high]`` for ``feature`` (its own, else ``"*"``'s), or None."""
    entry = config.get(feature) if feature in config else config.get("*")
    found = entry.get("range") if isinstance(entry, Mapping) else None
    return list(found) if found else None


def quantile_targets(feature: str, config: Mapping[str, Any]) -> list[Any]:
    """The percentiles asked for ``feature``."""
    found = config.get(feature) if feature in config else config.get("*")
    return list(found or [])


# -- the server's global statistics (FLARE's ``numeric_stats``) ------------------------


def _accumulate(sites: Mapping[str, Any], precision: int) -> dict[str, dict[str, float]]:
    total: dict[str, dict[str, float]] = {}
    for per_site in sites.values():
        for ds, features in per_site.items():
            into = total.setdefault(ds, {})
            for feature, value in features.items():
                if value is None:
                    continue
                into[feature] = round(into.get(feature, 0) + value, precision)
    return total


def _extreme(sites: Mapping[str, Any], pick: Any, precision: int) -> dict[str, dict[str, float]]:
    """FLARE's global min or max: over every site and every dataset, given to each dataset."""
    found: dict[str, dict[str, float]] = {}
    for per_site in sites.values():
        for ds, features in per_site.items():
            into = found.setdefault(ds, {})
            for feature, value in features.items():
                if value is not None:
                    into[feature] = round(pick(into[feature], value) if feature in into else value, precision)
    overall: dict[str, float] = {}
    for features in found.values():
        for feature, value in features.items():
            overall[feature] = round(pick(overall[feature], value) if feature in overall else value, precision)
    return {ds: {feature: overall[feature] for feature in features} for ds, features in found.items()}


def _histograms(sites: Mapping[str, Any], precision: int) -> dict[str, dict[str, Any]]:
    merged: dict[str, dict[str, Any]] = {}
    for per_site in sites.values():
        for ds, features in per_site.items():
            into = merged.setdefault(ds, {})
            for feature, hist in features.items():
                bins = [Bin(round(b.low_value, precision), round(b.high_value, precision), b.sample_count)
                        for b in hist.bins]
                if feature not in into:
                    into[feature] = Histogram(HistogramType.STANDARD, bins)
                    continue
                counts = {(b.low_value, b.high_value): b.sample_count for b in into[feature].bins}
                for b in bins:
                    key = (b.low_value, b.high_value)
                    counts[key] = counts.get(key, 0) + b.sample_count
                into[feature] = Histogram(into[feature].hist_type,
                                          [Bin(b.low_value, b.high_value, counts[(b.low_value, b.high_value)])
                                           for b in into[feature].bins])
    return merged


def _quantiles(sites: Mapping[str, Any], config: Mapping[str, Any], precision: int) -> dict[str, Any]:
    """Merged t-digests' quantiles (needs ``fastdigest``, as FLARE; empty without it)."""
    try:
        from fastdigest import TDigest
    except ImportError:
        return {}
    digests: dict[str, dict[str, Any]] = {}
    for per_site in sites.values():
        for ds, features in per_site.items():
            into = digests.setdefault(ds, {})
            for feature, value in features.items():
                coord = value.get(DIGEST) if isinstance(value, Mapping) else None
                if coord:
                    digest = TDigest.from_dict(coord)
                    into[feature] = into[feature].merge(digest) if into.get(feature) else digest
                else:
                    into.setdefault(feature, None)
    return {ds: {feature: {str(p): (round(digest.quantile(p), precision) if digest else None)
                           for p in quantile_targets(feature, config)}
                 for feature, digest in features.items()}
            for ds, features in digests.items()}


def global_statistics(found: dict[str, Any], sites: Mapping[str, Any], task: str,
                      configs: Mapping[str, Any], precision: int) -> dict[str, Any]:
    """Add the global statistics of ``task`` (``FIRST`` or ``SECOND``) to ``found`` from the
    sites' (``{statistic: {site: {dataset: {feature: value}}}}``)."""
    for name in ORDERED[task]:
        if name not in sites:
            continue
        per_site = sites[name]
        if name in (COUNT, FAILURE_COUNT, SUM, VAR):
            found[name] = _accumulate(per_site, precision)
        elif name == MEAN:
            found[name] = _means(found, sites, precision)
        elif name == MIN:
            found[name] = _extreme(per_site, min, precision)
        elif name == MAX:
            found[name] = _extreme(per_site, max, precision)
        elif name == HISTOGRAM:
            found[name] = _histograms(per_site, precision)
        elif name == STDDEV and VAR in found:
            found[name] = {ds: {f: round(math.sqrt(v), precision) for f, v in features.items()}
                           for ds, features in found[VAR].items()}
        elif name == QUANTILE:
            found[name] = _quantiles(per_site, configs.get(QUANTILE) or {}, precision)
    return found


#: The global statistic holding, per dataset and feature, the records the global mean is of.
MEAN_COUNT = "_mean_count"


def _means(found: dict[str, Any], sites: Mapping[str, Any], precision: int) -> dict[str, dict[str, float]]:
    """The global mean of the sites that sent one (their sums, else their means, over their
    counts): a site whose statistics a privacy rule withheld counts in neither. The count it is
    of is kept as ``MEAN_COUNT`` (the variance's divisor)."""
    source = SUM if SUM in sites else MEAN
    weighted: dict[str, dict[str, list[float]]] = {}
    for site, per_ds in sites.get(source, {}).items():
        for ds, features in per_ds.items():
            for feature, value in features.items():
                count = sites.get(COUNT, {}).get(site, {}).get(ds, {}).get(feature)
                if value is not None and count:
                    entry = weighted.setdefault(ds, {}).setdefault(feature, [0.0, 0.0])
                    entry[0] += value if source == SUM else value * count
                    entry[1] += count
    found[MEAN_COUNT] = {ds: {f: n for f, (_, n) in features.items()} for ds, features in weighted.items()}
    return {ds: {f: round(s / n, precision) for f, (s, n) in features.items() if n}
            for ds, features in weighted.items()}
