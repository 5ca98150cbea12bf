"""FLARE's Python job API: ``job.py`` scripts written with the Recipe and Job APIs, run by
``flconfig run`` (simulated, on a POC, on a deployed server) or exported as job folders.

The scripts here are written as FLARE's examples write them; each test runs ``flconfig run``
as a user would, in a process of its own, and reads back what the job wrote.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness import REPO, TESTS
from harness.deployment import ADMIN, Deployment
from harness.launching import scalars

from flconfig.deploy.poc import ADMIN as POC_ADMIN

EXAMPLE = REPO / "examples" / "job-api-tensorboard"


def flconfig_run(script: Path, *args: str, cwd: Path | None = None, env: dict[str, str] | None = None,
                 timeout: float = 300) -> subprocess.CompletedProcess[str]:
    """``flconfig run SCRIPT ARGS`` in the script's folder (or ``cwd``), output captured."""
    return subprocess.run([sys.executable, "-m", "flconfig", "run", str(script), *args], capture_output=True,
                          text=True, timeout=timeout, cwd=cwd or script.parent, env={**os.environ, **(env or {})})


def write(folder: Path, files: dict[str, str]) -> Path:
    for name, text in files.items():
        path = folder / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(textwrap.dedent(text).lstrip())
    return folder


def line_of(script: Path, text: str) -> int:
    """The number of the script's first line holding ``text``."""
    return next(i for i, line in enumerate(script.read_text().splitlines(), 1) if text in line)


def example_copy(tmp_path: Path, job_py: str | None = None) -> Path:
    """The example's client.py and model.py in ``tmp_path/job`` with its job.py, or ``job_py``."""
    folder = tmp_path / "job"
    folder.mkdir()
    for name in ("client.py", "model.py", "job.py"):
        (folder / name).write_text((EXAMPLE / name).read_text())
    if job_py is not None:
        write(folder, {"job.py": job_py})
    return folder / "job.py"


# --- the Recipe API: the example job, simulated -------------------------------------------------


@pytest.mark.slow
def test_the_recipe_job_trains_and_streams_every_sites_metrics_to_tensorboard(tmp_path: Path) -> None:
    result = flconfig_run(EXAMPLE / "job.py", "--num_rounds", "2", "--workspace_root", str(tmp_path))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    run = tmp_path / "fedavg_tensorboard" / "server" / "simulate_job"
    assert f"Result can be found in: {tmp_path / 'fedavg_tensorboard'}" in result.stdout
    # 320 images in batches of 16: 20 steps a round, two rounds, each logged by each site
    for site in ("site-1", "site-2"):
        losses = scalars(run / "tb_events" / site, "train_loss")
        assert [step for step, _ in losses] == list(range(40)), site
        assert [step for step, _ in scalars(run / "tb_events" / site, "local_accuracy")] == [0, 1]
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location("example_model", EXAMPLE / "model.py")
    assert spec is not None and spec.loader is not None
    example_model = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(example_model)
    weights = torch.load(run / "FL_global_model.pt", weights_only=True)
    state = weights.get("model", weights)
    example_model.SimpleNetwork().load_state_dict(state)  # the global model is the script's network, trained
    assert not torch.equal(state["fc3.bias"], torch.zeros(10))


# --- the Recipe API: exported -----------------------------------------------------------------------


