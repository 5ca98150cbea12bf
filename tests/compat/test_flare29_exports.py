"""FLARE 2.9's exported jobs validate clean and run under flconfig.

Each job here is written the way FLARE 2.9's recipes export it (``python job.py --export``:
the components and arguments of its job API's ``BaseFedJob``, FedAvg's 2.9 arguments,
FedOpt's optimizer spec, the sklearn, task and evaluation recipes, per-site apps), with a
small Client API script on synthetic data; the runs are real ``flconfig launch`` runs whose
outputs are read back.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

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
    problems,
    run_dir,
    server_config,
    write_job,
)
from harness.launching import launch

PT_PERSISTOR = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"
PT_LOCATOR = "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator"
TB_RECEIVER = "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver"
PT_SCRIPT = """
import torch
import nvflare.client as flare
from nvflare.client.tracking import SummaryWriter
from model import Net

flare.init()
writer = SummaryWriter()
while flare.is_running():
    model = flare.receive()
    net = Net()
    net.load_state_dict(model.params)
    writer.add_scalar("loss", 0.5, model.current_round)
    flare.send(flare.FLModel(params=net.state_dict(), metrics={"accuracy": 0.5}))
"""
PT_MODEL = """
import torch


class Net(torch.nn.Module):
    def __init__(self, in_dim=4):
        super().__init__()
        self.in_dim = in_dim
        self.fc = torch.nn.Linear(in_dim, 2)
