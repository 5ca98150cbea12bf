"""FLARE's ModelLearner API: a learner in the job's custom/ folder, written as FLARE's
CIFAR-10 ModelLearner is, runs unchanged under ModelLearnerExecutor."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch
from harness.model_learner_job import NET

from flconfig.errors import JobError
from flconfig.validate.loader import inspect_job

LEARNER = '''import copy
from typing import Union

import numpy as np
import torch

from net import Net
from nvflare.apis.fl_constant import FLMetaKey, ReturnCode
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.abstract.model_learner import ModelLearner
from nvflare.app_common.app_constant import ModelName, ValidateType
from nvflare.app_common.utils.fl_model_utils import FLModelUtils
from nvflare.app_opt.pt.fedproxloss import PTFedProxLoss


class SyntheticModelLearner(ModelLearner):
    """Trains Net on a two-class problem of its own, as FLARE's CIFAR10ModelLearner is written."""

    def __init__(self, lr: float = 0.5, epochs: int = 2, fedproxloss_mu: float = 0.01,
                 analytic_sender_id: str = "analytic_sender", fail_in_round: int = -1):
        super().__init__()
        self.lr = lr
        self.epochs = epochs
        self.fedproxloss_mu = fedproxloss_mu
        self.analytic_sender_id = analytic_sender_id
        self.fail_in_round = fail_in_round
        self.best_acc = 0.0
        self.best = None

    def initialize(self):
        seed = sum(map(ord, self.site_name))
        rng = np.random.default_rng(seed)
        x = rng.normal(size=(200, 4)).astype(np.float32)
        y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.model = Net()
        self.criterion_prox = PTFedProxLoss(mu=self.fedproxloss_mu)
        self.writer = self.get_component(self.analytic_sender_id)
        self.info(f"initialized {self.site_name} in {self.app_root}, job {self.job_id}")

    def _accuracy(self, model):
        with torch.no_grad():
            return float((model(self.x).argmax(1) == self.y).float().mean())

    def train(self, model: FLModel) -> Union[str, FLModel]:
        if self.current_round == self.fail_in_round:
            self.stop_task(f"told to fail in round {self.current_round}")
        global_weights = {k: torch.as_tensor(np.asarray(v)) for k, v in model.params.items()}
        self.model.load_state_dict(global_weights)
        model_global = copy.deepcopy(self.model)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        steps = 0
        for epoch in range(self.epochs):
            for start in range(0, len(self.x), 50):
                if self.is_aborted():
                    return ReturnCode.TASK_ABORTED
                optimizer.zero_grad()
                loss = torch.nn.functional.cross_entropy(self.model(self.x[start:start + 50]),
                                                         self.y[start:start + 50])
                loss = loss + self.criterion_prox(self.model, model_global)
                loss.backward()
                optimizer.step()
                if self.writer:
                    self.writer.add_scalar("train_loss", float(loss), self.current_round * 8 + steps)
                steps += 1
        acc = self._accuracy(self.model)
        if acc >= self.best_acc:
            self.best_acc, self.best = acc, {k: v.clone() for k, v in self.model.state_dict().items()}
        diff = {k: (v - global_weights[k]).numpy() for k, v in self.model.state_dict().items()}
        fl_model = FLModel(params_type=ParamsType.DIFF, params=diff)
        FLModelUtils.set_meta_prop(fl_model, FLMetaKey.NUM_STEPS_CURRENT_ROUND, steps)
        return fl_model

    def get_model(self, model_name: str) -> Union[str, FLModel]:
        if model_name != ModelName.BEST_MODEL or self.best is None:
            return ReturnCode.EXECUTION_RESULT_ERROR
        return FLModel(params_type=ParamsType.FULL, params={k: v.numpy() for k, v in self.best.items()})

    def validate(self, model: FLModel) -> Union[str, FLModel]:
        net = Net()
        net.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in model.params.items()})
        acc = self._accuracy(net)
        validate_type = FLModelUtils.get_meta_prop(model, FLMetaKey.VALIDATE_TYPE, ValidateType.MODEL_VALIDATE)
        if validate_type == ValidateType.BEFORE_TRAIN_VALIDATE and self.writer:
            self.writer.add_scalar("val_acc_global_model", acc, self.current_round)
        return FLModel(metrics={"val_acc": acc})

    def finalize(self):
        self.info("finalized")
