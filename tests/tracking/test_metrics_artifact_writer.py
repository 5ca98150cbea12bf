"""MetricsArtifactWriter: the per-round and summary metric files FLARE 2.9 writes, under flconfig.

A real job (FLARE 2.9's NumPy FedAvg export, a synthetic Client API script) runs under
``flconfig launch`` and the two files are read back; the writer's limits and skip reasons
are checked on a real site context with the events the workflows fire.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import numpy as np
import pytest
from harness.exported_jobs import (
    BASE_FED_JOB_SERVER,
    EVENT_TO_FED,
    FEDAVG,
    NP_PERSISTOR,
    client_config,
    errors,
    in_process,
    run_dir,
    server_config,
    write_job,
)
from harness.launching import launch

from flconfig.components.base import AppEventType
from flconfig.components.metrics_artifacts import MetricsArtifactWriter
from flconfig.runtime.context import SiteContext
from flconfig.types import Event, EventType, FLModel

# Each site's loss halves every round; site-2's is three times site-1's and it trained three
# times the steps, so the aggregate (weighted by steps) is 2.5x site-1's.
CLIENT = """
import nvflare.client as flare

flare.init()
site = flare.get_site_name()
while flare.is_running():
    model = flare.receive()
    r = model.current_round
    loss = 0.5 ** (r + 1) * (1 if site == "site-1" else 3)
    flare.send(flare.FLModel(params={"numpy_key": model.params["numpy_key"] + 1},
                             metrics={"loss": loss, "accuracy": 1 - loss, "note": f"{site} r{r}",
                                      "broken": float("nan")},
                             meta={"NUM_STEPS_CURRENT_ROUND": 10 if site == "site-1" else 30}))
"""


def numpy_fedavg(root: Path, rounds: int = 3, **fedavg_args: object) -> Path:
    """FLARE 2.9's NumpyFedAvgRecipe export (hello-numpy), with ``CLIENT`` as its script."""
    server = server_config(
        [{"id": "controller", "path": FEDAVG,
          "args": {"aggregation_weights": {}, "num_clients": 2, "num_rounds": rounds, **fedavg_args}}],
        [*BASE_FED_JOB_SERVER,
         {"id": "persistor", "path": NP_PERSISTOR, "args": {"model": [[1, 2, 3], [4, 5, 6], [7, 8, 9]]}}])
    client = client_config([in_process(params_exchange_format="numpy")], [EVENT_TO_FED])
    return write_job(root, "hello-numpy", server, client, scripts={"client.py": CLIENT})


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_fedavg_run_writes_flares_round_and_summary_files(tmp_path: Path) -> None:
    job = numpy_fedavg(tmp_path)
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    metrics = run_dir(ws) / "metrics"

    lines = (metrics / "round_metrics.jsonl").read_text().splitlines()
    assert all(", " not in line and ": " not in line for line in lines)  # compact, one object a line
    records = [json.loads(line) for line in lines]
    assert [r["round"] for r in records] == [0, 1, 2]
    for r, record in enumerate(records):
        base = 0.5 ** (r + 1)
        aggregated = {m["name"]: m["value"] for m in record["aggregated_metrics"]}
        assert aggregated == pytest.approx({"loss": 2.5 * base, "accuracy": 1 - 2.5 * base})
        sites = {s["name"]: s for s in record["sites"]}
        assert sorted(sites) == ["site-1", "site-2"]
        assert sites["site-1"]["weight"] == 10 and sites["site-2"]["weight"] == 30
        assert {s["weight_key"] for s in sites.values()} == {"effective_fedavg_metric_weight"}
        site_2 = {m["name"]: m["value"] for m in sites["site-2"]["metrics"]}
        assert site_2 == {"loss": pytest.approx(3 * base), "accuracy": pytest.approx(1 - 3 * base),
                          "note": f"site-2 r{r}"}  # a site's string metric is kept
        # NaN is never written: listed per site with its reason
        assert sorted((s["site"], s["name"], s["reason"]) for s in record["skipped_metrics"]) == [
            ("site-1", "broken", "non_finite_number"), ("site-2", "broken", "non_finite_number")]
        assert record["aggregation"] == {
            "method": "weighted_average", "weight_key": "effective_fedavg_metric_weight",
            "metric_policy": "finite_numeric_metrics_only_per_key_denominator",
            "weight_formula": "aggregation_weight * NUM_STEPS_CURRENT_ROUND"}

    summary_text = (metrics / "metrics_summary.json").read_text()
    assert summary_text.startswith('{\n  "schema_version": "1"')  # indented as FLARE's
    summary = json.loads(summary_text)
    assert summary["status"] == "metrics_reported" and summary["final_round"] == 2
    assert {m["name"]: m["value"] for m in summary["final_aggregated_metrics"]} == pytest.approx(
        {"loss": 2.5 * 0.125, "accuracy": 1 - 2.5 * 0.125})
    assert summary["round_metrics_file"] == "round_metrics.jsonl"
    assert summary["job_name"] == "hello-numpy"
    assert summary["metric_source"] == "client_reported_flmodel_metrics"
    # IntimeModelSelector chose the best round (accuracy rises each round; round 0 is skipped)
    assert summary["key_metric"] == {"name": "accuracy", "mode": "max",
                                     "mode_source": "IntimeModelSelector.negate_key_metric"}
    assert summary["best_round"] == 2
    # the selector's mean is not weighted by steps (weigh_by_local_iter is off): (0.875 + 0.625) / 2
    assert summary["best_metrics"] == [{"name": "accuracy", "value": pytest.approx(0.75)}]
    assert summary["best_metric_source"] == "IntimeModelSelector"
    assert summary["best_metric_detail_source"] == "initial_metrics"
    assert len(summary["notes"]) == 2