"""
PT_SERVER_COMPONENTS = [
    *BASE_FED_JOB_SERVER,
    {"id": "persistor", "path": PT_PERSISTOR, "args": {"model": {"path": "model.Net", "args": {}}}},
    {"id": "locator", "path": PT_LOCATOR, "args": {"pt_persistor_id": "persistor"}},
]


def pt_export(root: Path, name: str = "pt_fedavg", fedavg_args: dict[str, Any] | None = None,
              extra_server: list[dict[str, Any]] | None = None, client: dict[str, Any] | None = None,
              **server_top: Any) -> Path:
    """PyTorch FedAvgRecipe's export (§3 of FLARE's job API): FedAvg, the BaseFedJob widgets,
    PTFileModelPersistor and locator; ClientAPIExecutor in process with ConvertToFedEvent."""
    server = server_config(
        [{"id": "controller", "path": FEDAVG,
          "args": {"aggregation_weights": {}, "num_clients": 2, **(fedavg_args or {})}}],
        [*copy.deepcopy(PT_SERVER_COMPONENTS), *(extra_server or [])], **server_top)
    client = client or client_config([in_process(params_exchange_format="pytorch")], [EVENT_TO_FED])
    return write_job(root, name, server, client, scripts={"client.py": PT_SCRIPT, "model.py": PT_MODEL})


# -- validate: FLARE's defaults are never errors ---------------------------------------


def test_the_tensorboard_recipe_export_validates_without_a_word(tmp_path: Path) -> None:
    # FLARE writes the receiver's default events out and BaseFedJob's converter on the client
    receiver = {"id": "receiver", "path": TB_RECEIVER,
                "args": {"events": ["analytix_log_stats", "fed.analytix_log_stats"]}}
    assert problems(pt_export(tmp_path, "fedavg_tensorboard", extra_server=[receiver])) == []


def test_basefedjobs_converter_without_tracking_is_not_a_mistake(tmp_path: Path) -> None:
    assert problems(pt_export(tmp_path)) == []


def test_metrics_a_configured_sender_sends_to_no_receiver_are_still_an_error(tmp_path: Path) -> None:
    # A TBWriter is there only to send: without a receiver on the server its records are lost.
    writer = {"id": "log_writer", "path": "nvflare.app_opt.tracking.tb.tb_writer.TBWriter", "args": {}}
    job = pt_export(tmp_path, client=client_config([in_process(params_exchange_format="pytorch")],
                                                  [EVENT_TO_FED, writer]))
    [error] = errors(job)
    assert "sends 'fed.analytix_log_stats' to the server, but no server receiver listens to it" in error


def test_a_receiver_waiting_for_an_event_nothing_sends_is_still_an_error(tmp_path: Path) -> None:
    receiver = {"id": "receiver", "path": TB_RECEIVER, "args": {"events": ["fed.analytix_log_stats", "fed.custom"]}}
    [error] = errors(pt_export(tmp_path, extra_server=[receiver]))
    assert "waits for 'fed.custom', but nothing on the server produces it" in error


def test_an_external_process_script_feeds_a_receiver_on_its_site(tmp_path: Path) -> None:
    # set_per_site_config + add_experiment_tracking(client_side=True): site-2's script runs in
    # a process of its own; its records are fired on the site, where its receiver takes them.
    external = {"tasks": ["*"], "executor": {"path": "nvflare.app_common.executors.client_api_executor."
                                                     "ClientAPIExecutor", "args": {
        "execution_mode": "external_process", "command": ["python3", "-u", "custom/client.py"],
        "shutdown_timeout": 0.0, "params_exchange_format": "pytorch"}}}
    local_receiver = {"id": "client_receiver", "path": TB_RECEIVER, "args": {"events": ["analytix_log_stats"]}}
    server = server_config([{"id": "controller", "path": FEDAVG, "args": {"aggregation_weights": {}, "num_clients": 2}}],
                           copy.deepcopy(PT_SERVER_COMPONENTS))
    job = write_job(tmp_path, "pt_fedavg_persite", server, per_site={
        "site-1": client_config([in_process(params_exchange_format="pytorch")], [EVENT_TO_FED]),
        "site-2": client_config([external], [EVENT_TO_FED, local_receiver])},
        scripts={"client.py": PT_SCRIPT, "model.py": PT_MODEL}, server_scripts={"model.py": PT_MODEL})
    assert problems(job) == []


# -- validate: the arguments and classes FLARE 2.9 exports ------------------------------


def test_fedavgs_29_arguments_validate_and_a_bad_stop_cond_is_an_error(tmp_path: Path) -> None:
    full = {"aggregation_weights": {"site-1": 2.0}, "num_rounds": 7, "stop_cond": "loss < 0.1", "patience": 2,
            "fedprox_mu": 0.01, "exclude_vars": "fc.bias", "memory_gc_rounds": 1,
            "enable_tensor_disk_offload": True, "task_name": "train", "start_round": 0,
            "save_filename": "FL_global_model.pt"}
    assert errors(pt_export(tmp_path, fedavg_args=full)) == []
    found = errors(pt_export(tmp_path, "bad", fedavg_args={"stop_cond": "loss<0.1", "fedprox_mu": -1}))
    assert len(found) == 2, found
    assert any("stop_cond" in e and "'<metric> <op> <number>'" in e for e in found)
    assert any("fedprox_mu" in e for e in found)


@pytest.mark.parametrize("optimizer", [
    {"path": "torch.optim.SGD", "args": {"lr": 1.0}},  # the generator's default, exported without config_type
    {"class_path": "torch.optim.SGD", "args": {"lr": 1.0, "momentum": 0.6}, "path": "torch.optim.SGD",
     "config_type": "dict"},
])
def test_fedopts_optimizer_spec_validates_as_exported(tmp_path: Path, optimizer: dict[str, Any]) -> None:
    scheduler = {"class_path": "torch.optim.lr_scheduler.CosineAnnealingLR", "args": {"T_max": 3, "eta_min": 0.9},
                 "path": "torch.optim.lr_scheduler.CosineAnnealingLR", "config_type": "dict"}
    server = server_config(
        [{"id": "controller", "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
          "args": {"min_clients": 2, "num_rounds": 3, "wait_time_after_min_received": 0, "persistor_id": "persistor"}}],
        [*BASE_FED_JOB_SERVER,
         {"id": "model", "path": "model.Net", "args": {}},
         {"id": "persistor", "path": PT_PERSISTOR, "args": {"model": "model"}},
         {"id": "locator", "path": PT_LOCATOR, "args": {"pt_persistor_id": "persistor"}},
         {"id": "shareable_generator", "path": "nvflare.app_opt.pt.fedopt.PTFedOptModelShareableGenerator",
          "args": {"optimizer_args": optimizer, "lr_scheduler_args": scheduler}},
         {"id": "aggregator", "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator."
                                      "InTimeAccumulateWeightedAggregator", "args": {}}])
    client = client_config([in_process(params_exchange_format="pytorch", params_transfer_type="DIFF")], [EVENT_TO_FED])
    job = write_job(tmp_path, "pt_fedopt", server, client, scripts={"client.py": PT_SCRIPT, "model.py": PT_MODEL})
    assert problems(job) == []
    # the spec reaches the generator as the plain dict it is, never built as a component
    from flconfig.runtime.planner import plan_run
    from flconfig.validate.loader import load_job

    plan = plan_run(load_job(job, environ={}), [], tmp_path / "ws", "job", server=True).for_site("server")
    [generator] = [c for c in plan.components if c.id == "shareable_generator"]
    assert generator.nested == {}
    assert generator.args == {"optimizer_args": optimizer, "lr_scheduler_args": scheduler}


def test_the_widgets_flare_adds_and_its_exec_params_validate(tmp_path: Path) -> None:
    # pt_fedavg_misc: log streaming, FOBS decomposers, tensor streaming, CSE's second
    # ValidationJsonGenerator, export(server_exec_params=..., client_exec_params=...)
    decomposers = {"id": "decomposer_reg", "path": "nvflare.app_common.widgets.decomposer_reg.DecomposerRegister",
                   "args": {"classes": ["nvflare.app_opt.pt.decomposers.TensorDecomposer"]}}
    server_extra = [
        {"id": "component", "path": "nvflare.app_common.logging.job_log_receiver.JobLogReceiver", "args": {}},
        decomposers,
        {"id": "tensor_streamer", "path": "nvflare.app_opt.tensor_stream.server.TensorServerStreamer", "args": {}},
        {"id": "component1", "path": "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
         "args": {}},
        {"id": "model_selector2", "path": "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
         "args": {"aggregation_weights": {}, "key_metric": "loss", "negate_key_metric": True}},
    ]
    client = client_config([in_process(params_exchange_format="pytorch")], [
        EVENT_TO_FED,
        {"id": "component", "path": "nvflare.app_common.logging.job_log_streamer.JobLogStreamer",
         "args": {"log_file_name": "log.json"}},
        decomposers,
        {"id": "tensor_streamer", "path": "nvflare.app_opt.tensor_stream.client.TensorClientStreamer", "args": {}},
    ], my_client_param=5, get_task_timeout=8)
    job = pt_export(tmp_path, "pt_fedavg_misc", extra_server=server_extra, client=client,
                    my_server_param=6, runner_sync_timeout=7, dead_client_grace_period=60)
    assert problems(job) == []


def test_the_sklearn_recipes_nested_aggregator_and_persistor_validate(tmp_path: Path) -> None:
    for name, assembler in (("kmeans", {"path": "nvflare.app_opt.sklearn.kmeans_assembler.KMeansAssembler"}),
                            ("svm", {"path": "nvflare.app_opt.sklearn.svm_assembler.SVMAssembler",
                                     "args": {"kernel": "linear"}})):
        job = sklearn_export(tmp_path, name, assembler, {"n_clusters": 3} if name == "kmeans" else {"kernel": "rbf"})
        assert problems(job) == []
    # the nested aggregator's own reference is checked too
    job = sklearn_export(tmp_path, "dangling", {"path": "nvflare.app_opt.sklearn.kmeans_assembler.KMeansAssembler"},
                         {"n_clusters": 3}, assembler_id="nothing")
    [error] = errors(job)
    assert "nothing" in error


def test_numpy_cross_site_eval_exports_with_a_dict_of_server_models_validate(tmp_path: Path) -> None:
    locator: dict[str, Any] = {"id": "component", "path": "nvflare.app_common.np.np_model_locator.NPModelLocator",
               "args": {"model_dir": "/tmp/nvflare/server_pretrain_models",
                        "model_name": {"server_model_1": "server_1.npy", "server_model_2": "server_2.npy"}}}
    server = server_config(
        [{"id": "controller", "path": "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval",
          "args": {"model_locator_id": "component"}}],
        [locator, {"id": "component1", "args": {},
                   "path": "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator"}])
    client = client_config([{"tasks": ["validate", "submit_model"],
                             "executor": {"path": "nvflare.app_common.np.np_validator.NPValidator", "args": {}}}])
    assert problems(write_job(tmp_path, "hello-numpy-cse", server, client)) == []
    locator["args"]["model_dir"] = "models/../../outside"
    found = errors(write_job(tmp_path, "escaping", server, client))
    assert len(found) == 1 and "model_dir" in found[0] and "no '..'" in found[0]


# -- run ---------------------------------------------------------------------------------

NUMPY_CLIENT = """
import nvflare.client as flare