'''

SERVER = {
    "format_version": 2,
    "components": [
        {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
         "args": {"model": {"path": "net.Net", "args": {"features": 4}}}},
        {"id": "shareable_generator",
         "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator"},
        {"id": "aggregator",
         "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator",
         "args": {"expected_data_kind": "WEIGHT_DIFF"}},
        {"id": "model_selector", "path": "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
         "args": {"key_metric": "val_acc"}},
        {"id": "model_locator", "path": "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator",
         "args": {"pt_persistor_id": "persistor"}},
        {"id": "json_generator",
         "path": "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator"},
        {"id": "receiver", "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
         "args": {"events": ["fed.analytix_log_stats"]}},
    ],
    "workflows": [
        {"id": "scatter_and_gather", "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
         "args": {"min_clients": 2, "num_rounds": 3, "wait_time_after_min_received": 0, "persistor_id": "persistor",
                  "train_timeout": 0}},
        {"id": "cross_site_model_eval",
         "path": "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval",
         "args": {"model_locator_id": "model_locator"}},
    ],
}
SENDERS = [
    {"id": "analytic_sender", "path": "nvflare.app_common.widgets.streaming.AnalyticsSender",
     "args": {"event_type": "analytix_log_stats"}},
    {"id": "event_to_fed", "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
     "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}},
]


def client_config(senders: bool = True, **learner_args: object) -> dict:
    return {
        "format_version": 2,
        "executors": [{"tasks": ["train", "submit_model", "validate"], "executor": {
            "path": "nvflare.app_common.executors.model_learner_executor.ModelLearnerExecutor",
            "args": {"learner_id": "model_learner"}}}],
        "components": [
            {"id": "model_learner", "path": "model_learner.SyntheticModelLearner", "args": learner_args},
            *(SENDERS if senders else []),
        ],
    }


def write_job(root: Path, client: dict, server: dict | None = None) -> Path:
    job = root / "job"
    (job / "app" / "config").mkdir(parents=True)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "net.py").write_text(NET)
    (job / "app" / "custom" / "model_learner.py").write_text(LEARNER)
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server or SERVER))
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    (job / "meta.json").write_text(json.dumps({"name": "model-learner", "min_clients": 2,
                                               "deploy_map": {"app": ["@ALL"]}}))
    return job


def test_a_model_learner_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path, client_config()), environ={})
    assert [p.message for p in problems] == []


def test_a_default_sender_id_naming_nothing_is_a_warning_as_flare_passes_none(tmp_path: Path) -> None:
    server = {**SERVER, "components": [c for c in SERVER["components"] if c["id"] != "receiver"]}
    job = write_job(tmp_path, client_config(senders=False), server)
    _, problems = inspect_job(job, environ={})
    assert [(p.severity, p.code) for p in problems] == [("warning", "dangling-ref")]
    assert "'analytic_sender_id' defaults to 'analytic_sender'" in problems[0].message
    assert "SyntheticModelLearner gets None for it" in problems[0].message


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_model_learner_trains_streams_and_is_scored_across_sites(tmp_path: Path) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path, client_config()), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    for site in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site), size_guidance={"scalars": 0})
        acc.Reload()
        assert [e.step for e in acc.Scalars("train_loss")] == list(range(24))  # 3 rounds x 8 steps
        assert [e.step for e in acc.Scalars("val_acc_global_model")] == [0, 1, 2]
        log = (ws / site / "simulate_job" / "log.txt").read_text()
        assert f"SyntheticModelLearner: initialized {site} in " in log
        assert "SyntheticModelLearner: finalized" in log
    results = json.loads((run / "cross_site_val" / "cross_val_results.json").read_text())
    for site in ("site-1", "site-2"):
        assert set(results[site]) == {"SRV_FL_global_model.pt", "SRV_best_FL_global_model.pt", "site-1", "site-2"}
        assert results[site]["SRV_FL_global_model.pt"]["val_acc"] > 0.8  # the federation learned
    best = torch.load(run / "best_FL_global_model.pt", weights_only=True)["model"]
    assert set(best) == {"fc.weight", "fc.bias"} and best["fc.weight"].dtype == torch.float32


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_stop_task_fails_the_round_with_the_learners_reason(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path, client_config(fail_in_round=1)), ws)
    assert proc.returncode != 0
    out = proc.stdout + proc.stderr
    assert "told to fail in round 1" in out
    assert "Traceback" not in proc.stderr


def test_learner_id_must_name_a_model_learner(tmp_path: Path) -> None:
    from flconfig.components.model_learner_executor import ModelLearnerExecutor
    from flconfig.runtime.context import SiteContext
    from flconfig.types import FLModel, Signal

    ctx = SiteContext("site-1", "job1", tmp_path, {"model_learner": object()}, [])
    executor = ModelLearnerExecutor("model_learner")
    with pytest.raises(JobError, match="names a object, not a FLARE ModelLearner"):
        executor.execute("train", FLModel(params={"w": np.zeros(2)}), ctx, Signal())
    result = executor.execute("other", FLModel(), ctx, Signal())
    assert result.rc == "TASK_UNKNOWN" and "handles train, submit_model, validate, configure" in str(result.meta)