def site_ctx(tmp_path: Path) -> SiteContext:
    ctx = SiteContext("server", "job", tmp_path, {}, [], role="server")
    ctx.props["current_round"] = 0
    return ctx


def contribute(writer: MetricsArtifactWriter, ctx: SiteContext, site: str, metrics: dict, steps: object = 1,
               accepted: bool = True) -> None:
    result = FLModel(params={"w": np.zeros(1)}, metrics=metrics, meta={"NUM_STEPS_CURRENT_ROUND": steps})
    writer.handle_event(Event(AppEventType.AFTER_CONTRIBUTION_ACCEPT,
                              {"site": site, "result": result, "accepted": accepted}), ctx)


def aggregate(writer: MetricsArtifactWriter, ctx: SiteContext, metrics: dict, **meta: object) -> None:
    writer.handle_event(Event(AppEventType.AFTER_AGGREGATION, FLModel(metrics=metrics, meta=dict(meta))), ctx)


def lines(ctx: SiteContext) -> list[dict]:
    path = ctx.run_dir / "metrics" / "round_metrics.jsonl"
    return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []


def test_values_json_cannot_carry_faithfully_are_listed_with_their_reason(tmp_path: Path) -> None:
    writer, ctx = MetricsArtifactWriter(limits={"max_string_value_length": 5, "max_int_bit_length": 8}), site_ctx(tmp_path)
    writer.handle_event(Event(EventType.START_RUN), ctx)
    contribute(writer, ctx, "site-1", {"ok": np.float32(0.5), "big": 2 ** 9, "long": "abcdef", "list": [1],
                                       "inf": math.inf, "": 1.0, "flag": True, "ctl\x01name": 1},
               steps=np.int64(4))
    contribute(writer, ctx, "site-2", {"acc": 0.9}, accepted=False)  # refused: not recorded
    aggregate(writer, ctx, {"ok": 0.5, "text": "not aggregated", "inf": -math.inf})
    [record] = lines(ctx)
    [site] = record["sites"]
    assert site == {"name": "site-1", "weight": 4, "weight_key": "NUM_STEPS_CURRENT_ROUND",
                    "metrics": [{"name": "ok", "value": 0.5}, {"name": "flag", "value": True},
                                {"name": "ctlname", "value": 1}]}
    assert record["aggregated_metrics"] == [{"name": "ok", "value": 0.5}]
    assert sorted((s.get("site", ""), s["name"], s["reason"]) for s in record["skipped_metrics"]) == sorted([
        ("", "text", "unsupported_type"), ("", "inf", "non_finite_number"),
        ("site-1", "big", "number_too_large"), ("site-1", "long", "string_too_long"),
        ("site-1", "list", "unsupported_type"), ("site-1", "inf", "non_finite_number"),
        ("site-1", "", "empty_metric_name")])
    assert "aggregation" not in record  # the workflow described none


def test_the_limits_bound_sites_metrics_and_the_record(tmp_path: Path) -> None:
    writer = MetricsArtifactWriter(limits={"max_metrics_per_site_per_round": 2, "max_sites_per_round": 1,
                                           "max_round_record_bytes": 400})
    ctx = site_ctx(tmp_path)
    contribute(writer, ctx, "site-1", {"a": 1.0, "b": 2.0, "c": 3.0})
    contribute(writer, ctx, "site-2", {"a": 1.0})
    aggregate(writer, ctx, {"a": 1.0})
    [record] = lines(ctx)
    assert [s["name"] for s in record["sites"]] == ["site-1"]
    assert [m["name"] for m in record["sites"][0]["metrics"]] == ["a", "b"]
    assert {(s["name"], s["reason"]) for s in record["skipped_metrics"]} == {("c", "too_many_metrics"),
                                                                            ("", "too_many_sites")}
    # A record over max_round_record_bytes keeps what fits and says what was cut.
    ctx.props["current_round"] = 1
    for i in range(20):
        writer._limits["max_sites_per_round"] = 100
        contribute(writer, ctx, f"site-{i}", {"a": float(i)})
    aggregate(writer, ctx, {"a": 1.0})
    record = lines(ctx)[1]
    assert len(json.dumps(record, separators=(",", ":"))) <= 400
    assert 0 < len(record["sites"]) < 20
    assert {"name": "", "reason": "sites_truncated"} in record["skipped_metrics"]


