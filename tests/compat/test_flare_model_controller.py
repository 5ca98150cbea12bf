"""A workflow written against FLARE's ModelController API (``run()`` with
``send_model_and_wait``, ``load_model``, ``save_model``, ``sample_clients``) runs unchanged."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch

from flconfig.validate.loader import inspect_job

# The job's own workflows, written as FLARE 2.5's examples write theirs.
WORKFLOWS = '''
from nvflare.app_common.abstract.fl_model import FLModel
from nvflare.app_common.workflows.base_fedavg import BaseFedAvg
from nvflare.app_common.workflows.model_controller import ModelController


class MyFedAvg(BaseFedAvg):
    def run(self) -> None:
        self.info("Start FedAvg.")
        model = self.load_model()
        model.start_round = self.start_round
        model.total_rounds = self.num_rounds
        for self.current_round in range(self.start_round, self.start_round + self.num_rounds):
            self.info(f"Round {self.current_round} started.")
            model.current_round = self.current_round
            clients = self.sample_clients(self.num_clients)
            results = self.send_model_and_wait(targets=clients, data=model)
            aggregate_results = self.aggregate(results, aggregate_fn=self.aggregate_fn)
            model = self.update_model(model, aggregate_results)
            self.save_model(model)
        self.info("Finished FedAvg.")


class FirstOnly(ModelController):
    """Takes the first site's weights each round (a custom aggregation, and send_model's callback)."""

    def __init__(self, *args, num_rounds: int = 2, **kwargs):
        super().__init__(*args, **kwargs)
        self.num_rounds = num_rounds
        self.seen = []

    def run(self) -> None:
        model = self.load_model()
        for r in range(self.num_rounds):
            model.current_round = r
            self.send_model(data=model, callback=lambda result: self.seen.append(result.meta["client_name"]))
            self.info(f"round {r} results from {sorted(self.seen)}")
            results = self.send_model_and_wait(targets=["site-1"], data=model)
            model.params = results[0].params
            self.save_model(model)
'''


def write_job(root: Path, workflow: dict) -> Path:
    app = root / "job" / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (app / "custom" / "my_workflows.py").write_text(textwrap.dedent(WORKFLOWS))
    server = {"format_version": 2,
              "components": [{"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor"}],
              "workflows": [workflow]}
    client = {"format_version": 2, "executors": [
        {"tasks": ["train"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer", "args": {}}}]}
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "model-controller", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"


FEDAVG = {"id": "fedavg", "path": "my_workflows.MyFedAvg", "args": {"num_clients": 2, "num_rounds": 3}}
DEFAULT = np.arange(1, 10, dtype=np.float32).reshape(3, 3)



def test_a_model_controller_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path, FEDAVG), environ={})
    assert [p.message for p in problems] == []


def test_flares_weighted_aggregation_helper_and_update_model() -> None:
    from flconfig.compat.nvflare.app_common.abstract.fl_model import FLModel
    from flconfig.compat.nvflare.app_common.utils.fl_model_utils import FLModelUtils
    from flconfig.compat.nvflare.app_common.workflows.base_fedavg import BaseFedAvg

    results = [FLModel(params={"w": np.array([1.0, 3.0])}, metrics={"acc": 0.5},
                       meta={"NUM_STEPS_CURRENT_ROUND": 1, "client_name": "a"}),
               FLModel(params={"w": np.array([4.0, 6.0])}, metrics={"acc": 0.8},
                       meta={"NUM_STEPS_CURRENT_ROUND": 2, "client_name": "b"})]
    aggregate = BaseFedAvg.aggregate_fn(results)
    np.testing.assert_allclose(aggregate.params["w"], [3.0, 5.0])
    assert aggregate.metrics == {"acc": pytest.approx(0.7)} and aggregate.meta["nr_aggregated"] == 2
    model = FLModel(params={"w": np.zeros(2)})
    diff = FLModel(params_type="DIFF", params={"w": np.ones(2)}, meta={"k": 1})
    np.testing.assert_array_equal(FLModelUtils.update_model(model, diff).params["w"], [1.0, 1.0])
    assert model.meta == {"k": 1}
    with pytest.raises(ValueError, match="is empty"):
        BaseFedAvg._check_results([FLModel(meta={"client_name": "c"})])


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_base_fedavg_subclass_trains_and_saves_as_flares_fedavg(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path, FEDAVG), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    # three rounds of +1 at both sites, averaged
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), DEFAULT + 3)
    log = (run / "log.txt").read_text()
    assert "MyFedAvg: Round 2 started." in log and "MyFedAvg: Finished FedAvg." in log
    assert "round 3/3: results from site-1, site-2" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_send_model_callbacks_and_targets_reach_the_job_code(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    job = write_job(tmp_path, {"id": "first", "path": "my_workflows.FirstOnly", "args": {"num_rounds": 2}})
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    # each round: the whole federation trains once (the callback), then site-1 alone: +1 a round
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), DEFAULT + 2)
    log = (run / "log.txt").read_text()
    assert "FirstOnly: round 1 results from ['site-1', 'site-1', 'site-2', 'site-2']" in log