flare.init()
site = flare.get_site_name()
while flare.is_running():
    model = flare.receive()
    r = model.current_round
    loss = 0.5 ** (r + 1) * (1 if site == "site-1" else 3)
    metrics = {"loss": loss, "accuracy": 1 - loss}
    if "fedprox_mu" in model.meta:
        metrics["mu_seen"] = model.meta["fedprox_mu"]
    flare.send(flare.FLModel(params={"numpy_key": model.params["numpy_key"] + 1}, metrics=metrics,
                             meta={"NUM_STEPS_CURRENT_ROUND": 10 if site == "site-1" else 30}))
"""


def numpy_export(root: Path, name: str, fedavg_args: dict[str, Any], persistor: bool = True) -> Path:
    components = [*BASE_FED_JOB_SERVER]
    if persistor:
        components.append({"id": "persistor", "path": NP_PERSISTOR, "args": {"model": [[1.0, 2.0], [3.0, 4.0]]}})
    server = server_config([{"id": "controller", "path": FEDAVG,
                             "args": {"aggregation_weights": {}, "num_clients": 2, **fedavg_args}}], components)
    client = client_config([in_process(params_exchange_format="numpy")], [EVENT_TO_FED])
    return write_job(root, name, server, client, scripts={"client.py": NUMPY_CLIENT})


def rounds_run(ws: Path) -> list[int]:
    lines = (run_dir(ws) / "metrics" / "round_metrics.jsonl").read_text().splitlines()
    return [json.loads(line)["round"] for line in lines]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_stop_cond_ends_training_when_the_aggregated_metric_meets_it(tmp_path: Path) -> None:
    # the aggregated loss is 2.5 * 0.5 ** (r + 1): 1.25, 0.625, 0.3125, 0.156 ... < 0.2 at round 3
    job = numpy_export(tmp_path, "stop", {"num_rounds": 8, "stop_cond": "loss < 0.2"})
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rounds_run(ws) == [0, 1, 2, 3]
    assert "stop_cond 'loss < 0.2' met (loss = 0.15625): stopping after round 4/8" in proc.stdout
    # the loss fell every round, so every round's model was saved: the last is 4 rounds of +1
    saved = np.load(run_dir(ws) / "models" / "server.npy")
    np.testing.assert_allclose(saved, np.array([[1.0, 2.0], [3.0, 4.0]]) + 4)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_patience_ends_training_after_rounds_without_improvement(tmp_path: Path) -> None:
    # "loss > 5" is never met and, higher being better, the falling loss never improves after
    # round 0: patience 2 ends the run after round 2; only round 0's model was the best (saved).
    job = numpy_export(tmp_path, "patience", {"num_rounds": 8, "stop_cond": "loss > 5", "patience": 2})
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rounds_run(ws) == [0, 1, 2]
    assert "2 round(s) without improvement of loss (patience): stopping after round 3/8" in proc.stdout
    np.testing.assert_allclose(np.load(run_dir(ws) / "models" / "server.npy"),
                               np.array([[1.0, 2.0], [3.0, 4.0]]) + 1)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fedprox_mu_reaches_the_sites_and_a_model_without_persistor_is_saved_to_save_filename(
        tmp_path: Path) -> None:
    from flconfig.transport.codec import decode_model

    job = numpy_export(tmp_path, "fedprox", {"num_rounds": 2, "fedprox_mu": 0.01, "save_filename": "global.bin",
                                             "model": {"numpy_key": [[0.0, 1.0]]}}, persistor=False)
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    records = [json.loads(line) for line in (run_dir(ws) / "metrics" / "round_metrics.jsonl").read_text().splitlines()]
    for record in records:
        for site in record["sites"]:
            assert {"name": "mu_seen", "value": 0.01} in site["metrics"]
    saved = decode_model((run_dir(ws) / "global.bin").read_bytes())
    np.testing.assert_allclose(saved.params["numpy_key"], [[2.0, 3.0]])


KMEANS_CLIENT = """
import numpy as np
from sklearn.cluster import KMeans, MiniBatchKMeans, kmeans_plusplus
from sklearn.datasets import make_blobs

