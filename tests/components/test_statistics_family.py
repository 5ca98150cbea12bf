"""Federated statistics (FLARE's StatisticsController family) under flconfig: FLARE 2.9's
FedStatsRecipe export and its legacy job folders validate; a run on synthetic DataFrames
writes the statistics JSON FLARE writes, with each site's and the global values a
pandas computation of the pooled data gives, and the privacy rules applied on the sites."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness.exported_jobs import client_config, errors, problems, run_dir, server_config, write_job
from harness.launching import launch

from flconfig.compat.nvflare.app_common.abstract.statistics_spec import (
    Bin,
    Histogram,
    HistogramType,
)
from flconfig.components.statistics._values import decode, encode, global_statistics
from flconfig.components.statistics.privacy import (
    AddNoiseToMinMax,
    HistogramBinsCleanser,
    MinCountCleanser,
    StatisticsPrivacyFilter,
)
from flconfig.runtime.context import SiteContext
from flconfig.types import FLModel

pd = pytest.importorskip("pandas")

STATS = "nvflare.app_common.statistics"
CONFIGS = {"count": {}, "mean": {}, "sum": {}, "stddev": {},
           "histogram": {"*": {"bins": 20}, "Age": {"bins": 20, "range": [0, 100]}},
           "quantile": {"*": [0.1, 0.5, 0.9]}}
DATA = """
import numpy as np
import pandas as pd

def frames(site):
    rng = np.random.default_rng(1 if site == "site-1" else 2)
    sizes = {"site-1": (500, 500), "site-2": (300, 8)}[site]
    out = {}
    for name, n in zip(("train", "test"), sizes):
        out[name] = pd.DataFrame({"Age": rng.integers(18, 90, n), "fnlwgt": rng.normal(1000.0, 50.0, n),
                                  "Workclass": ["private"] * n})
    return out
"""
# hello-tabular-stats' generator: a DFStatisticsCore whose initialize loads the site's data.
GENERATOR = DATA + """
from nvflare.apis.fl_context import FLContext
from nvflare.app_opt.statistics.df.df_core_statistics import DFStatisticsCore


class AdultStatistics(DFStatisticsCore):
    def __init__(self, filename, data_root_dir="/tmp/nvflare/df_stats/data"):
        super().__init__()
        self.filename = filename

    def initialize(self, fl_ctx: FLContext):
        self.data = frames(fl_ctx.get_identity_name())
