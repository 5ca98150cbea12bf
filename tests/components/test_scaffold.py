"""SCAFFOLD as FLARE 2.5 runs it: the Scaffold workflow (FLARE's path) and a ModelLearner using
FLARE's PTScaffoldHelper, the control terms travelling in the models' meta."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from harness.launching import launch
from harness.model_learner_job import NET

from flconfig.compat.nvflare.app_opt.pt.scaffold import PTScaffoldHelper
from flconfig.validate.loader import inspect_job

# The job's learner, written as FLARE's CIFAR10ScaffoldModelLearner is: local SGD corrected by
# the control terms, their change sent back in meta["scaffold_c_diff"].
LEARNER = '''import copy

import numpy as np
import torch

from net import Net
from nvflare.apis.fl_constant import FLMetaKey
from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
from nvflare.app_common.abstract.model_learner import ModelLearner
from nvflare.app_common.app_constant import AlgorithmConstants
from nvflare.app_opt.pt.scaffold import PTScaffoldHelper, get_lr_values


class ScaffoldLearner(ModelLearner):
    def __init__(self, lr: float = 0.2):
        super().__init__()
        self.lr = lr

    def initialize(self):
        rng = np.random.default_rng(sum(map(ord, self.site_name)))
        x = rng.normal(size=(200, 4)).astype(np.float32)
        shift = 1.0 if self.site_name == "site-1" else -1.0  # the sites' data differ (non-IID)
        y = (x[:, 0] + shift * x[:, 1] > 0).astype(np.int64)
        self.x, self.y = torch.from_numpy(x), torch.from_numpy(y)
        self.model = Net()
        self.scaffold_helper = PTScaffoldHelper()
        self.scaffold_helper.init(model=self.model)

    def train(self, model: FLModel):
        global_ctrl = model.meta.get(AlgorithmConstants.SCAFFOLD_CTRL_GLOBAL)
        if not global_ctrl:
            raise ValueError("global_ctrl_weights were empty!")
        norm = sum(float(np.abs(np.asarray(v)).sum()) for v in global_ctrl.values())
        self.info(f"round {self.current_round}: global control norm {norm:.6f}")
        self.scaffold_helper.load_global_controls(weights=global_ctrl)
        weights = {k: torch.as_tensor(np.asarray(v)) for k, v in model.params.items()}
        self.model.load_state_dict(weights)
        model_global = copy.deepcopy(self.model)
        optimizer = torch.optim.SGD(self.model.parameters(), lr=self.lr)
        c_global_para, c_local_para = self.scaffold_helper.get_params()
        steps = 0
        for start in range(0, len(self.x), 25):
            optimizer.zero_grad()
            loss = torch.nn.functional.cross_entropy(self.model(self.x[start:start + 25]), self.y[start:start + 25])
            loss.backward()
            optimizer.step()
            curr_lr = get_lr_values(optimizer)[0]
            self.scaffold_helper.model_update(model=self.model, curr_lr=curr_lr, c_global_para=c_global_para,
                                              c_local_para=c_local_para)
            steps += 1
        self.scaffold_helper.terms_update(model=self.model, curr_lr=curr_lr, c_global_para=c_global_para,
                                          c_local_para=c_local_para, model_global=model_global)
        diff = {k: (v - weights[k]).numpy() for k, v in self.model.state_dict().items()}
        result = FLModel(params_type=ParamsType.DIFF, params=diff, meta={FLMetaKey.NUM_STEPS_CURRENT_ROUND: steps})
        result.meta[AlgorithmConstants.SCAFFOLD_CTRL_DIFF] = self.scaffold_helper.get_delta_controls()
        return result

    def validate(self, model: FLModel):
        return FLModel(metrics={"val_acc": 0.0})
'''

SERVER = {
    "format_version": 2,
    "components": [
        {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
         "args": {"model": {"path": "net.Net", "args": {"features": 4}}}},
    ],
    "workflows": [{"id": "scaffold_ctl", "path": "nvflare.app_common.workflows.scaffold.Scaffold",
                   "args": {"num_clients": 2, "num_rounds": 3, "persistor_id": "persistor"}}],
}
CLIENT = {
    "format_version": 2,
    "executors": [{"tasks": ["train", "submit_model", "validate"], "executor": {
        "path": "nvflare.app_common.executors.model_learner_executor.ModelLearnerExecutor",
        "args": {"learner_id": "model_learner"}}}],
    "components": [{"id": "model_learner", "path": "scaffold_learner.ScaffoldLearner", "args": {}}],
}


def write_job(root):
    job = root / "job"
    (job / "app" / "config").mkdir(parents=True)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "net.py").write_text(NET)
    (job / "app" / "custom" / "scaffold_learner.py").write_text(LEARNER)
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(SERVER))
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(CLIENT))
    (job / "meta.json").write_text(json.dumps({"name": "scaffold", "min_clients": 2, "deploy_map": {"app": ["@ALL"]}}))
    return job


def test_the_scaffold_helper_corrects_steps_and_updates_the_local_terms() -> None:
    torch.manual_seed(0)
    model = torch.nn.Linear(2, 1, bias=False)
    helper = PTScaffoldHelper()
    helper.init(model)
    helper.load_global_controls({"weight": np.array([[1.0, -1.0]], dtype=np.float32)})
    c_global, c_local = helper.get_params()
    start = model.weight.detach().clone()
    helper.model_update(model, 0.1, c_global, c_local)  # w -= lr * (c_global - c_local)
    helper.model_update(model, 0.1, c_global, c_local)
    assert torch.allclose(model.weight, start - 0.2 * torch.tensor([[1.0, -1.0]]))
    global_model = torch.nn.Linear(2, 1, bias=False)
    global_model.weight.data = start.clone()
    helper.terms_update(model, 0.1, c_global, c_local, global_model)
    # c_local' = c_local - c_global + (w_global - w) / (steps * lr) = 0 - c + 0.2 c / 0.2 = 0
    np.testing.assert_allclose(helper.get_delta_controls()["weight"], [[0.0, 0.0]], atol=1e-6)
    with pytest.raises(ValueError, match="hasn't been computed"):
        PTScaffoldHelper().get_delta_controls()


def test_a_scaffold_job_validates_clean(tmp_path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_scaffold_sends_the_control_terms_both_ways_and_trains(tmp_path) -> None:
    import torch

    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    log = (ws / "site-1" / "simulate_job" / "log.txt").read_text()
    norms = [float(line.rsplit(" ", 1)[1]) for line in log.splitlines() if "global control norm" in line]
    assert len(norms) == 3 and norms[0] == 0.0 and norms[1] > 0 and norms[2] > 0  # zeros, then the sites' terms
    checkpoint = torch.load(ws / "server" / "simulate_job" / "FL_global_model.pt", weights_only=True)
    assert set(checkpoint["model"]) == {"fc.weight", "fc.bias"}
    assert "round 3/3: results from site-1, site-2" in proc.stdout