import nvflare.client as flare

CENTERS = [[-5.0, -5.0], [0.0, 5.0], [5.0, -2.0]]
flare.init()
site = flare.get_site_name()
x, _ = make_blobs(n_samples=300, centers=CENTERS, cluster_std=0.5, random_state=int(site[-1]))
n_clusters = 0
while flare.is_running():
    model = flare.receive()
    if model.current_round == 0:
        n_clusters = model.params["n_clusters"]
        center, _ = kmeans_plusplus(x, n_clusters=n_clusters, random_state=0)
        params = {"center": center, "count": None}
    else:
        kmeans = MiniBatchKMeans(n_clusters=n_clusters, batch_size=len(x), max_iter=1,
                                 init=model.params["center"], n_init=1, reassignment_ratio=0, random_state=0)
        kmeans.fit(x)
        params = {"center": kmeans.cluster_centers_, "count": kmeans._counts}
    flare.send(flare.FLModel(params=params, metrics={"metrics": 1.0}, meta={"NUM_STEPS_CURRENT_ROUND": len(x)}))
"""


def sklearn_export(root: Path, name: str, assembler: dict[str, Any], initial: dict[str, Any],
                   assembler_id: str | None = None, rounds: int | None = None) -> Path:
    """KMeansFedAvgRecipe / SVMFedAvgRecipe's export: FedAvg with a nested
    CollectAndAssembleModelAggregator, JoblibModelParamPersistor, the assembler; per-site apps."""
    own_id = f"{name}_assembler"
    fedavg: dict[str, Any] = {"aggregator": {
        "path": "nvflare.app_common.aggregators.collect_and_assemble_model_aggregator.CollectAndAssembleModelAggregator",
        "args": {"assembler_id": assembler_id or own_id}}, "aggregation_weights": {}, "num_clients": 2}
    if rounds is not None:
        fedavg["num_rounds"] = rounds
    components = [*copy.deepcopy(BASE_FED_JOB_SERVER),
                  {"id": "persistor", "path": "nvflare.app_opt.sklearn.joblib_model_param_persistor."
                                              "JoblibModelParamPersistor", "args": {"initial_params": initial}},
                  {"id": own_id, "args": {}, **assembler}]
    components[1]["args"]["key_metric"] = "metrics"
    server = server_config([{"id": "controller", "path": FEDAVG, "args": fedavg}], components)
    sites = {f"site-{i}": client_config([in_process(task_script_args=f"--site {i}", server_expected_format="raw")],
                                        [EVENT_TO_FED]) for i in (1, 2)}
    return write_job(root, f"sklearn_{name}", server, per_site=sites, scripts={"client.py": KMEANS_CLIENT})


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_kmeans_recipe_clusters_with_its_nested_aggregator_and_assembler(tmp_path: Path) -> None:
    from flconfig.transport.codec import decode_model

    job = sklearn_export(tmp_path, "kmeans", {"path": "nvflare.app_opt.sklearn.kmeans_assembler.KMeansAssembler"},
                         {"n_clusters": 3}, rounds=3)
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = decode_model((run_dir(ws) / "model_param.joblib").read_bytes()).params
    assert sorted(saved) == ["center"]  # the assembler's centers replaced the first round's settings
    found = sorted(map(tuple, np.round(np.asarray(saved["center"]))))
    assert found == [(-5.0, -5.0), (0.0, 5.0), (5.0, -2.0)]


TASK_CLIENT = """
import nvflare.client as flare

