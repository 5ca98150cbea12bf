"""Server components written against FLARE's API — a ModelPersistor, an Aggregator, a
ShareableGenerator, a ModelLocator and a DXOFilter of the job's code — run unchanged under
flconfig's ScatterAndGather and CrossSiteModelEval."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch

from flconfig.validate.loader import inspect_job

CODE = '''
import os

import numpy as np

from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.dxo_filter import DXOFilter
from nvflare.apis.fl_constant import FLContextKey, ReservedKey
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable
from nvflare.app_common.abstract.aggregator import Aggregator
from nvflare.app_common.abstract.model import ModelLearnable, make_model_learnable, model_learnable_to_dxo
from nvflare.app_common.abstract.model_locator import ModelLocator
from nvflare.app_common.abstract.model_persistor import ModelPersistor
from nvflare.app_common.abstract.shareable_generator import ShareableGenerator
from nvflare.app_common.app_constant import AppConstants


class NpyPersistor(ModelPersistor):
    def __init__(self, start: float = 1.0):
        super().__init__()
        self.start = start

    def _path(self, fl_ctx):
        return os.path.join(fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id()), "model.npy")

    def load_model(self, fl_ctx: FLContext) -> ModelLearnable:
        return make_model_learnable({"numpy_key": np.full((2, 2), self.start, dtype=np.float32)}, {})

    def save_model(self, model_learnable: ModelLearnable, fl_ctx: FLContext) -> None:
        np.save(self._path(fl_ctx), model_learnable["weights"]["numpy_key"])

    def get_model_inventory(self, fl_ctx):
        return {"model.npy": None} if os.path.exists(self._path(fl_ctx)) else {}


class MeanAggregator(Aggregator):
    def __init__(self):
        super().__init__()
        self.seen = {}

    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        site = shareable.get_peer_prop(ReservedKey.IDENTITY_NAME, "?")
        if site in self.seen:
            return False
        self.seen[site] = from_shareable(shareable).data["numpy_key"]
        self.log_info(fl_ctx, f"accepted {site} in round {fl_ctx.get_prop(AppConstants.CURRENT_ROUND)}")
        return True

    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        mean = sum(self.seen.values()) / len(self.seen)
        self.seen = {}
        return DXO(DataKind.WEIGHTS, data={"numpy_key": mean}).to_shareable()


class PlainGenerator(ShareableGenerator):
    def learnable_to_shareable(self, model: ModelLearnable, fl_ctx: FLContext) -> Shareable:
        return model_learnable_to_dxo(model).to_shareable()

    def shareable_to_learnable(self, shareable: Shareable, fl_ctx: FLContext) -> ModelLearnable:
        base = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL)
        assert base["weights"], "the current global model is in the context"
        return make_model_learnable(from_shareable(shareable).data, {})


class NpyLocator(ModelLocator):
    def get_model_names(self, fl_ctx: FLContext):
        return ["model.npy"]

    def locate_model(self, model_name: str, fl_ctx: FLContext):
        run_dir = fl_ctx.get_engine().get_workspace().get_run_dir(fl_ctx.get_job_id())
        return DXO(DataKind.WEIGHTS, data={"numpy_key": np.load(os.path.join(run_dir, model_name))})


class AddTen(DXOFilter):
    def __init__(self):
        super().__init__(supported_data_kinds=[DataKind.WEIGHTS], data_kinds_to_filter=None)

    def process_dxo(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext):
        dxo.data = {k: v + 10 for k, v in dxo.data.items()}
        return dxo
'''


def write_job(root: Path) -> Path:
    app = root / "job" / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (app / "custom" / "server_parts.py").write_text(textwrap.dedent(CODE))
    server = {
        "format_version": 2,
        "components": [
            {"id": "persistor", "path": "server_parts.NpyPersistor", "args": {"start": 1.0}},
            {"id": "aggregator", "path": "server_parts.MeanAggregator"},
            {"id": "shareable_generator", "path": "server_parts.PlainGenerator"},
            {"id": "model_locator", "path": "server_parts.NpyLocator"},
        ],
        "workflows": [
            {"id": "sag", "name": "ScatterAndGather",
             "args": {"min_clients": 2, "num_rounds": 2, "persistor_id": "persistor"}},
            {"id": "cse", "name": "CrossSiteModelEval", "args": {"model_locator_id": "model_locator"}},
        ],
    }
    client = {
        "format_version": 2,
        "executors": [
            {"tasks": ["train", "submit_model"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer"}},
            {"tasks": ["validate"], "executor": {"path": "nvflare.app_common.np.np_validator.NPValidator"}},
        ],
        "task_result_filters": [{"tasks": ["train"], "filters": [{"path": "server_parts.AddTen"}]}],
    }
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "flare-server-parts", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"


def test_flare_api_server_components_validate_with_their_kinds(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flare_api_server_components_run_under_the_built_in_workflows(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    # each round: NPTrainer adds 1, the result filter adds 10, the aggregator averages: 1 + 2 * 11
    np.testing.assert_array_equal(np.load(run / "model.npy"), np.full((2, 2), 23.0))
    results = json.loads((run / "cross_site_val" / "cross_val_results.json").read_text())
    assert sorted(results["site-1"]) == ["SRV_model.npy", "site-1", "site-2"]
    assert "MeanAggregator: accepted site-2 in round 1" in (run / "log.txt").read_text()


def test_flares_helpers_for_job_code_behave_as_flares() -> None:
    import re

    import torch

    from flconfig.compat.nvflare.app_common.abstract.model import make_model_learnable
    from flconfig.compat.nvflare.app_common.app_constant import (
        DefaultCheckpointFileName,
        EnvironmentKey,
    )
    from flconfig.compat.nvflare.app_common.np.constants import NPConstants
    from flconfig.compat.nvflare.app_opt.pt.model_persistence_format_manager import (
        PTModelPersistenceFormatManager,
    )
    from flconfig.compat.nvflare.fuel.utils.import_utils import optional_import
    from flconfig.compat.nvflare.security.logging import secure_format_exception

    checkpoint = {"model": {"w": torch.ones(2), "b": torch.zeros(1)}, "train_conf": {"lr": 1}, "epoch": 3}
    manager = PTModelPersistenceFormatManager(checkpoint, default_train_conf={"lr": 2})
    learnable = manager.to_model_learnable(exclude_vars=re.compile("^b$"))
    assert list(learnable["weights"]) == ["w"] and isinstance(learnable["weights"]["w"], np.ndarray)
    manager.update(make_model_learnable({"w": np.full(2, 5.0)}, {}))
    saved = manager.to_persistence_dict()
    assert saved["model"]["w"].tolist() == [5.0, 5.0] and saved["model"]["b"].tolist() == [0.0]
    assert saved["train_conf"] == {"lr": 1} and saved["epoch"] == 3  # other keys are kept
    assert PTModelPersistenceFormatManager({"w": torch.ones(1)}, {"lr": 2}).train_conf == {"lr": 2}
    with pytest.raises(ValueError, match="invalid model learnable"):
        manager.update({"weights": {}})  # type: ignore[arg-type]

    missing, ok = optional_import("a_module_nobody_has")
    assert not ok
    with pytest.raises(ImportError, match="a_module_nobody_has"):
        missing.anything()
    dumps, ok = optional_import("json", name="dumps")
    assert ok and dumps({}) == "{}"
    assert secure_format_exception(ValueError("bad")) == "ValueError: bad"
    assert NPConstants.NUMPY_KEY == "numpy_key"
    assert (DefaultCheckpointFileName.GLOBAL_MODEL, EnvironmentKey.CHECKPOINT_DIR) == ("FL_global_model.pt",
                                                                                       "APP_CKPT_DIR")


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_servers_own_filters_apply_to_task_data_and_results(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    chain = [{"tasks": ["train"], "filters": [{"path": "server_parts.AddTen"}]}]
    server["task_data_filters"] = chain
    server["task_result_filters"] = chain
    server["workflows"] = [server["workflows"][0]]
    server["workflows"][0]["args"]["num_rounds"] = 1
    server_file.write_text(json.dumps(server))
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["task_result_filters"] = []
    client_file.write_text(json.dumps(client))
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # 1 from the persistor, +10 on its way out, +1 at the site, +10 on its way back
    np.testing.assert_array_equal(np.load(ws / "server" / "simulate_job" / "model.npy"), np.full((2, 2), 22.0))
