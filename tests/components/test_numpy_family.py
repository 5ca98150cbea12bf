"""FLARE's NumPy components: FLARE's hello-numpy job configs run unchanged, with FLARE's results."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch
from harness.numpy_job import CLIENT, DEFAULT, SERVER, write_job

from flconfig.components.numpy_family import (
    NPModelLocator,
    NPModelPersistor,
    NPTrainer,
    NPValidator,
)
from flconfig.runtime.context import SiteContext
from flconfig.types import FLModel, ReturnCode, Signal
from flconfig.validate.loader import inspect_job


def ctx(tmp_path: Path, site: str = "server") -> SiteContext:
    return SiteContext(site, "job1", tmp_path, {}, [])


def test_flares_numpy_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


def test_the_persistor_starts_from_flares_default_and_reloads_what_it_saved(tmp_path: Path) -> None:
    site = ctx(tmp_path)
    persistor = NPModelPersistor()
    model = persistor.load(site)
    np.testing.assert_array_equal(model.params["numpy_key"], DEFAULT)
    assert persistor.model_names(site) == []
    persistor.save(FLModel(params={"numpy_key": DEFAULT + 5}), site)
    saved = site.run_dir / "models" / "server.npy"
    np.testing.assert_array_equal(np.load(saved, allow_pickle=False), DEFAULT + 5)
    np.testing.assert_array_equal(NPModelPersistor().load(site).params["numpy_key"], DEFAULT + 5)
    assert persistor.model_names(site) == ["server"]
    located = NPModelLocator().locate_model("server", site)
    assert located is not None
    np.testing.assert_array_equal(located.params["numpy_key"], DEFAULT + 5)


def test_a_pickled_model_file_is_never_unpickled(tmp_path: Path) -> None:
    site = ctx(tmp_path)
    path = site.run_dir / "models" / "server.npy"
    path.parent.mkdir(parents=True)
    np.save(path, np.array([{"evil": 1}], dtype=object), allow_pickle=True)
    np.testing.assert_array_equal(NPModelPersistor().load(site).params["numpy_key"], DEFAULT)
    assert NPModelLocator().locate_model("server", site) is None


def test_the_trainer_adds_delta_and_keeps_its_model_for_submit_model(tmp_path: Path) -> None:
    site = ctx(tmp_path, "site-1")
    trainer = NPTrainer(delta=2)
    result = trainer.execute("train", FLModel(params={"numpy_key": DEFAULT}, meta={"current_round": 0}),
                             site, Signal())
    np.testing.assert_array_equal(result.params["numpy_key"], DEFAULT + 2)
    assert result.meta == {"NUM_STEPS_CURRENT_ROUND": 1}
    submitted = trainer.execute("submit_model", FLModel(), site, Signal())
    np.testing.assert_array_equal(submitted.params["numpy_key"], DEFAULT + 2)
    bad = trainer.execute("train", FLModel(params={"w": DEFAULT}), site, Signal())
    assert bad.rc == "BAD_TASK_DATA"
    assert trainer.execute("validate", FLModel(), site, Signal()).rc == ReturnCode.TASK_UNKNOWN


def test_the_validator_scores_as_flare_does(tmp_path: Path) -> None:
    result = NPValidator().execute("validate", FLModel(params={"numpy_key": DEFAULT}), ctx(tmp_path), Signal())
    assert 5.0 <= result.metrics["accuracy"] < 6.0  # sum(w / max(w)) = 45 / 9, plus a random [0, 1)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flares_numpy_job_runs_with_flares_results(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    # three rounds of +1 at every site, averaged: FLARE's documented result
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), DEFAULT + 3)
    results = json.loads((run / "cross_site_val" / "cross_val_results.json").read_text())
    assert sorted(results) == ["site-1", "site-2"]
    for scores in results.values():
        assert sorted(scores) == ["SRV_server", "site-1", "site-2"]
        for metrics in scores.values():  # every model is default + 3: 72 / 12, plus a random [0, 1)
            assert 6.0 <= metrics["accuracy"] < 7.0
    assert "global model (SRV_server) validated at: site-1 6." in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fedavg_trains_num_clients_sites_a_round(tmp_path: Path) -> None:
    # FLARE's ModelController FedAvg over the NumPy trainer, one site sampled per round.
    server = {"format_version": 2,
              "workflows": [{"id": "fedavg", "path": "nvflare.app_common.workflows.fedavg.FedAvg",
                             "args": {"num_clients": 1, "num_rounds": 3}}],
              "components": [SERVER["components"][0]]}
    job = write_job(tmp_path)
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    rounds = [line for line in proc.stdout.splitlines() if ": results from " in line]
    assert len(rounds) == 3
    assert all(line.rstrip().rsplit("results from ", 1)[1].split(" (")[0] in ("site-1", "site-2")
               for line in rounds)  # one site a round
    np.testing.assert_array_equal(np.load(ws / "server" / "simulate_job" / "models" / "server.npy"),
                                  DEFAULT + 3)


SITE_WEIGHTS = """import numpy as np

