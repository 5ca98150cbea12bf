"""FLARE's PTFedOptModelShareableGenerator: FedOpt with a server-side torch optimizer."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch

from flconfig.components.fedopt import PTFedOptModelShareableGenerator
from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext
from flconfig.types import Event, EventType, FLModel
from flconfig.validate.loader import inspect_job

FEDOPT = "nvflare.app_opt.pt.fedopt.PTFedOptModelShareableGenerator"


class Net(torch.nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(2, 1)
        self.bn = torch.nn.BatchNorm1d(1)


def started(tmp_path: Path, **args: object) -> tuple[PTFedOptModelShareableGenerator, SiteContext, dict]:
    torch.manual_seed(0)
    net = Net()
    ctx = SiteContext("server", "job1", tmp_path, {"model": net}, [])
    gen = PTFedOptModelShareableGenerator(source_model="model", device="cpu", **args)  # type: ignore[arg-type]
    gen.handle_event(Event(EventType.START_RUN), ctx)
    weights = {k: v.detach().numpy().copy() for k, v in net.state_dict().items()}
    ctx.props["global_model"] = FLModel(params=weights)
    return gen, ctx, weights


def diff_of(weights: dict, value: float) -> FLModel:
    params = {k: np.full_like(v, value, dtype=np.float32) for k, v in weights.items()
              if k in ("fc.weight", "fc.bias", "bn.running_mean")}
    return FLModel(params=params, params_type="DIFF")


def test_sgd_with_lr_1_is_fedavg(tmp_path: Path) -> None:
    gen, ctx, weights = started(tmp_path)  # FLARE's default: SGD, lr 1.0
    new = gen.shareable_to_learnable(diff_of(weights, 0.5), ctx)
    assert new.params_type == "FULL"
    np.testing.assert_allclose(new.params["fc.weight"], weights["fc.weight"] + 0.5, rtol=1e-6)
    np.testing.assert_allclose(new.params["bn.running_mean"], weights["bn.running_mean"] + 0.5)
    assert isinstance(new.params["fc.weight"], np.ndarray)  # the global model's representation
    np.testing.assert_array_equal(new.params["bn.num_batches_tracked"], weights["bn.num_batches_tracked"])


def test_the_optimizer_and_scheduler_step_every_round(tmp_path: Path) -> None:
    gen, ctx, weights = started(
        tmp_path,
        optimizer_args={"path": "torch.optim.SGD", "args": {"lr": 0.5, "momentum": 0.6}, "config_type": "dict"},
        lr_scheduler_args={"path": "torch.optim.lr_scheduler.StepLR", "args": {"step_size": 1, "gamma": 0.1},
                           "config_type": "dict"})
    first = gen.shareable_to_learnable(diff_of(weights, 1.0), ctx)
    np.testing.assert_allclose(first.params["fc.bias"], weights["fc.bias"] + 0.5, rtol=1e-6)
    ctx.props["global_model"] = first
    second = gen.shareable_to_learnable(diff_of(weights, 1.0), ctx)
    # momentum 0.6: the step is lr 0.05 (StepLR) times (0.6 * 1 + 1)
    np.testing.assert_allclose(second.params["fc.bias"], first.params["fc.bias"] + 0.05 * 1.6, rtol=1e-5)
    # batch-norm statistics are not trainable: averaged, not optimized
    np.testing.assert_allclose(second.params["bn.running_mean"], weights["bn.running_mean"] + 2.0)


def test_adam_moves_every_parameter_by_its_learning_rate(tmp_path: Path) -> None:
    gen, ctx, weights = started(tmp_path, optimizer_args={"name": "Adam", "args": {"lr": 0.01}})
    new = gen.shareable_to_learnable(diff_of(weights, 3.0), ctx)
    np.testing.assert_allclose(new.params["fc.weight"], weights["fc.weight"] + 0.01, rtol=1e-4)


def test_tensors_stay_tensors_and_full_weights_are_refused(tmp_path: Path) -> None:
    gen, ctx, weights = started(tmp_path)
    ctx.props["global_model"] = FLModel(params={k: torch.from_numpy(v) for k, v in weights.items()})
    new = gen.shareable_to_learnable(diff_of(weights, 0.5), ctx)
    assert isinstance(new.params["fc.weight"], torch.Tensor)
    with pytest.raises(JobError, match="weight differences.*WEIGHT_DIFF"):
        gen.shareable_to_learnable(FLModel(params=new.params, params_type="FULL"), ctx)
    bad = FLModel(params={"fc.weight": np.zeros((3, 3), dtype=np.float32)}, params_type="DIFF")
    with pytest.raises(JobError, match="'fc.weight' has shape"):
        gen.shareable_to_learnable(bad, ctx)


def test_the_optimizer_must_come_from_torch_optim(tmp_path: Path) -> None:
    gen = PTFedOptModelShareableGenerator(optimizer_args={"path": "SGDX"}, device="cpu")
    ctx = SiteContext("server", "job1", tmp_path, {"model": Net()}, [])
    with pytest.raises(JobError, match="'SGDX', which is not a class of torch.optim"):
        gen.handle_event(Event(EventType.START_RUN), ctx)


def write_job(root: Path, optimizer: dict) -> Path:
    config = root / "job" / "app" / "config"
    config.mkdir(parents=True)
    server = {
        "format_version": 2,
        "components": [
            {"id": "model", "path": "flconfig.examples.models.DigitsCNN", "args": {}},
            {"id": "persistor", "name": "PTFileModelPersistor", "args": {"model": "model"}},
            {"id": "shareable_generator", "name": "PTFedOptModelShareableGenerator",
             "args": {"device": "cpu", "source_model": "model", "optimizer_args": optimizer,
                      "lr_scheduler_args": {"path": "torch.optim.lr_scheduler.CosineAnnealingLR",
                                            "args": {"T_max": 5, "eta_min": 0.9}, "config_type": "dict"}}},
            {"id": "aggregator", "name": "InTimeAccumulateWeightedAggregator", "args": {}},
        ],
        "workflows": [{"id": "sag", "name": "ScatterAndGather",
                       "args": {"min_clients": 2, "num_rounds": 5, "aggregator_id": "aggregator",
                                "persistor_id": "persistor", "shareable_generator_id": "shareable_generator"}}],
    }
    client = {"format_version": 2, "executors": [
        {"tasks": ["train"], "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer"}}]}
    (config / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (config / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "fedopt", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"


def test_flares_fedopt_config_validates_and_a_foreign_optimizer_is_refused_at_its_line(tmp_path: Path) -> None:
    sgd = {"path": "torch.optim.SGD", "args": {"lr": 1.0, "momentum": 0.6}, "config_type": "dict"}
    _, problems = inspect_job(write_job(tmp_path / "ok", sgd), environ={})
    assert [p.message for p in problems if p.severity == "error"] == []
    _, problems = inspect_job(write_job(tmp_path / "bad", {**sgd, "path": "os.system"}), environ={})
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1 and "torch.optim" in errors[0].message + (errors[0].hint or "")
    assert errors[0].position is not None and errors[0].position.line > 1
