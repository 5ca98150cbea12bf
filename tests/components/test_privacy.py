"""FLARE's privacy filters (ExcludeVars, PercentilePrivacy, SVTPrivacy) as FLARE's configs name them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness.launching import launch
from harness.numpy_job import write_job

from flconfig.components.privacy import (
    SVT_ACCOUNTANT_KEY,
    SVT_BUDGET_KEY,
    ExcludeVars,
    PercentilePrivacy,
    SVTPrivacy,
)
from flconfig.runtime.context import SiteContext
from flconfig.types import FLModel, ReturnCode
from flconfig.validate.loader import inspect_job

FILTERS = "nvflare.app_common.filters"


def ctx(tmp_path: Path) -> SiteContext:
    return SiteContext("site-1", "job1", tmp_path, {}, [])


def model(params_type: str = "DIFF", steps: int | None = None, **params: object) -> FLModel:
    meta = {} if steps is None else {"NUM_STEPS_CURRENT_ROUND": steps}
    return FLModel(params=dict(params), meta=meta, params_type=params_type)


def test_exclude_vars_leaves_out_names_or_regex_matches(tmp_path: Path) -> None:
    data = model(**{"conv.weight": np.ones(2), "conv.bias": np.ones(1), "fc.weight": np.ones(3)})
    assert sorted(ExcludeVars(["conv.bias"]).process(data, ctx(tmp_path)).params) == ["conv.weight", "fc.weight"]
    assert sorted(ExcludeVars("^conv").process(data, ctx(tmp_path)).params) == ["fc.weight"]
    # None, an empty pattern, or a list with a non-string exclude nothing, as in FLARE
    for nothing in (None, "", ["conv.bias", 3]):
        kept = ExcludeVars(nothing).process(data, ctx(tmp_path))  # type: ignore[arg-type]
        assert sorted(kept.params) == ["conv.bias", "conv.weight", "fc.weight"]
    assert sorted(data.params) == ["conv.bias", "conv.weight", "fc.weight"]  # the input is not changed


def test_exclude_vars_filters_only_its_data_kinds_and_ok_results(tmp_path: Path) -> None:
    weights_only = ExcludeVars(["w"], data_kinds=["WEIGHTS"])
    assert "w" in weights_only.process(model("DIFF", w=np.ones(1)), ctx(tmp_path)).params
    assert "w" not in weights_only.process(model("FULL", w=np.ones(1)), ctx(tmp_path)).params
    failed = FLModel(params={"w": np.ones(1)}, rc=ReturnCode.EXECUTION_EXCEPTION)
    assert "w" in ExcludeVars(["w"]).process(failed, ctx(tmp_path)).params
    with pytest.raises(ValueError, match="METRICS"):
        ExcludeVars(["w"], data_kinds=["METRICS"])


def test_percentile_privacy_zeroes_small_changes_and_clips_the_rest(tmp_path: Path) -> None:
    diff = np.arange(1, 11, dtype=np.float32) * 2  # 2 .. 20, over 2 steps: 1 .. 10
    out = PercentilePrivacy(percentile=50, gamma=7.5).process(
        model(steps=2, w=diff, scalar=np.float32(3.0)), ctx(tmp_path))
    # the 50th percentile of 1..10 and the scalar's 1.5 (FLARE counts it) is 5: 1..4 become 0,
    # 5..10 are clipped to 7.5, times 2 steps
    np.testing.assert_array_equal(out.params["w"], [0, 0, 0, 0, 10, 12, 14, 15, 15, 15])
    assert out.params["w"].dtype == np.float32
    assert out.params["scalar"] == 3.0
    # gamma <= 0 or a percentile outside 0..100 leaves the model as it is (as in FLARE)
    same = model(w=diff)
    assert PercentilePrivacy(gamma=0).process(same, ctx(tmp_path)).params["w"] is diff
    assert PercentilePrivacy(percentile=101).process(same, ctx(tmp_path)).params["w"] is diff


def test_percentile_privacy_keeps_torch_tensors_tensors(tmp_path: Path) -> None:
    out = PercentilePrivacy(percentile=0, gamma=0.5).process(
        model(w=torch.tensor([-1.0, 0.25, 2.0], dtype=torch.float16)), ctx(tmp_path))
    assert isinstance(out.params["w"], torch.Tensor) and out.params["w"].dtype == torch.float16
    assert out.params["w"].tolist() == [-0.5, 0.25, 0.5]


def test_svt_privacy_shares_a_noisy_fraction_and_accounts_for_the_budget(tmp_path: Path) -> None:
    np.random.seed(0)
    svt = SVTPrivacy(fraction=0.25, epsilon=0.1, noise_var=0.1, gamma=1e-2, replace=False)
    diff = np.random.default_rng(1).normal(scale=1e-2, size=(20, 10)).astype(np.float32)
    out = svt.process(model(w=diff, b=np.float32(7)), ctx(tmp_path))
    shared = out.params["w"]
    assert shared.shape == (20, 10) and shared.dtype == np.float32
    assert np.count_nonzero(shared) == 50  # ceil(0.25 * 200) entries, drawn without replacement
    assert out.params["b"] == 7  # scalars pass
    budget = out.meta[SVT_BUDGET_KEY]
    assert budget["n_upload"] == 50 and budget["has_scalar_passthrough"] is True
    assert budget["epsilon_threshold"] + budget["epsilon_query"] == pytest.approx(0.1)
    assert budget["epsilon_release"] == pytest.approx(50 * 0.1)
    assert out.meta[SVT_ACCOUNTANT_KEY]["calls"] == 1
    again = svt.process(model(w=diff), ctx(tmp_path))
    assert again.meta[SVT_ACCOUNTANT_KEY]["calls"] == 2
    assert svt.privacy_spent() == pytest.approx(2 * budget["epsilon_total"])


def test_svt_privacy_refuses_budgets_that_do_not_add_up(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="add up to epsilon"):
        SVTPrivacy(epsilon=0.1, epsilon_threshold=0.05, epsilon_query=0.2).process(
            model(w=np.ones(10)), ctx(tmp_path))


def test_flares_filters_app_validates_clean(tmp_path: Path) -> None:
    # FLARE's integration-test app "filters": the three filters with their defaults, on data and results
    job = write_job(tmp_path)
    client = json.loads((job / "app" / "config" / "config_fed_client.json").read_text())
    chain = [{"path": f"{FILTERS}.exclude_vars.ExcludeVars", "args": {}},
             {"path": f"{FILTERS}.percentile_privacy.PercentilePrivacy", "args": {}},
             {"path": f"{FILTERS}.svt_privacy.SVTPrivacy", "args": {}}]
    client["task_result_filters"] = [{"tasks": ["train"], "filters": chain}]
    client["task_data_filters"] = [{"tasks": ["train"], "filters": chain[:1]}]
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []
    chain[2]["args"] = {"fraction": 2}
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    _, problems = inspect_job(job, environ={})
    assert any("fraction" in str(p.position) or "fraction" in p.message for p in problems)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_percentile_privacy_result_filter_shapes_the_global_model(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["task_result_filters"] = [{"tasks": ["train"], "filters": [
        {"path": f"{FILTERS}.percentile_privacy.PercentilePrivacy", "args": {"percentile": 50, "gamma": 7.5}}]}]
    client_file.write_text(json.dumps(client))
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["workflows"] = server["workflows"][:1]
    server["workflows"][0]["args"]["num_rounds"] = 1
    server_file.write_text(json.dumps(server))
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # each site sends DEFAULT + 1 (2 .. 10); its 50th percentile is 6: 2..5 become 0, 7.5 clips the rest
    np.testing.assert_array_equal(np.load(ws / "server" / "simulate_job" / "models" / "server.npy"),
                                  [[0, 0, 0], [0, 6, 7], [7.5, 7.5, 7.5]])