from flconfig.components.base import Executor
from flconfig.types import FLModel


class SiteWeights(Executor):
    def execute(self, task_name, data, ctx, abort_signal):
        value = 10.0 if ctx.site_name == "site-1" else 20.0
        return FLModel(params={"numpy_key": np.full((2, 2), value, dtype=np.float32)})
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("method", ["client", "first"])
def test_initialize_global_weights_starts_training_from_a_sites_weights(tmp_path: Path, method: str) -> None:
    import torch

    job = write_job(tmp_path)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "site_weights.py").write_text(SITE_WEIGHTS)
    client = json.loads(json.dumps(CLIENT))
    client["executors"].append({"tasks": ["get_weights"], "executor": {"path": "site_weights.SiteWeights"}})
    init = {"id": "pre_train",
            "path": "nvflare.app_common.workflows.initialize_global_weights.InitializeGlobalWeights",
            "args": {"task_name": "get_weights"}}
    if method == "client":
        init["args"].update(weight_method="client", weights_client_name="site-2")
    server = json.loads(json.dumps(SERVER))
    server["components"][0] = {"id": "persistor",  # no model of its own: it starts from the sites'
                               "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
                               "args": {}}
    server["workflows"] = [init, server["workflows"][0]]
    server["workflows"][1]["args"]["num_rounds"] = 2
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    assert [p.message for p in inspect_job(job, environ={})[1] if p.is_error] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    said = [text for text in proc.stdout.splitlines() if "the global model starts from the weights of" in text]
    assert len(said) == 1
    site = said[0].rsplit(" ", 1)[1]
    assert site == "site-2" if method == "client" else site in ("site-1", "site-2")
    start = 10.0 if site == "site-1" else 20.0
    final = torch.load(ws / "server" / "simulate_job" / "FL_global_model.pt", weights_only=True)["model"]
    np.testing.assert_array_equal(final["numpy_key"].numpy(), np.full((2, 2), start + 2))  # two rounds of +1


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("workflow", [
    {"id": "cyclic", "path": "nvflare.app_common.workflows.cyclic_ctl.CyclicController",
     "args": {"num_rounds": 3, "task_assignment_timeout": 10, "persistor_id": "persistor",
              "shareable_generator_id": "shareable_generator", "order": "RANDOM_WITHOUT_SAME_IN_A_ROW"}},
    {"id": "cyclic", "name": "Cyclic", "args": {"num_clients": 2, "num_rounds": 3}},
], ids=["CyclicController", "Cyclic"])
def test_cyclic_workflows_relay_the_model_through_every_site(tmp_path: Path, workflow: dict) -> None:
    job = write_job(tmp_path)
    server = {"format_version": 2, "workflows": [workflow], "components": SERVER["components"][:2]}
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    assert [p.message for p in inspect_job(job, environ={})[1] if p.is_error] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    relays = [line.split("relayed through ", 1)[1].split(" (")[0]
              for line in proc.stdout.splitlines() if "relayed through" in line]
    assert len(relays) == 3 and all(sorted(r.split(" → ")) == ["site-1", "site-2"] for r in relays)
    if workflow["id"] == "cyclic" and "order" in workflow.get("args", {}):
        assert all(a.split(" → ")[-1] != b.split(" → ")[0] for a, b in zip(relays[:-1], relays[1:], strict=True))
    # every site adds 1 to the model it is handed: 2 sites x 3 rounds
    np.testing.assert_array_equal(np.load(ws / "server" / "simulate_job" / "models" / "server.npy"),
                                  DEFAULT + 6)