def test_export_writes_the_job_folder_flare_writes_and_it_validates(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path)
    out = tmp_path / "exported"
    result = flconfig_run(job_py, "--num_rounds", "3", "--export", "--export-dir", str(out))
    assert result.returncode == 0, result.stdout + result.stderr
    folder = out / "fedavg_tensorboard"
    assert f"Job exported to: {folder}" in result.stdout
    # the recipe's own arguments are the script's; --export and --export-dir are the recipe API's
    assert "--export --export-dir" in result.stderr and "the script's own arguments are: --num_rounds 3" in result.stderr
    assert sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file()) == [
        "app/config/config_fed_client.json", "app/config/config_fed_server.json",
        "app/custom/client.py", "app/custom/model.py", "meta.json"]
    meta = json.loads((folder / "meta.json").read_text())
    assert meta == {"name": "fedavg_tensorboard", "resource_spec": {}, "min_clients": 2,
                    "deploy_map": {"app": ["@ALL"]}}
    server = json.loads((folder / "app/config/config_fed_server.json").read_text())
    by_id = {c["id"]: c for c in server["workflows"] + server["components"]}
    # the components FLARE 2.9 exports for this recipe, by id and class
    assert {k: v["path"] for k, v in by_id.items()} == {
        "controller": "nvflare.app_common.workflows.fedavg.FedAvg",
        "json_generator": "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
        "model_selector": "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
        "metrics_artifact_writer": "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter",
        "persistor": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
        "locator": "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator",
        "receiver": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
    }
    assert by_id["controller"]["args"]["num_rounds"] == 3
    assert by_id["persistor"]["args"]["model"] == {"path": "model.SimpleNetwork", "args": {}}
    assert by_id["receiver"]["args"] == {}  # tb_folder "tb_events" is the default: not written
    client = json.loads((folder / "app/config/config_fed_client.json").read_text())
    executor = client["executors"][0]
    assert executor["tasks"] == ["*"]
    assert executor["executor"]["path"] == "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor"
    assert executor["executor"]["args"] == {"execution_mode": "in_process", "task_script_path": "client.py",
                                            "params_exchange_format": "pytorch"}
    assert (folder / "app/custom/model.py").read_text() == (EXAMPLE / "model.py").read_text()
    check = subprocess.run([sys.executable, "-m", "flconfig", "validate", str(folder)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == 0, check.stdout + check.stderr


# --- the Job API: FedJob, ScriptRunner, per-site apps -----------------------------------------------


JOB_API_SCRIPT = """
    from src.network import SimpleNetwork

    from nvflare.app_opt.pt.job_config.fed_avg import FedAvgJob
    from nvflare.app_opt.tracking.tb.tb_receiver import TBAnalyticsReceiver
    from nvflare.job_config.script_runner import ScriptRunner

    if __name__ == "__main__":
        n_clients = 3
        job = FedAvgJob(name="fedavg", n_clients=n_clients, num_rounds=2, initial_model=SimpleNetwork())
        job.to_server(TBAnalyticsReceiver(events=["fed.analytix_log_stats"]))
        for i in range(n_clients):
            job.to(ScriptRunner(script="src/client.py", script_args="--num_sites 3 --train_size 64"),
                   f"site-{i + 1}")
        job.export_job("exported")
        job.simulator_run(workspace="workspace")
"""


@pytest.mark.slow
def test_a_job_api_script_exports_per_site_apps_and_runs_them(tmp_path: Path) -> None:
    folder = write(tmp_path / "code", {"fl_job.py": JOB_API_SCRIPT})
    (folder / "src").mkdir()
    (folder / "src" / "network.py").write_text((EXAMPLE / "model.py").read_text())
    (folder / "src" / "client.py").write_text(
        (EXAMPLE / "client.py").read_text().replace("from model import", "from network import"))
    result = flconfig_run(folder / "fl_job.py")
    assert result.returncode == 0, result.stdout + result.stderr
    exported = folder / "exported" / "fedavg"
    files = sorted(p.relative_to(exported).as_posix() for p in exported.rglob("*") if p.is_file())
    # as FLARE writes it: the server's model module where the script imported it from
    # (src/network.py), each site's script where it was given (src/client.py) and the
    # module the script imports beside it, flat in custom/
    assert files == ["app_server/config/config_fed_server.json", "app_server/custom/src/network.py",
                     *[f"app_site-{i}/{f}" for i in (1, 2, 3) for f in (
                         "config/config_fed_client.json", "custom/network.py", "custom/src/client.py")],
                     "meta.json"]
    meta = json.loads((exported / "meta.json").read_text())
    assert meta["deploy_map"] == {"app_server": ["server"], **{f"app_site-{i}": [f"site-{i}"] for i in (1, 2, 3)}}
    server = json.loads((exported / "app_server/config/config_fed_server.json").read_text())
    persistor = next(c for c in server["components"] if c["id"] == "persistor")
    assert persistor["args"]["model"] == {"path": "src.network.SimpleNetwork", "args": {}}
    run = folder / "workspace" / "server" / "simulate_job"
    for site in ("site-1", "site-2", "site-3"):  # 64 images in batches of 16, two rounds
        assert [s for s, _ in scalars(run / "tb_events" / site, "train_loss")] == list(range(8)), site
    assert (run / "FL_global_model.pt").is_file()


# --- a NumPy recipe, as FLARE's hello-numpy writes it ------------------------------------------------


NUMPY_CLIENT = """
    import numpy as np

    import nvflare.client as flare
    from nvflare.app_common.np.constants import NPConstants
    from nvflare.client.tracking import SummaryWriter

    flare.init()
    writer = SummaryWriter()
    while flare.is_running():
        model = flare.receive()
        weights = model.params[NPConstants.NUMPY_KEY] + 1
        writer.add_scalar("weight_mean", float(np.mean(weights)), model.current_round)
        flare.send(flare.FLModel(params={NPConstants.NUMPY_KEY: weights}, metrics={"weight_mean": 1.0},
                                 current_round=model.current_round))
"""

NUMPY_JOB = """
    from nvflare.app_common.np.recipes.fedavg import NumpyFedAvgRecipe
    from nvflare.client.config import TransferType
    from nvflare.recipe import SimEnv, add_experiment_tracking

    recipe = NumpyFedAvgRecipe(name="hello-numpy", min_clients=2, num_rounds=3,
                               model=[[1, 2, 3], [4, 5, 6], [7, 8, 9]], train_script="client.py",
                               params_transfer_type=TransferType.FULL)
    add_experiment_tracking(recipe, tracking_type="tensorboard")
    run = recipe.execute(SimEnv(num_clients=2))
    print("Result can be found in :", run.get_result())
    print("Job Status is:", run.get_status())
"""


@pytest.mark.slow
def test_a_numpy_recipe_runs_as_flares_hello_numpy_does(tmp_path: Path) -> None:
    folder = write(tmp_path / "hello", {"client.py": NUMPY_CLIENT, "job.py": NUMPY_JOB})
    workspace = tmp_path / "sim"
    result = flconfig_run(folder / "job.py", env={"NVFLARE_SIMULATOR_WORKSPACE_ROOT": str(workspace)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    run = workspace / "hello-numpy" / "server" / "simulate_job"
    # each round both sites add 1 to every weight: three rounds, three more
    final = np.load(run / "models" / "server.npy")
    assert final.tolist() == [[4, 5, 6], [7, 8, 9], [10, 11, 12]]
    assert scalars(run / "tb_events" / "site-2", "weight_mean") == [(0, 6.0), (1, 7.0), (2, 8.0)]


@pytest.mark.slow
def test_a_train_script_given_by_its_absolute_path_runs_from_the_jobs_copy(tmp_path: Path) -> None:
    # FLARE's ScriptRunner writes an absolute train_script as it is and copies the file into
    # custom/; the job runs the copy (the absolute path is never read where the job runs)
    job = NUMPY_JOB.replace('train_script="client.py"',
                            'train_script=str(Path(__file__).resolve().with_name("client.py"))')
    job = "    from pathlib import Path\n" + job.lstrip("\n")
    folder = write(tmp_path / "hello", {"client.py": NUMPY_CLIENT, "job.py": job})
    export = flconfig_run(folder / "job.py", "--export", "--export-dir", str(tmp_path / "out"))
    assert export.returncode == 0, export.stdout + export.stderr
    client = json.loads((tmp_path / "out" / "hello-numpy" / "app" / "config" / "config_fed_client.json").read_text())
    assert client["executors"][0]["executor"]["args"]["task_script_path"] == str(folder.resolve() / "client.py")
    workspace = tmp_path / "sim"
    result = flconfig_run(folder / "job.py", env={"NVFLARE_SIMULATOR_WORKSPACE_ROOT": str(workspace)})
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    final = np.load(workspace / "hello-numpy" / "server" / "simulate_job" / "models" / "server.npy")
    assert final.tolist() == [[4, 5, 6], [7, 8, 9], [10, 11, 12]]


# --- mistakes: caught before anything runs, said at the script's line ------------------------------


def test_an_argument_flare_would_drop_is_an_error_at_the_scripts_line(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, """
        from torch import nn

        from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
        from nvflare.recipe import SimEnv


        class Net(nn.Module):
            def __init__(self, width):
                super().__init__()
                self.fc = nn.Linear(4, width)


        recipe = FedAvgRecipe(name="lost", min_clients=2, num_rounds=1, model=Net(8), train_script="client.py")
        recipe.execute(SimEnv(num_clients=2, workspace_root="sim"))
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    line = line_of(job_py, "recipe = FedAvgRecipe")
    assert (f"job.py:{line}:1: error: Net: argument 'width' cannot be written into the job: the object "
            "does not keep it as self.width or self._width, and it has no default") in result.stderr
    assert "nothing was run" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (job_py.parent / "sim").exists()


def test_a_wrong_value_is_reported_at_the_line_that_gave_it(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, """
        from model import SimpleNetwork

        from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
        from nvflare.recipe import SimEnv
        from nvflare.recipe.utils import add_experiment_tracking

        recipe = FedAvgRecipe(name="bad", min_clients=2, num_rounds=2, model=SimpleNetwork(),
                              train_script="client.py")
        add_experiment_tracking(recipe, "tensorboard", tracking_config={"tb_folder": 5})
        recipe.execute(SimEnv(num_clients=2, workspace_root="sim"))
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    line = line_of(job_py, "add_experiment_tracking(recipe")
    errors = [x for x in result.stderr.splitlines() if ": error:" in x]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(f"job.py:{line}:1: error: ")
    assert "argument 'tb_folder' of TBAnalyticsReceiver must be a string, got 5" in errors[0]
    # the generated config the report points into is kept for the user to read
    written = Path(result.stderr.split("(written to ", 1)[1].split(")", 1)[0])
    config = written / "app" / "config" / "config_fed_server.json"
    assert f"(in {config}:" in errors[0]
    assert json.loads(config.read_text())["components"][5]["args"]["tb_folder"] == 5
    assert not (job_py.parent / "sim").exists()


def test_a_problem_in_an_executor_the_recipe_makes_later_is_reported_at_the_scripts_line(tmp_path: Path) -> None:
    # the recipe makes each site's executor only when the job is written (FLARE's
    # client-api-attach): the line is job.py's, never one of the standard library's
    job_py = example_copy(tmp_path, """
        from model import SimpleNetwork

        from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
        from nvflare.recipe import SimEnv

        recipe = FedAvgRecipe(name="bad", min_clients=2, num_rounds=2, model=SimpleNetwork(),
                              train_script="client.py", launch_external_process=True,
                              command="torchrun --nproc_per_node 2")
        recipe.execute(SimEnv(num_clients=2, workspace_root="sim"))
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    errors = [x for x in result.stderr.splitlines() if ": error:" in x]
    assert errors and all(x.startswith("job.py:") for x in errors), result.stderr
    assert "the command runs 'torchrun'" in errors[0]
    assert "contextlib" not in result.stderr and "python3." not in result.stderr


def test_a_recipe_refusing_an_argument_is_one_line_at_the_call(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, """
        from nvflare.recipe import SimEnv

        env = SimEnv(workspace_root="sim")
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"job.py:{line_of(job_py, 'env = SimEnv')}: error: ValueError: give num_clients > 0 or the list of clients"]


def test_a_bug_in_the_script_shows_its_traceback_without_flconfigs_frames(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, """
        def rounds():
            return 5 / 0

        rounds()
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    assert result.stderr.startswith("Traceback (most recent call last):")
    assert f'job.py", line {line_of(job_py, "return 5 / 0")}, in rounds' in result.stderr
    assert "ZeroDivisionError: division by zero" in result.stderr
    assert "flconfig" not in result.stderr.replace(str(job_py), "")


def test_subclassing_a_component_flconfig_runs_is_refused_in_one_line(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, """
        from nvflare.app_common.workflows.fedavg import FedAvg

        class MyAvg(FedAvg):
            pass
    """)
    result = flconfig_run(job_py)
    assert result.returncode == 1
    [line] = result.stderr.strip().splitlines()
    assert line.startswith(f"job.py:{line_of(job_py, 'class MyAvg')}: error: TypeError: MyAvg subclasses FedAvg")
    assert "Subclass FLARE's API classes instead" in line


@pytest.mark.parametrize(("given", "said"), [("missing.py", "missing.py: no such file"),
                                              (".", ".: a folder, not a job script")])
def test_a_script_that_is_not_there_is_a_usage_error(tmp_path: Path, given: str, said: str) -> None:
    result = subprocess.run([sys.executable, "-m", "flconfig", "run", given], capture_output=True, text=True,
                            cwd=tmp_path, timeout=60)
    assert result.returncode == 2
    assert result.stderr == f"flconfig run: {said}\n"


def test_the_scripts_own_exit_status_is_flconfigs(tmp_path: Path) -> None:
    job_py = write(tmp_path, {"job.py": "import sys\nprint(sys.argv[1:])\nsys.exit(3)\n"}) / "job.py"
    result = flconfig_run(job_py, "--n", "2", "--export-dir=x")
    assert result.returncode == 3
    assert result.stdout == "['--n', '2', '--export-dir=x']\n"  # no recipe API imported: nothing taken


# --- PocEnv and ProdEnv: real services ---------------------------------------------------------------


POC_JOB = """
    from model import SimpleNetwork

    from nvflare.app_opt.pt.recipes.fedavg import FedAvgRecipe
    from nvflare.recipe import {env_class}
    from nvflare.recipe.utils import add_experiment_tracking

    recipe = FedAvgRecipe(name="deployed", min_clients=2, num_rounds=2, model=SimpleNetwork(),
                          train_script="client.py", train_args="--train_size 64")
    add_experiment_tracking(recipe, "tensorboard", tracking_config={{"tb_folder": "tb_events"}})
    run = recipe.execute({env})
    print("Result can be found in:", run.get_result())
    print("Job Status is:", run.get_status())
"""


def _result_folder(stdout: str) -> Path:
    return Path(next(x for x in stdout.splitlines() if x.startswith("Result can be found in:")).split(": ", 1)[1])


@pytest.mark.slow
def test_poc_env_prepares_starts_and_runs_the_job_on_a_poc(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, POC_JOB.format(env_class="PocEnv", env="PocEnv(num_clients=2)"))
    poc = tmp_path / "poc"
    try:
        result = flconfig_run(job_py, env={"FLCONFIG_POC_DIR": str(poc)})
    finally:
        subprocess.run([sys.executable, "-m", "flconfig", "poc", "stop", "--dir", str(poc)],
                       capture_output=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    assert "flconfig: POC started: server, site-1, site-2" in result.stdout
    results = _result_folder(result.stdout)
    assert results.parent == poc / POC_ADMIN / "transfer"
    for site in ("site-1", "site-2"):
        assert [s for s, _ in scalars(results / "tb_events" / site, "train_loss")] == list(range(8))


@pytest.mark.slow
def test_prod_env_submits_to_a_deployed_server_and_downloads_the_results(tmp_path: Path) -> None:
    deployment = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True})
    kit = deployment.root / ADMIN
    job_py = example_copy(tmp_path, POC_JOB.format(env_class="ProdEnv", env=f"ProdEnv(startup_kit_location={str(kit)!r})"))
    try:
        deployment.start()
        result = flconfig_run(job_py)
        jobs = deployment.jobs()
    finally:
        deployment.stop()
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    results = _result_folder(result.stdout)
    assert results.parent == kit / "transfer"
    assert [s for s, _ in scalars(results / "tb_events" / "site-2", "train_loss")] == list(range(8))
    [job] = jobs
    assert job["name"] == "deployed" and job["state"] == "finished"


# --- flconfig run --check: every job checked, none run ----------------------------------------------


def test_check_validates_each_job_and_runs_none(tmp_path: Path) -> None:
    sim = example_copy(tmp_path)
    kept = tmp_path / "kept"
    result = subprocess.run([sys.executable, "-m", "flconfig", "run", "--check", "--keep", str(kept), str(sim),
                             "--workspace_root", str(tmp_path / "sim")], capture_output=True, text=True,
                            cwd=sim.parent, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert f"flconfig: job fedavg_tensorboard is valid, written to {kept / 'fedavg_tensorboard'}; not run (--check)" \
        in result.stdout
    assert "Job Status is: CHECKED:NOT_RUN" in result.stdout
    assert (kept / "fedavg_tensorboard" / "app" / "custom" / "client.py").is_file()
    assert not (tmp_path / "sim").exists()


def test_check_prepares_no_poc_and_says_an_invalid_job_is_invalid(tmp_path: Path) -> None:
    job_py = example_copy(tmp_path, POC_JOB.format(env_class="PocEnv", env="PocEnv(num_clients=2)").replace(
        '"tb_events"', "7"))
    poc = tmp_path / "poc"
    result = subprocess.run([sys.executable, "-m", "flconfig", "run", "--check", str(job_py)], capture_output=True,
                            text=True, cwd=job_py.parent, timeout=120, env={**os.environ, "FLCONFIG_POC_DIR": str(poc)})
    assert result.returncode == 1
    assert f"job.py:{line_of(job_py, 'add_experiment_tracking(recipe')}:1: error: " in result.stderr
    assert "flconfig run: the job is invalid: 1 error(s)" in result.stderr
    assert not poc.exists()


def test_a_flare_module_flconfig_does_not_serve_is_one_line_at_its_import(tmp_path: Path) -> None:
    job_py = write(tmp_path, {"job.py": "import os\n\nfrom nvflare.app_opt.tf.recipes.fedavg import FedAvgRecipe\n"}) / "job.py"
    result = flconfig_run(job_py)
    assert result.returncode == 1
    assert result.stderr.splitlines() == [
        "job.py:3: error: ModuleNotFoundError: No module named 'nvflare.app_opt.tf': flconfig's FLARE API does "
        "not provide it yet (docs/flare-support.md lists what it serves)"]


# --- with FLARE installed: nothing shadowed, and FLARE's export runs under flconfig -------------------


FLARE_EXPORT = TESTS / "fixtures" / "flare29-export-tensorboard"


def _flare_on_path(tmp_path: Path) -> dict[str, str]:
    """FLARE 2.9.0's package, unpacked from its wheel onto ``PYTHONPATH``: Python finds it
    installed (its dependencies are not needed: flconfig never imports it)."""
    import zipfile

    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "download", "--quiet", "--no-deps", "--dest", str(wheels),
                    "nvflare==2.9.0"], check=True, capture_output=True, timeout=600)
    [wheel] = wheels.glob("nvflare-2.9.0-*.whl")
    site = tmp_path / "flare-site"
    with zipfile.ZipFile(wheel) as archive:
        archive.extractall(site)
    env = {"PYTHONPATH": os.pathsep.join([str(site), *filter(None, [os.environ.get("PYTHONPATH")])])}
    found = subprocess.run([sys.executable, "-c", "import importlib.util; print(importlib.util.find_spec('nvflare').origin)"],
                           capture_output=True, text=True, env={**os.environ, **env}, check=True)
    assert found.stdout.strip() == str(site / "nvflare" / "__init__.py")
    return env


@pytest.mark.slow
def test_with_flare_installed_flares_export_launches_and_job_py_runs(tmp_path: Path) -> None:
    env = _flare_on_path(tmp_path)
    job = tmp_path / "fedavg_tensorboard"
    shutil.copytree(FLARE_EXPORT, job, ignore=shutil.ignore_patterns("README.md"))
    (job / "app" / "custom").mkdir()
    for name in ("client.py", "model.py"):
        shutil.copy(EXAMPLE / name, job / "app" / "custom" / name)
    launched = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(tmp_path / "ws")],
                              capture_output=True, text=True, timeout=300, env={**os.environ, **env})
    assert launched.returncode == 0, launched.stdout + launched.stderr
    for site in ("site-1", "site-2"):  # FLARE's export runs 5 rounds of 20 steps
        losses = scalars(tmp_path / "ws" / "server" / "simulate_job" / "tb_events" / site, "train_loss")
        assert [s for s, _ in losses] == list(range(100)), site
    ran = flconfig_run(EXAMPLE / "job.py", "--num_rounds", "1", "--workspace_root", str(tmp_path / "sim"), env=env)
    assert ran.returncode == 0, ran.stdout + ran.stderr
    assert "Job Status is: FINISHED:COMPLETED" in ran.stdout


# --- a class of the job script itself, and FLARE's component modules where the job runs ------------


JOB_WITH_OWN_COMPONENT = """
    from nvflare.apis.event_type import EventType
    from nvflare.apis.fl_component import FLComponent
    from nvflare.app_common.np.recipes.fedavg import NumpyFedAvgRecipe
    from nvflare.app_common.workflows.fedavg import FedAvg
    from nvflare.recipe import SimEnv


    class RunWatcher(FLComponent):
        \"\"\"Defined in the job script: FLARE (and flconfig) copy job.py into custom/.\"\"\"

        def __init__(self, label: str = "watcher"):
            super().__init__()
            self.label = label

        def handle_event(self, event_type, fl_ctx):
            if event_type == EventType.START_RUN:
                self.log_info(fl_ctx, f"{self.label}: the server's FedAvg is {FedAvg.__module__}.{FedAvg.__name__}")


    if __name__ == "__main__":
        recipe = NumpyFedAvgRecipe(name="watched", min_clients=2, num_rounds=1, model=[1.0, 2.0],
                                   train_script="client.py")
        recipe.job.to_server(RunWatcher(label="seen"), id="watcher")
        run = recipe.execute(SimEnv(num_clients=2, workspace_root="sim"))
        print("Job Status is:", run.get_status())
"""


@pytest.mark.slow
def test_a_class_of_the_job_script_runs_and_imports_flares_modules_where_the_job_runs(tmp_path: Path) -> None:
    folder = write(tmp_path / "job", {"client.py": NUMPY_CLIENT, "job.py": JOB_WITH_OWN_COMPONENT})
    result = flconfig_run(folder / "job.py")
    assert result.returncode == 0, result.stdout + result.stderr
    assert "Job Status is: FINISHED:COMPLETED" in result.stdout
    log = (folder / "sim" / "watched" / "server" / "simulate_job" / "log.txt").read_text()
    # on the server, job.py (copied into custom/) imported FLARE's FedAvg: flconfig's class
    assert "seen: the server's FedAvg is flconfig.components.fedavg.FedAvg" in log
