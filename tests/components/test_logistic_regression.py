"""FLARE 2.9's FedAvgLR + LRModelPersistor (FedAvgLrRecipe, hello-lr): federated Newton-Raphson
logistic regression gives the weights a centralized Newton-Raphson on the same data gives."""

from __future__ import annotations

import numpy as np
import pytest
from harness.exported_jobs import (
    client_config,
    errors,
    in_process,
    run_dir,
    server_config,
    write_job,
)
from harness.launching import launch

from flconfig.components.logistic_regression import FedAvgLR, LRModelPersistor
from flconfig.runtime.context import SiteContext

N_FEATURES = 4
# Each site's data: a noisy logistic model of 4 features, 150 or 250 samples.
DATA = """
import numpy as np

def site_data(site):
    rng = np.random.RandomState(int(site[-1]))
    n = 150 if site == "site-1" else 250
    x = rng.normal(size=(n, 4))
    true_w = np.array([0.5, -1.0, 2.0, 0.0, 1.0])
    p = 1 / (1 + np.exp(-(true_w[0] + x @ true_w[1:])))
    y = (rng.uniform(size=n) < p).astype(float).reshape(-1, 1)
    return x, y
"""
# hello-lr's client.py, on site_data(): gradient and Hessian of the log-likelihood at the
# global weights, the number of samples as NUM_STEPS_CURRENT_ROUND.
CLIENT = DATA + """
import nvflare.client as flare
from nvflare.apis.fl_constant import FLMetaKey
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.np.constants import NPConstants

flare.init()
x, y = site_data(flare.get_site_name())
x1 = np.concatenate((np.ones((x.shape[0], 1)), x), axis=1)
while flare.is_running():
    model = flare.receive()
    theta = model.params[NPConstants.NUMPY_KEY]
    proba = 1.0 / (1.0 + np.exp(-np.dot(x1, theta)))
    gradient = np.dot(x1.T, (y - proba))
    hessian = x1.T.dot(np.diag((proba * (1 - proba))[:, 0])).dot(x1)
    accuracy = float(np.mean((proba > 0.5) == (y > 0.5)))
    result = FLModel(params={"gradient": gradient, "hessian": hessian}, params_type=ParamsType.FULL,
                     metrics={"accuracy": accuracy})
    result.meta[FLMetaKey.NUM_STEPS_CURRENT_ROUND] = x.shape[0]
    flare.send(result)
"""


def lr_export(root, damping: float = 0.8):
    """FedAvgLrRecipe's export: FedAvgLR, LRModelPersistor and MetricsArtifactWriter; 5 rounds
    (BaseFedAvg's default, so not written)."""
    server = server_config(
        [{"id": "controller", "path": "nvflare.app_common.workflows.lr.fedavg.FedAvgLR",
          "args": {"damping_factor": damping, "num_clients": 2, "n_features": N_FEATURES,
                   "persistor_id": "lr_persistor"}}],
        [{"id": "lr_persistor", "path": "nvflare.app_common.workflows.lr.np_persistor.LRModelPersistor",
          "args": {"n_features": N_FEATURES}},
         {"id": "metrics_artifact_writer",
          "path": "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter", "args": {}}])
    client = client_config([in_process(task_script_args="--data_root /tmp/unused", server_expected_format="raw")])
    return write_job(root, "lr_fedavg", server, client, scripts={"client.py": CLIENT})


def centralized(rounds: int, damping: float, epsilon: float = 1.0) -> np.ndarray:
    """The same Newton-Raphson steps on the pooled data, each site weighted by its samples."""
    scope: dict = {}
    exec(DATA, scope)
    w = np.zeros((N_FEATURES + 1, 1), dtype=np.float32)
    data = [scope["site_data"](site) for site in ("site-1", "site-2")]
    for _ in range(rounds):
        grads, hessians, weights = [], [], []
        for x, y in data:
            x1 = np.concatenate((np.ones((x.shape[0], 1)), x), axis=1)
            p = 1.0 / (1.0 + np.exp(-x1 @ w))
            grads.append(x1.T @ (y - p))
            hessians.append(x1.T @ np.diag((p * (1 - p))[:, 0]) @ x1)
            weights.append(x.shape[0])
        g = sum(n * gi for n, gi in zip(weights, grads, strict=True)) / sum(weights)
        h = sum(n * hi for n, hi in zip(weights, hessians, strict=True)) / sum(weights)
        w = (w + damping * np.linalg.solve(h + epsilon * np.eye(h.shape[0]), g)).astype(np.float32)
    return w


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fedavglr_reaches_the_centralized_newton_raphson_weights(tmp_path) -> None:
    job = lr_export(tmp_path)
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round 5/5" in proc.stdout
    weights = np.load(run_dir(ws) / "models" / "weights.npy")
    assert weights.shape == (N_FEATURES + 1, 1) and weights.dtype == np.float32
    np.testing.assert_allclose(weights, centralized(5, 0.8), rtol=1e-4, atol=1e-5)
    # it learnt: the signs of the true weights (0.5, -1, 2, 0, 1) where they are not 0
    assert weights[1, 0] < -0.5 and weights[2, 0] > 1.0 and weights[4, 0] > 0.5
    assert (run_dir(ws) / "metrics" / "round_metrics.jsonl").read_text().count("\n") == 5


def test_the_lr_persistor_starts_from_zeros_of_n_features_plus_one(tmp_path) -> None:
    ctx = SiteContext("server", "job", tmp_path, {}, [], role="server")
    model = LRModelPersistor(n_features=3).load(ctx)
    np.testing.assert_array_equal(model.params["numpy_key"], np.zeros((4, 1), dtype=np.float32))
    assert model.params["numpy_key"].dtype == np.float32


def test_without_a_persistor_component_fedavglr_makes_its_own(tmp_path) -> None:
    workflow = FedAvgLR(damping_factor=0.5, n_features=2, model_name="w.npy")
    ctx = SiteContext("server", "job", tmp_path, {}, [], role="server")
    persistor = workflow._find_persistor(ctx)  # type: ignore[arg-type]
    assert isinstance(persistor, LRModelPersistor)
    assert persistor.model_name == "w.npy" and persistor.n_features == 2
    job = lr_export(tmp_path)
    server = job / "app" / "config" / "config_fed_server.json"
    server.write_text(server.read_text().replace('"persistor_id": "lr_persistor"', '"epsilon": 0.5')
                      .replace('"damping_factor": 0.8', '"damping_factor": 0'))
    found = errors(job)
    assert len(found) == 1 and "damping_factor" in found[0]  # a default persistor id naming nothing is fine