FLARE_API_LEARNER = '''import numpy as np

from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.learner import Learner
from nvflare.app_common.app_constant import AppConstants, ValidateType


class NumpyLearner(Learner):
    """Written against FLARE's Learner API, as FLARE's examples write learners."""

    def __init__(self, delta=1.0, analytic_sender_id="log_writer"):
        super().__init__()
        self.delta = delta
        self.analytic_sender_id = analytic_sender_id
        self.local = None

    def initialize(self, parts: dict, fl_ctx: FLContext):
        self.writer = parts.get(self.analytic_sender_id)
        self.run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
        self.log_info(fl_ctx, f"initialized on {fl_ctx.get_identity_name()}")

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type == "_start_run":
            self.log_info(fl_ctx, "saw START_RUN")

    def train(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        dxo = from_shareable(data)
        current_round = data.get_header(AppConstants.CURRENT_ROUND)
        self.local = {k: np.asarray(v) + self.delta for k, v in dxo.data.items()}
        for step in range(5):
            self.writer.add_scalar("train_loss", 1.0 / (1 + step), current_round * 5 + step)
        return DXO(DataKind.WEIGHTS, data=self.local, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: 5}).to_shareable()

    def validate(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        score = float(np.mean(from_shareable(data).data["numpy_key"]))
        if data.get_header(AppConstants.VALIDATE_TYPE) == ValidateType.BEFORE_TRAIN_VALIDATE:
            return DXO(DataKind.METRICS, data={MetaKey.INITIAL_METRICS: score}).to_shareable()
        return DXO(DataKind.METRICS, data={"mean": score}).to_shareable()

    def get_model_for_validation(self, model_name: str, fl_ctx: FLContext) -> Shareable:
        if self.local is None:
            return make_reply(ReturnCode.EXECUTION_RESULT_ERROR)
        return DXO(DataKind.WEIGHTS, data=self.local).to_shareable()
'''


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_learner_written_against_flares_learner_api_runs_unchanged(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = write_job(tmp_path)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "np_learner.py").write_text(FLARE_API_LEARNER)
    client = {
        "format_version": 2,
        "executors": [{"tasks": ["train", "submit_model", "validate"], "executor": {
            "path": "nvflare.app_common.executors.learner_executor.LearnerExecutor",
            "args": {"learner_id": "np_learner"}}}],
        "components": [
            {"id": "np_learner", "path": "np_learner.NumpyLearner", "args": {"delta": 1.0}},
            {"id": "log_writer", "path": "nvflare.app_opt.tracking.tb.tb_writer.TBWriter",
             "args": {"event_type": "analytix_log_stats"}},
            {"id": "event_to_fed", "name": "ConvertToFedEvent",
             "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}},
        ],
    }
    server = json.loads(json.dumps(SERVER))
    server["components"].append({"id": "receiver", "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
                                 "args": {"events": ["fed.analytix_log_stats"]}})
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []  # nvflare imports included: flconfig serves them
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), DEFAULT + 3)
    results = json.loads((run / "cross_site_val" / "cross_val_results.json").read_text())
    assert results["site-1"]["SRV_server"] == {"mean": pytest.approx(float(np.mean(DEFAULT + 3)))}
    assert results["site-2"]["site-1"] == {"mean": pytest.approx(float(np.mean(DEFAULT + 3)))}
    for site_name in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site_name), size_guidance={"scalars": 0})
        acc.Reload()
        assert [e.step for e in acc.Scalars("train_loss")] == list(range(15))
        log = (ws / site_name / "simulate_job" / "log.txt").read_text()
        assert f"NumpyLearner: initialized on {site_name}" in log
        assert "NumpyLearner: saw START_RUN" in log  # FLARE's handle_event(event_type, fl_ctx)