flare.init()
while flare.is_running():
    task = flare.receive()
    flare.send(flare.FLModel(params={"echo": task.params["x"] * 10}, metrics={"status": 1},
                             meta={"status_seen": task.meta.get("status")}))
    print(f"TASK {flare.get_site_name()} x={task.params['x']} status={task.meta.get('status')}")
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fedtask_recipes_command_task_reaches_every_site_once(tmp_path: Path) -> None:
    server = server_config([{"id": "controller", "path": "nvflare.app_common.workflows.cmd_task_controller."
                                                         "CmdTaskController",
                             "args": {"task_name": "task", "task_data": {"x": 1}, "task_meta": {"status": "request"},
                                      "persistor_id": ""}}], [])
    client = client_config([{"tasks": ["task"], "executor": {"path": "nvflare.app_common.executors."
                                                                     "client_api_executor.ClientAPIExecutor", "args": {
        "execution_mode": "in_process", "task_script_path": "client.py", "server_expected_format": "raw"}}}])
    job = write_job(tmp_path, "fed_task", server, client, scripts={"client.py": TASK_CLIENT})
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "task 'task': results from site-1, site-2" in proc.stdout
    for site in ("site-1", "site-2"):
        log = (run_dir(ws, site) / "log.txt").read_text()
        assert log.count(f"TASK {site} x=1 status=request") == 1