def test_no_metrics_means_no_files_and_a_summary_needs_a_reported_round(tmp_path: Path) -> None:
    writer, ctx = MetricsArtifactWriter(results_dir="out"), site_ctx(tmp_path)
    contribute(writer, ctx, "site-1", {})
    aggregate(writer, ctx, {})
    writer.handle_event(Event(EventType.END_RUN), ctx)
    assert not (ctx.run_dir / "out").exists()
    # A custom aggregator's aggregate without metrics is told of at the end (FLARE's warning).
    aggregate(writer, ctx, {}, metrics_aggregation_info={"metric_source": "custom_aggregator_flmodel_metrics"})
    assert writer._silent_custom_rounds == [0]
    contribute(writer, ctx, "site-1", {"a": 1.0})
    aggregate(writer, ctx, {"a": 1.0})
    writer.handle_event(Event(EventType.END_RUN), ctx)
    summary = json.loads((ctx.run_dir / "out" / "metrics_summary.json").read_text())
    assert summary["final_round"] == 0 and summary["job_name"] == "job"


def test_a_summary_over_its_byte_limit_drops_the_notes_first(tmp_path: Path) -> None:
    writer, ctx = MetricsArtifactWriter(limits={"max_summary_bytes": 330}), site_ctx(tmp_path)
    contribute(writer, ctx, "site-1", {"a": 1.0})
    aggregate(writer, ctx, {"a": 1.0})
    writer.handle_event(Event(EventType.END_RUN), ctx)
    summary = json.loads((ctx.run_dir / "metrics" / "metrics_summary.json").read_text())
    assert "notes" not in summary and summary["final_aggregated_metrics"] == [{"name": "a", "value": 1.0}]


def test_file_names_and_folders_stay_in_the_run_folder(tmp_path: Path) -> None:
    job = numpy_fedavg(tmp_path)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["components"][2]["args"] = {"results_dir": "../out", "round_file_name": "a/b.jsonl",
                                       "limits": {"max_sites": 3}}
    server_file.write_text(json.dumps(server))
    found = errors(job)
    assert len(found) == 3, found
    assert any("results_dir" in e and "relative path inside the run folder" in e for e in found)
    assert any("round_file_name" in e and "a file name without a folder" in e for e in found)
    assert any("max_sites" in e for e in found)


def test_a_workflow_written_against_flares_basefedavg_reports_its_aggregates(tmp_path: Path) -> None:
    # Scaffold and the job's own ModelController workflows aggregate through FLARE's BaseFedAvg API
    from flconfig.compat.nvflare.app_common.abstract.fl_model import FLModel as FlareModel
    from flconfig.compat.nvflare.app_common.workflows.base_fedavg import BaseFedAvg
    from flconfig.compat.shareables import flare_context

    writer, ctx = MetricsArtifactWriter(), site_ctx(tmp_path)
    contribute(writer, ctx, "site-1", {"acc": 0.5}, steps=2)
    contribute(writer, ctx, "site-2", {"acc": 1.0}, steps=6)
    results = [FlareModel(params={"w": np.zeros(1)}, metrics={"acc": acc}, current_round=0,
                          meta={"client_name": site, "NUM_STEPS_CURRENT_ROUND": steps})
               for site, acc, steps in (("site-1", 0.5, 2), ("site-2", 1.0, 6))]

    class Workflow(BaseFedAvg):
        def run(self) -> None: ...

    workflow = Workflow()
    workflow._ctx = ctx  # the server's context and FLContext, as flconfig's adapter sets them
    workflow.fl_ctx = flare_context(ctx)
    workflow.current_round = 0
    ctx._handlers = [writer]
    workflow.aggregate(results)
    [record] = lines(ctx)
    assert record["aggregated_metrics"] == [{"name": "acc", "value": pytest.approx(0.875)}]
    assert [s["name"] for s in record["sites"]] == ["site-1", "site-2"]
    assert record["aggregation"]["weight_key"] == "NUM_STEPS_CURRENT_ROUND"