def test_a_model_folder_outside_the_run_folder_is_an_error_at_its_line(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    server = json.loads(json.dumps(SERVER))
    server["components"][0]["args"] = {"model_dir": "../../elsewhere"}
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    _, problems = inspect_job(job, environ={})
    [problem] = [p for p in problems if p.is_error]
    assert problem.json_path == ("components", 0, "args", "model_dir")
    assert "a relative path inside the run folder" in problem.message + (problem.hint or "")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flares_cross_site_eval_reads_the_server_models_from_the_persistor(tmp_path: Path) -> None:
    # FLARE 2.5's ModelController workflows: FedAvg, then CrossSiteEval with persistor_id
    server = {"format_version": 2, "components": [SERVER["components"][0]], "workflows": [
        {"id": "fedavg", "path": "nvflare.app_common.workflows.fedavg.FedAvg",
         "args": {"num_clients": 2, "num_rounds": 2}},
        {"id": "cse", "path": "nvflare.app_common.workflows.cross_site_eval.CrossSiteEval",
         "args": {"persistor_id": "persistor", "server_models": ["server", "missing.npy"]}}]}
    job = write_job(tmp_path)
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    results = json.loads((run / "cross_site_val" / "cross_val_results.json").read_text())
    assert sorted(results) == ["site-1", "site-2"]
    for scores in results.values():
        assert sorted(scores) == ["server", "site-1", "site-2"]  # FLARE's names: no SRV_ prefix
        assert 63 / 11 <= scores["server"]["accuracy"] < 63 / 11 + 1  # default + 2: 63 / 11, plus a random [0, 1)
    assert "the persistor has no model 'missing.npy' (it has server)" in (run / "log.txt").read_text()


def test_a_dict_whose_name_cannot_be_a_class_is_plain_data_as_in_flare(tmp_path: Path) -> None:
    # FLARE's W&B example: the receiver's kwargs hold the run's {"name": "hello-pt", ...}
    job = write_job(tmp_path)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    receiver = {"id": "mlflow", "path": "nvflare.app_opt.tracking.mlflow.mlflow_receiver.MLflowReceiver",
                "args": {"kw_args": {"experiment_name": "e", "run_name": "r", "name": "hello-pt"}}}
    server["components"].append(receiver)
    server_file.write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems if p.severity == "error"] == []
    receiver["args"]["kw_args"]["name"] = "ScatterAndGatherr"  # a class name: a component, misspelt
    server_file.write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert any("no component is named 'ScatterAndGatherr'" in p.message for p in problems)


# Job code that extends FLARE's own NPTrainer, as two of FLARE's integration jobs do: one
# overrides _train to send the weight difference (np_sag_weights_diff), one wraps it
# (slow_job's SlowTrainer). Both import nvflare.app_common.np.np_trainer, served by flconfig.
DIFF_TRAINER = """
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.apis.signal import Signal
from nvflare.app_common.np.constants import NPConstants
from nvflare.app_common.np.np_trainer import NPTrainer as BaseNPTrainer


class NPTrainer(BaseNPTrainer):
    def _train(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal):
        weights = from_shareable(shareable).data
        new = {NPConstants.NUMPY_KEY: weights[NPConstants.NUMPY_KEY] + self._delta}
        self._save_local_model(fl_ctx, new)
        diff = {k: new[k] - weights[k] for k in new}
        return DXO(data_kind=DataKind.WEIGHT_DIFF, data=diff, meta={}).to_shareable()
"""
WRAPPING_TRAINER = """
from nvflare.app_common.np.np_trainer import NPTrainer


class CountingTrainer(NPTrainer):
    def _train(self, shareable, fl_ctx, abort_signal):
        self.log_info(fl_ctx, f"CountingTrainer: round {shareable.get_header('current_round')}")
        return super()._train(shareable, fl_ctx, abort_signal)
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("form", ["overrides _train (WEIGHT_DIFF)", "wraps _train"])
def test_job_code_extending_flares_np_trainer_runs(tmp_path: Path, form: str) -> None:
    diff = "DIFF" in form
    job = write_job(tmp_path)
    custom = job / "app" / "custom"
    custom.mkdir()
    (custom / "np_trainer.py").write_text(DIFF_TRAINER)
    (custom / "counting.py").write_text(WRAPPING_TRAINER)
    client = json.loads(json.dumps(CLIENT))
    client["executors"][0]["executor"] = {"path": "np_trainer.NPTrainer" if diff else "counting.CountingTrainer",
                                          "args": {"delta": 2}}
    server = json.loads(json.dumps(SERVER))
    server["workflows"] = server["workflows"][:1]
    if diff:
        server["components"][2]["args"]["expected_data_kind"] = "WEIGHT_DIFF"
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    final = np.load(ws / "server" / "simulate_job" / "models" / "server.npy", allow_pickle=False)
    np.testing.assert_array_equal(final, DEFAULT + 3 * 2)  # three rounds of +delta
    for site in ("site-1", "site-2"):
        kept = np.load(ws / site / "simulate_job" / "model" / "best_numpy.npy", allow_pickle=False)
        np.testing.assert_array_equal(kept, DEFAULT + 3 * 2)  # the trainer's own local model file
        if not diff:
            log = (ws / site / "simulate_job" / "log.txt").read_text()
            assert [line.rsplit(" ", 1)[1] for line in log.splitlines() if "CountingTrainer: round" in line] == [
                "0", "1", "2"]