EVAL_CLIENT = """
import numpy as np
import nvflare.client as flare

flare.init()
while flare.is_running():
    model = flare.receive()
    assert flare.is_evaluate()
    flare.send(flare.FLModel(metrics={"accuracy": float(np.sum(model.params["numpy_key"]))}))
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_fedeval_recipes_controller_evaluates_the_persistors_model_on_every_site(tmp_path: Path) -> None:
    server = server_config([{"id": "controller", "path": "nvflare.app_opt.pt.recipes.fedeval.EvalController",
                             "args": {"persistor_id": "persistor", "timeout": 6000}}],
                           [*BASE_FED_JOB_SERVER,
                            {"id": "persistor", "path": NP_PERSISTOR, "args": {"model": [[1.5, 2.0]]}}])
    client = client_config([in_process(params_exchange_format="numpy")], [EVENT_TO_FED])
    job = write_job(tmp_path, "eval", server, client, scripts={"client.py": EVAL_CLIENT})
    assert errors(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "evaluation of site site-1: accuracy=3.5" in proc.stdout
    assert "evaluation of site site-2: accuracy=3.5" in proc.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_per_site_apps_and_flares_accepted_widgets_run(tmp_path: Path) -> None:
    # set_per_site_config: each site its own app and arguments, site-2's script in a process
    # of its own feeding a receiver on its site; the widgets FLARE adds that flconfig accepts.
    script = NUMPY_CLIENT.replace("import nvflare.client as flare", (
        "import sys\nimport nvflare.client as flare\nfrom nvflare.client.tracking import SummaryWriter\n"
        "writer = SummaryWriter()")).replace("    flare.send(", "    writer.add_scalar('arg', float(sys.argv[-1]), r)\n"
                                              "    flare.send(")
    accepted_client = [
        {"id": "log_streamer", "path": "nvflare.app_common.logging.job_log_streamer.JobLogStreamer", "args": {}},
        {"id": "decomposer_reg", "path": "nvflare.app_common.widgets.decomposer_reg.DecomposerRegister",
         "args": {"classes": ["nvflare.app_opt.pt.decomposers.TensorDecomposer"]}},
        {"id": "tensor_streamer", "path": "nvflare.app_opt.tensor_stream.client.TensorClientStreamer", "args": {}}]
    external = {"tasks": ["*"], "executor": {"path": "nvflare.app_common.executors.client_api_executor."
                                                     "ClientAPIExecutor", "args": {
        "execution_mode": "external_process", "command": ["python3", "-u", "custom/client.py", "--a", "2"],
        "shutdown_timeout": 0.0, "params_exchange_format": "numpy"}}}
    local_receiver = {"id": "client_receiver", "path": TB_RECEIVER, "args": {"events": ["analytix_log_stats"]}}
    server = server_config(
        [{"id": "controller", "path": FEDAVG, "args": {"aggregation_weights": {}, "num_clients": 2, "num_rounds": 2}}],
        [*BASE_FED_JOB_SERVER,
         {"id": "persistor", "path": NP_PERSISTOR, "args": {"model": [[1.0, 2.0]]}},
         {"id": "log_receiver", "path": "nvflare.app_common.logging.job_log_receiver.JobLogReceiver", "args": {}},
         {"id": "tensor_streamer", "path": "nvflare.app_opt.tensor_stream.server.TensorServerStreamer", "args": {}},
         {"id": "receiver", "path": TB_RECEIVER,
          "args": {"events": ["analytix_log_stats", "fed.analytix_log_stats"]}}],
        runner_sync_timeout=7, dead_client_grace_period=60)
    job = write_job(tmp_path, "persite", server, per_site={
        "site-1": client_config([in_process(task_script_args="--a 1", params_exchange_format="numpy")],
                                [EVENT_TO_FED, *accepted_client], get_task_timeout=8),
        "site-2": client_config([external], [EVENT_TO_FED, local_receiver])}, scripts={"client.py": script})
    assert problems(job) == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert rounds_run(ws) == [0, 1]
    np.testing.assert_allclose(np.load(run_dir(ws) / "models" / "server.npy"), [[3.0, 4.0]])
    from harness.launching import scalars

    # each site's own argument reached its script; site-2's scalars are on its site too
    assert scalars(run_dir(ws) / "tb_events" / "site-1", "arg") == [(0, 1.0), (1, 1.0)]
    assert scalars(run_dir(ws) / "tb_events" / "site-2", "arg") == [(0, 2.0), (1, 2.0)]
    assert scalars(run_dir(ws, "site-2") / "tb_events" / "site-2", "arg") == [(0, 2.0), (1, 2.0)]


def test_fedavg_takes_a_flare_model_aggregator_of_the_jobs_code(tmp_path: Path) -> None:
    from flconfig.compat.nvflare.app_common.abstract.fl_model import FLModel as FlareModel
    from flconfig.compat.nvflare.app_common.aggregators.model_aggregator import ModelAggregator
    from flconfig.components.fedavg import FedAvg
    from flconfig.errors import JobError
    from flconfig.runtime.context import SiteContext
    from flconfig.types import FLModel

    class MeanOfSites(ModelAggregator):  # as a job's custom/ aggregator is written against FLARE
        def __init__(self) -> None:
            super().__init__()
            self.seen: list[tuple[str, Any]] = []

        def accept_model(self, model: Any) -> None:
            self.seen.append((model.meta["client_name"], model.params["w"]))

        def aggregate_model(self) -> Any:
            return FlareModel(params={"w": np.mean([w for _, w in self.seen], axis=0)},
                              metrics={"sites": float(len(self.seen))})

        def reset_stats(self) -> None:
            self.seen = []

    ctx = SiteContext("server", "job", tmp_path, {}, [], role="server")
    ctx.props["current_round"] = 3
    inner = MeanOfSites()
    aggregator, _ = FedAvg(aggregator=inner, stop_cond="accuracy >= 0.9")._parts(ctx)  # type: ignore[arg-type]
    aggregator.reset(ctx)
    for site, value in (("site-1", 1.0), ("site-2", 3.0)):
        assert aggregator.accept(site, FLModel(params={"w": np.full(2, value)}), ctx)
    assert [site for site, _ in inner.seen] == ["site-1", "site-2"]
    model = aggregator.aggregate(ctx)
    np.testing.assert_allclose(model.params["w"], [2.0, 2.0])
    assert model.meta["nr_aggregated"] == 2 and model.meta["current_round"] == 3
    assert model.meta["metrics_aggregation_info"] == {
        "metric_source": "custom_aggregator_flmodel_metrics", "use_contribution_sites": False,
        "key_metric": {"name": "accuracy", "mode": "max", "mode_source": "derived_from_stop_condition"}}
    with pytest.raises(JobError, match="aggregator is a str, not an aggregator"):
        FedAvg(aggregator="aggregator")._parts(ctx)  # type: ignore[arg-type]
    # an aggregator that returns nothing never replaces the global model with an empty one
    inner.aggregate_model = lambda: None  # type: ignore[method-assign]
    with pytest.raises(JobError, match=r"aggregate_model\(\) returned None: the global model is kept"):
        aggregator.aggregate(ctx)
