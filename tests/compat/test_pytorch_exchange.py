"""Parameters exchanged as PyTorch tensors end to end, as FLARE 2.9's tensor jobs ask.

A Client API job with ``params_exchange_format`` and ``server_expected_format`` ``pytorch``
and a ``PTFileModelPersistor`` with ``allow_numpy_conversion = false`` (FLARE's
``pt_quantized_result_stream`` integration job has this shape): the job's own filters, on
the sites and on the server, check what they are given, and raise TypeError for anything
but the tensors the job asked for. The job runs under ``flconfig launch``, for real.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness.launching import launch

from flconfig.validate.loader import inspect_job

NET = """
import torch
from torch import nn


class Net(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc = nn.Linear(4, 2)
        with torch.no_grad():
            self.fc.weight.fill_(0.5)
            self.fc.bias.fill_(-1.0)

    def forward(self, x):
        return self.fc(x)
"""

#: The job's own filters, written against FLARE's API: each says in the log what it checked.
CHECKS = """
import numpy as np
import torch

from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.dxo_filter import DXOFilter
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable

KINDS = [DataKind.WEIGHTS, DataKind.WEIGHT_DIFF]


class ExpectParams(DXOFilter):
    def __init__(self, where: str, kind: str = "pytorch", dtype: str = "float32"):
        super().__init__(supported_data_kinds=KINDS, data_kinds_to_filter=KINDS)
        self.where, self.kind, self.dtype = where, kind, dtype

    def process_dxo(self, dxo: DXO, shareable: Shareable, fl_ctx: FLContext) -> DXO:
        wanted = torch.Tensor if self.kind == "pytorch" else np.ndarray
        for name, value in dxo.data.items():
            if not isinstance(value, wanted):
                raise TypeError(f"{self.where}: {name!r} is a {type(value).__name__}, expected {self.kind}")
            if str(value.dtype).split(".")[-1] != self.dtype:
                raise TypeError(f"{self.where}: {name!r} is {value.dtype}, expected {self.dtype}")
        self.log_info(fl_ctx, f"CHECKED {self.where}: {len(dxo.data)} {self.kind} {self.dtype}")
        return dxo
"""

SCRIPT = """
import torch

import nvflare.client as flare

flare.init()
while flare.is_running():
    model = flare.receive()
    kind = type(next(iter(model.params.values()))).__name__
    print(f"the script got {kind}")
    params = {k: torch.as_tensor(v, dtype=torch.float32) + 1 for k, v in model.params.items()}
    flare.send(flare.FLModel(params=params, metrics={"accuracy": 0.5},
                             meta={"NUM_STEPS_CURRENT_ROUND": 1}))
"""

#: (client exchange format, server expected format, persistor's allow_numpy_conversion, execution
#: mode). The last is FLARE's ``pt_quantized_result_stream_numpy_server``: one round, as there
#: (the second round's task would be the aggregate of the sites' tensors: tensors).
FORMS = {
    "pytorch end to end": ("pytorch", "pytorch", False, "in_process"),
    "pytorch end to end, script in its own process": ("pytorch", "pytorch", False, "external_process"),
    "raw script, pytorch results, numpy tasks": ("raw", "pytorch", True, "in_process"),
}


def filt(where: str, kind: str = "pytorch", dtype: str = "float32") -> dict[str, object]:
    return {"path": "checks.ExpectParams", "args": {"where": where, "kind": kind, "dtype": dtype}}


def write_job(tmp_path: Path, form: str) -> Path:
    exchange, server_format, numpy_tasks, mode = FORMS[form]
    task_kind = "numpy" if numpy_tasks else "pytorch"
    job = tmp_path / "job"
    (job / "app" / "config").mkdir(parents=True)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "net.py").write_text(NET)
    (job / "app" / "custom" / "checks.py").write_text(CHECKS)
    (job / "app" / "custom" / "train.py").write_text(SCRIPT)
    (job / "meta.json").write_text(json.dumps({"name": "tensors", "min_clients": 2,
                                               "deploy_map": {"app": ["@ALL"]}}))
    executor_args: dict[str, object] = {
        "execution_mode": mode, "params_exchange_format": exchange,
        "server_expected_format": server_format, "train_with_evaluation": True}
    if mode == "in_process":
        executor_args["task_script_path"] = "train.py"
    else:
        executor_args["command"] = "python3 -u custom/train.py"
    client = {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {
            "path": "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor",
            "args": executor_args}}],
        "task_data_filters": [{"tasks": ["train"], "filters": [filt("site task", task_kind)]}],
        "task_result_filters": [{"tasks": ["train"], "filters": [
            {"path": "nvflare.app_opt.pt.quantization.quantizer.ModelQuantizer",
             "args": {"quantization_type": "float16"}},
            filt("site result", dtype="float16")]}],
        "components": [],
    }
    server = {
        "format_version": 2,
        "task_data_filters": [{"tasks": ["train"], "filters": [filt("server task", task_kind)]}],
        "task_result_filters": [{"tasks": ["train"], "filters": [
            filt("server result", dtype="float16"),
            {"path": "nvflare.app_opt.pt.quantization.dequantizer.ModelDequantizer", "args": {}},
            filt("server dequantized")]}],
        "workflows": [{"id": "scatter_and_gather",
                       "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                       "args": {"min_clients": 2, "wait_time_after_min_received": 0,
                                "num_rounds": 1 if numpy_tasks else 2, "persistor_id": "persistor", "aggregator_id": "aggregator",
                                "shareable_generator_id": "shareable_generator"}}],
        "components": [
            {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
             "args": {"model": {"path": "net.Net"}, "allow_numpy_conversion": numpy_tasks}},
            {"id": "shareable_generator",
             "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator."
                     "FullModelShareableGenerator", "args": {}},
            {"id": "aggregator",
             "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator."
                     "InTimeAccumulateWeightedAggregator", "args": {"expected_data_kind": "WEIGHTS"}},
        ],
    }
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=1))
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=1))
    return job


def test_the_tensor_job_validates_clean(tmp_path: Path) -> None:
    for n, form in enumerate(FORMS):
        _, problems = inspect_job(write_job(tmp_path / str(n), form), environ={})
        assert [p.message for p in problems if p.is_error] == [], form


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("form", list(FORMS))
def test_tensors_stay_tensors_through_the_filters_the_server_and_back(tmp_path: Path, form: str) -> None:
    exchange, _, numpy_tasks, _ = FORMS[form]
    rounds = 1 if numpy_tasks else 2
    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path, form), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"round {rounds}/{rounds}: results from site-1, site-2" in proc.stdout
    task_kind = "numpy" if numpy_tasks else "pytorch"
    server_log = (ws / "server" / "simulate_job" / "log.txt").read_text()
    # round 2's task is the aggregate: the server's aggregator kept the format too
    assert server_log.count(f"CHECKED server task: 2 {task_kind} float32") == rounds
    assert server_log.count("CHECKED server result: 2 pytorch float16") == 2 * rounds
    assert server_log.count("CHECKED server dequantized: 2 pytorch float32") == 2 * rounds
    for site in ("site-1", "site-2"):
        log = (ws / site / "simulate_job" / "log.txt").read_text()
        assert log.count(f"CHECKED site task: 2 {task_kind} float32") == rounds
        assert log.count("CHECKED site result: 2 pytorch float16") == rounds
        got = "Tensor" if exchange == "pytorch" else "ndarray"
        assert log.count(f"the script got {got}") == rounds
    # A round of +1 on every weight each (float16 on the way back: exact for these values).
    checkpoint = torch.load(ws / "server" / "simulate_job" / "FL_global_model.pt", weights_only=True)
    np.testing.assert_array_equal(checkpoint["model"]["fc.weight"].numpy(), np.full((2, 4), 0.5 + rounds))
    np.testing.assert_array_equal(checkpoint["model"]["fc.bias"].numpy(), [rounds - 1.0] * 2)