"""


def site_app() -> dict[str, Any]:
    """What FedStatsRecipe puts on each site (§4.10 of FLARE's job API)."""
    return client_config(
        [{"tasks": ["fed_stats_pre_run", "fed_stats"], "executor": {
            "path": "nvflare.app_common.executors.statistics.statistics_executor.StatisticsExecutor",
            "args": {"generator_id": "stats_generator"}}}],
        [{"id": "stats_generator", "path": "client.AdultStatistics", "args": {"filename": "data.csv"}},
         {"id": "min_count_cleanser", "path": f"{STATS}.min_count_cleanser.MinCountCleanser", "args": {"min_count": 10}},
         {"id": "min_max_noise_cleanser", "path": f"{STATS}.min_max_cleanser.AddNoiseToMinMax",
          "args": {"min_noise_level": 0.1, "max_noise_level": 0.3}},
         {"id": "hist_bins_cleanser", "path": f"{STATS}.histogram_bins_cleanser.HistogramBinsCleanser",
          "args": {"max_bins_percent": 10}}],
        task_result_filters=[{"tasks": ["fed_stats"], "filters": [
            {"path": "nvflare.app_common.filters.statistics_privacy_filter.StatisticsPrivacyFilter",
             "args": {"result_cleanser_ids": ["min_count_cleanser", "min_max_noise_cleanser", "hist_bins_cleanser"]}}]}])


def stats_export(root: Path, configs: dict[str, Any] | None = None, output: str = "statistics/adults_stats.json",
                 enable_pre_run_task: bool = False) -> Path:
    server = server_config(
        [{"id": "controller", "path": "nvflare.app_common.workflows.statistics_controller.StatisticsController",
          "args": {"statistic_configs": configs or CONFIGS, "writer_id": "stats_writer",
                   "enable_pre_run_task": enable_pre_run_task}}],
        [{"id": "stats_writer", "path": f"{STATS}.json_stats_file_persistor.JsonStatsFileWriter",
          "args": {"output_path": output, "json_encoder_path": "nvflare.app_common.utils.json_utils.ObjectEncoder"}}])
    return write_job(root, "stats_df", server, per_site={"site-1": site_app(), "site-2": site_app()},
                     scripts={"client.py": GENERATOR}, min_clients=1)


def test_fedstatsrecipes_export_validates_and_its_mistakes_are_errors(tmp_path: Path) -> None:
    assert problems(stats_export(tmp_path)) == []
    bad = stats_export(tmp_path / "bad", {"count": {}, "median": {}}, output="/etc/stats.json")
    found = errors(bad)
    assert len(found) == 2, found
    assert any("median" in e for e in found)
    assert any("output_path" in e and "relative path" in e for e in found)


def test_the_legacy_df_stats_job_validates(tmp_path: Path) -> None:
    # FLARE 2.4's df_stats job: one app, the filter named by FLARE's short name, pre-run task on
    client = site_app()
    client["task_result_filters"][0]["filters"][0] = {
        "name": "StatisticsPrivacyFilter",
        "args": {"result_cleanser_ids": ["min_count_cleanser", "min_max_noise_cleanser", "hist_bins_cleanser"]}}
    server = server_config(
        [{"id": "fed_stats_controller", "path": "nvflare.app_common.workflows.statistics_controller."
                                                "StatisticsController",
          "args": {"statistic_configs": {**CONFIGS, "quantile": {"*": [25, 50, 75]}}, "writer_id": "stats_writer",
                   "enable_pre_run_task": False, "precision": 2}}],
        [{"id": "stats_writer", "path": f"{STATS}.json_stats_file_persistor.JsonStatsFileWriter",
          "args": {"output_path": "statistics/adults_stats.json"}}])
    assert problems(write_job(tmp_path, "df_stats", server, client, scripts={"client.py": GENERATOR})) == []


def pooled(site: str | None, dataset: str) -> Any:
    scope: dict[str, Any] = {}
    exec(DATA, scope)
    if site is not None:
        return scope["frames"](site)[dataset]
    return pd.concat([scope["frames"](s)[dataset] for s in ("site-1", "site-2")])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_statistics_run_writes_each_sites_and_the_global_statistics(tmp_path: Path) -> None:
    job = stats_export(tmp_path, enable_pre_run_task=True)
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stats = json.loads((run_dir(ws) / "statistics" / "adults_stats.json").read_text())
    assert sorted(stats) == ["Age", "fnlwgt"]  # the string feature has no statistics
    for feature in ("Age", "fnlwgt"):
        age = stats[feature]
        assert sorted(age) == ["count", "histogram", "mean", "quantile", "stddev", "sum"]
        for site in ("site-1", "site-2", "Global"):
            frame = pooled(None if site == "Global" else site, "train")[feature]
            assert age["count"][site]["train"] == len(frame)
            assert age["sum"][site]["train"] == pytest.approx(round(float(frame.sum()), 4), abs=1e-3)
            assert age["mean"][site]["train"] == pytest.approx(round(float(frame.mean()), 4), abs=1e-4)
            assert age["stddev"][site]["train"] == pytest.approx(round(float(frame.std()), 4), abs=2e-4)
        # quantiles need fastdigest, as in FLARE: empty without it
        assert age["quantile"]["site-1"] == {"train": {}, "test": {}}

    # site-2's test set has 8 records, fewer than min_count 10: only its count left the site
    assert stats["Age"]["count"]["site-2"]["test"] == 8
    assert "site-2" not in stats["Age"]["mean"] or "test" not in stats["Age"]["mean"]["site-2"]
    assert stats["Age"]["mean"]["Global"]["test"] == pytest.approx(round(float(pooled("site-1", "test")["Age"].mean()), 4))

    # Age: the configured range, 20 bins of 5; the global histogram is the sum of the sites'
    hist = stats["Age"]["histogram"]
    assert [b[:2] for b in hist["Global"]["train"]] == [[5.0 * i, 5.0 * (i + 1)] for i in range(20)]
    for i, (low, high, count) in enumerate(hist["Global"]["train"]):
        assert count == hist["site-1"]["train"][i][2] + hist["site-2"]["train"][i][2]
        frame = pooled(None, "train")["Age"]
        assert count == int(((frame >= low) & ((frame < high) if i < 19 else (frame <= high))).sum())
    # 20 bins need more than 200 records (max_bins_percent 10): site-2's test histogram is withheld
    assert "test" not in hist.get("site-2", {})
    # fnlwgt: no range configured; the global range comes from the sites' noised min and max
    bins = stats["fnlwgt"]["histogram"]["Global"]["train"]
    frame = pooled(None, "train")["fnlwgt"]
    assert bins[0][0] < frame.min() and bins[-1][1] > frame.max()
    assert sum(b[2] for b in bins) == len(frame)


def stats_ctx(tmp_path: Path, components: dict[str, Any]) -> SiteContext:
    return SiteContext("site-1", "job", tmp_path, components, [])


def local(count: int = 100, failures: int = 0, bins: int = 5) -> dict[str, Any]:
    hist = Histogram(HistogramType.STANDARD, [Bin(float(i), float(i + 1), count / bins) for i in range(bins)])
    return {"count": {"train": {"a": count}}, "failure_count": {"train": {"a": failures}},
            "sum": {"train": {"a": 10.0}}, "min": {"train": {"a": 2.0}}, "max": {"train": {"a": -4.0}},
            "histogram": {"train": {"a": hist}}}


def test_min_count_withholds_all_but_the_count_of_a_small_feature() -> None:
    statistics, changed = MinCountCleanser(min_count=10).apply(local(count=12, failures=3), "site-1")
    assert changed and statistics["count"] == {"train": {"a": 12}}
    assert all(statistics[name]["train"] == {} for name in ("failure_count", "sum", "min", "max", "histogram"))
    statistics, changed = MinCountCleanser(min_count=10).apply(local(count=13, failures=3), "site-1")
    assert not changed and statistics["sum"]["train"] == {"a": 10.0}


def test_histogram_bins_must_be_fewer_than_their_percent_of_the_records() -> None:
    _, changed = HistogramBinsCleanser(max_bins_percent=10).apply(local(count=60, bins=6), "site-1")
    assert changed  # 6 bins, not fewer than 10 % of 60
    statistics, changed = HistogramBinsCleanser(max_bins_percent=10).apply(local(count=70, bins=6), "site-1")
    assert not changed and len(statistics["histogram"]["train"]["a"].bins) == 6


def test_the_min_and_max_leave_the_site_widened_by_the_noise() -> None:
    for _ in range(20):
        statistics, changed = AddNoiseToMinMax(0.1, 0.3).apply(local(), "site-1")
        assert changed
        assert 2.0 * 0.7 <= statistics["min"]["train"]["a"] <= 2.0 * 0.9
        assert -4.0 * 0.9 <= statistics["max"]["train"]["a"] <= -4.0 * 0.7
    with pytest.raises(ValueError, match="must not exceed"):
        AddNoiseToMinMax(0.3, 0.1)


def test_the_privacy_filter_applies_the_cleansers_to_a_sites_result(tmp_path: Path) -> None:
    task = "fed_stats_2nd_statistics"
    result = FLModel(params={"fed_stats_task_key": task, task: encode(local(count=12, failures=3))})
    ctx = stats_ctx(tmp_path, {"min_count": MinCountCleanser(min_count=10)})
    cleansed = StatisticsPrivacyFilter(["min_count", "disabled_one"]).process(result, ctx)
    json.dumps(cleansed.params)  # still plain JSON for the wire
    statistics = decode(cleansed.params[task])
    assert statistics["count"]["train"] == {"a": 12} and statistics["histogram"]["train"] == {}
    other = FLModel(params={"w": np.zeros(2)})
    assert StatisticsPrivacyFilter(["min_count"]).process(other, ctx) is other


def test_the_global_variance_and_stddev_add_the_sites_variances_around_the_global_mean() -> None:
    a, b = np.array([1.0, 2.0, 3.0, 10.0]), np.array([4.0, 6.0])
    pooled_mean, n = float(np.concatenate([a, b]).mean()), 6
    sites = {"var": {s: {"d": {"f": float(((x - pooled_mean) ** 2).sum() / (n - 1))}} for s, x in (("1", a), ("2", b))}}
    sites["stddev"] = {}  # asked for: computed from the variance the sites sent
    found = global_statistics({}, sites, "fed_stats_2nd_statistics", {"stddev": {}}, 4)
    assert found["var"]["d"]["f"] == pytest.approx(float(np.concatenate([a, b]).var(ddof=1)), abs=1e-4)
    assert found["stddev"]["d"]["f"] == pytest.approx(math.sqrt(float(np.concatenate([a, b]).var(ddof=1))), abs=1e-4)
