"""FLARE's Client API in process: a job's own training script, unchanged, run by a site.

The scripts here import ``nvflare.client`` as FLARE users write them; FLARE is not
installed: flconfig serves the module (flconfig.compat).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from harness import REPO

from flconfig.components.client_api import ClientAPIExecutor, PTInProcessClientAPIExecutor
from flconfig.components.client_api_launcher import PTClientAPILauncherExecutor
from flconfig.runtime.context import SiteContext
from flconfig.types import Event, EventType, FLModel, ReturnCode, Signal
from flconfig.validate.loader import inspect_job

ROOT = REPO
EXAMPLE = ROOT / "configs" / "client-api"

SCRIPT = """
import sys

import numpy as np

import nvflare.client as flare
from nvflare.client.tracking import SummaryWriter

flare.init()
writer = SummaryWriter()
print("started with", " ".join(sys.argv[1:]), "on", flare.get_site_name())
while flare.is_running():
    model = flare.receive()
    if flare.is_train():
        trained = {k: v + 1.0 for k, v in model.params.items()}
        writer.add_scalar("loss", 0.5, model.current_round)
        writer.add_scalars("parts", {"a": 1.0, "b": 2.0}, model.current_round)
        flare.send(flare.FLModel(params=trained, metrics={"accuracy": np.float32(0.75)},
                                 meta={"NUM_STEPS_CURRENT_ROUND": 3}))
    elif flare.is_evaluate():
        flare.send(flare.FLModel(metrics={"accuracy": 0.5}))
    elif flare.is_submit_model():
        flare.send(flare.FLModel(params={"w": np.zeros(2)}))
writer.add_scalar("after_the_loop", 1.0, 99)  # logged once the run has ended: still sent
"""


class Recorder:
    """A handler on the site: keeps the analytics batches the executor's records fire."""

    def __init__(self) -> None:
        self.records: list[dict[str, Any]] = []

    def handle_event(self, event: Event, ctx: Any) -> None:
        if event.type == "analytix_log_stats":
            self.records.extend(event.data)


def site(tmp_path: Path, script: str, executor: ClientAPIExecutor) -> tuple[SiteContext, Recorder]:
    custom = tmp_path / "app" / "custom"
    (custom / "src").mkdir(parents=True)
    (custom / "src" / "train.py").write_text(textwrap.dedent(script))
    recorder = Recorder()
    ctx = SiteContext("site-1", "job1", tmp_path / "ws", {"executor": executor},
                      [executor, recorder], custom_dir=custom)
    ctx.fire_event(EventType.START_RUN)
    return ctx, recorder


def task(round_: int, **params: Any) -> FLModel:
    return FLModel(params={k: np.asarray(v, dtype=np.float32) for k, v in params.items()},
                   meta={"current_round": round_, "num_rounds": 5})


def test_a_script_trains_validates_and_submits_with_diff_results(tmp_path: Path,
                                                                  caplog: pytest.LogCaptureFixture) -> None:
    executor = ClientAPIExecutor("in_process", task_script_path="train.py",
                                 task_script_args="--lr 0.1", params_transfer_type="DIFF",
                                 params_exchange_format="numpy", train_with_evaluation=True)
    caplog.set_level("INFO")
    ctx, recorder = site(tmp_path, SCRIPT, executor)
    try:
        result = executor.execute("train", task(4, w=[1.0, 2.0]), ctx, Signal())
        assert result.rc == ReturnCode.OK, result.meta
        assert result.params_type == "DIFF"
        np.testing.assert_allclose(result.params["w"], [1.0, 1.0])  # trained minus received
        assert result.meta["NUM_STEPS_CURRENT_ROUND"] == 3
        assert result.meta["current_round"] == 4
        assert result.metrics == {"accuracy": 0.75}
        assert type(result.metrics["accuracy"]) is float  # a numpy scalar became a number
        assert result.meta["initial_metrics"] == {"accuracy": 0.75}  # where model selection reads it

        validation = executor.execute("validate", task(4, w=[1.0, 2.0]), ctx, Signal())
        assert (validation.rc, validation.metrics, validation.params) == (ReturnCode.OK, {"accuracy": 0.5}, {})

        submitted = executor.execute("submit_model", FLModel(meta={"submit_model_name": "best"}), ctx, Signal())
        assert submitted.rc == ReturnCode.OK and list(submitted.params) == ["w"]
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert executor._script is not None and executor._script.thread is not None
    assert not executor._script.thread.is_alive()  # told the run is over, the script returned
    assert [(r["kind"], r["tag"], r["value"], r["step"]) for r in recorder.records] == [
        ("scalar", "loss", 0.5, 4), ("scalars", "parts", {"a": 1.0, "b": 2.0}, 4),
        ("scalar", "after_the_loop", 1.0, 99)]
    assert "started with --lr 0.1 on site-1" in caplog.text  # its print went to the site's log


def test_the_pytorch_format_gives_the_script_tensors(tmp_path: Path) -> None:
    script = """
    import torch
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        assert all(isinstance(v, torch.Tensor) for v in model.params.values()), model.params
        flare.send(flare.FLModel(params={k: v * 2 for k, v in model.params.items()}))
    """
    executor = PTInProcessClientAPIExecutor(task_script_path="src/train.py")
    ctx, _ = site(tmp_path, script, executor)
    try:
        result = executor.execute("train", task(0, w=[1.0, 3.0]), ctx, Signal())
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.rc == ReturnCode.OK, result.meta
    assert result.params_type == "FULL"
    np.testing.assert_allclose(np.asarray(result.params["w"]), [2.0, 6.0])


def test_a_failing_script_fails_its_task_with_its_error(tmp_path: Path) -> None:
    script = """
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        raise ZeroDivisionError("the script's own bug")
    """
    executor = ClientAPIExecutor("in_process", task_script_path="train.py")
    ctx, _ = site(tmp_path, script, executor)
    try:
        result = executor.execute("train", task(0, w=[1.0]), ctx, Signal())
        again = executor.execute("train", task(1, w=[1.0]), ctx, Signal())
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.rc == ReturnCode.EXECUTION_EXCEPTION
    assert result.meta["error"] == "the training script train.py failed: ZeroDivisionError: the script's own bug"
    assert again.meta["error"] == result.meta["error"]


def test_a_script_that_ends_early_or_sends_no_model_says_so(tmp_path: Path) -> None:
    executor = ClientAPIExecutor("in_process", task_script_path="train.py")
    ctx, _ = site(tmp_path, "import nvflare.client as flare\nflare.init()\n", executor)
    try:
        assert executor._script is not None
        executor._script.done.wait(10)
        result = executor.execute("train", task(0, w=[1.0]), ctx, Signal())
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.rc == ReturnCode.EXECUTION_EXCEPTION
    assert "returned before taking task 'train'" in result.meta["error"]

    script = """
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        flare.receive()
        flare.send({"w": 1})
    """
    executor = ClientAPIExecutor("in_process", task_script_path="train.py")
    ctx, _ = site(tmp_path / "2", script, executor)
    try:
        result = executor.execute("train", task(0, w=[1.0]), ctx, Signal())
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.meta["error"] == ("the training script train.py failed: "
                                    "TypeError: flare.send() takes an FLModel, got dict")


def test_an_aborted_task_returns_at_once(tmp_path: Path) -> None:
    script = """
    import time
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        flare.receive()
        time.sleep(0.5)  # busy; the abort reaches it at its next Client API call
    """
    executor = ClientAPIExecutor("in_process", task_script_path="train.py")
    ctx, _ = site(tmp_path, script, executor)
    signal = Signal()
    signal.trigger("stop")
    try:
        result = executor.execute("train", task(0, w=[1.0]), ctx, signal)
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.rc == ReturnCode.TASK_ABORTED


# --------------------------------------------------------------------------- validation


def copy_example(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    return job


def errors_of(job: Path) -> list[str]:
    _, problems = inspect_job(job, environ={})
    return [f"{p.code}: {p.message} | {p.hint}" for p in problems if p.is_error]


def test_the_example_client_api_job_validates_clean() -> None:
    _, problems = inspect_job(EXAMPLE, environ={})
    assert [p.message for p in problems] == []


def test_a_script_not_in_custom_is_an_error_at_its_line(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    client = job / "app" / "config" / "config_fed_client.conf"
    client.write_text(client.read_text().replace('app_script = "train.py"', 'app_script = "trian.py"'))
    _, problems = inspect_job(job, environ={})
    [problem] = [p for p in problems if p.is_error]
    assert problem.code == "script-not-found"
    # the value a variable gave is named by the reference, never shown
    assert "task_script_path {app_script} is not in the app's custom/ folder" in problem.message
    assert problem.hint == "did you mean 'train.py'?"
    assert problem.position.file.endswith("config_fed_client.conf")
    assert problem.position.line == 16  # task_script_path = "{app_script}"


def test_flare_modes_and_args_flconfig_cannot_run_yet_say_so(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    client = job / "app" / "config" / "config_fed_client.conf"
    text = client.read_text().replace(
        'path = "nvflare.app_opt.pt.in_process_client_api_executor.PTInProcessClientAPIExecutor"',
        'path = "nvflare.app_opt.pt.in_process_client_api_executor.PTInProcessClientAPIExecutor"\n'
        '        args.from_nvflare_converter_id = "converter"')
    client.write_text(text)
    errors = errors_of(job)
    assert ("not-supported: executor PTInProcessClientAPIExecutor: from_nvflare_converter_id = "
            "'converter' is not supported yet | flconfig has no ParamsConverter components yet; "
            "params_exchange_format converts numpy and torch") in errors

    client.write_text(json.dumps({
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {
            "path": "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor",
            "args": {"execution_mode": "attach", "attach_id": "trainer-1"}}}],
        "components": [{"id": "event_to_fed", "name": "ConvertToFedEvent",
                        "args": {"events_to_convert": ["analytix_log_stats"]}}],
    }))
    client.rename(client.with_suffix(".json"))
    [error] = errors_of(job)
    assert "execution_mode = 'attach' is not supported yet" in error
    assert "flconfig starts the script itself, for now" in error


def test_an_import_of_a_flare_module_flconfig_lacks_is_an_error_where_the_sites_run_it(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    custom = job / "app" / "custom"
    script = custom / "train.py"
    # the script imports a module of custom/ that imports what flconfig does not serve
    (custom / "helpers").mkdir()
    (custom / "helpers" / "__init__.py").write_text("")
    (custom / "helpers" / "streams.py").write_text(
        "from nvflare.app_common.streamers.file_streamer import FileStreamer\n")
    script.write_text("from helpers.streams import *  # noqa\n" + script.read_text())
    # a file nothing imports at start, and an optional import: neither fails a run
    (custom / "unused.py").write_text("from nvflare.app_opt.xgboost import histogram_based\n")
    (custom / "optional.py").write_text("try:\n    import nvflare.app_opt.xgboost\nexcept ImportError:\n    pass\n")
    script.write_text("import optional  # noqa\n" + script.read_text())
    _, problems = inspect_job(job, environ={})
    [error] = [p for p in problems if p.is_error]
    assert error.code == "flare-api-not-supported"
    assert error.message == ("'nvflare.app_common.streamers.file_streamer' is imported here, but flconfig's "
                             "FLARE API does not provide it yet: the sites fail "
                             "when they import this file")
    assert error.position.file.endswith("streams.py") and error.position.line == 1
    [warning] = [p for p in problems if not p.is_error]
    assert warning.code == "flare-api-not-supported" and warning.position.file.endswith("unused.py")
    assert warning.message == ("'nvflare.app_opt.xgboost' is imported here, but flconfig's FLARE API "
                               "does not provide it yet")


def test_the_flare_modules_real_jobs_import_are_served(tmp_path: Path) -> None:
    # FLARE's integration jobs: a subclass of NPTrainer, a wrapper of CellClientAPI's hook
    job = copy_example(tmp_path)
    script = job / "app" / "custom" / "train.py"
    script.write_text("from nvflare.app_common.np.np_trainer import NPTrainer  # noqa\n"
                      "from nvflare.client.cell.api import CellClientAPI\n"
                      "assert callable(CellClientAPI._install_site_auth_headers)\n"
                      # what FLARE's job scripts on main import in the code they copy into custom/
                      "from nvflare import FedJob, FilterType  # noqa\n"
                      "from nvflare.app_common.utils.math_utils import parse_compare_criteria  # noqa\n"
                      "from nvflare.fuel.utils.log_utils import custom_logger, get_obj_logger  # noqa\n"
                      "from nvflare.apis.dxo import from_dict  # noqa\n"
                      "from nvflare.apis.utils.format_check import name_check  # noqa\n"
                      "from nvflare.app_opt.sklearn import SklearnFedAvgRecipe  # noqa\n"
                      "from nvflare.app_common.workflows.fedavg import FedAvg  # noqa\n"
                      "from nvflare.app_opt.pt import PTFileModelPersistor  # noqa\n"
                      "from nvflare.app_opt.pt.decomposers import TensorDecomposer  # noqa\n"
                      "from nvflare.fuel.utils import fobs  # noqa\n" + script.read_text())
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []


def test_flares_small_helpers_behave_as_flares() -> None:
    code = textwrap.dedent("""
        import flconfig.compat
        assert flconfig.compat.install()
        import operator
        from nvflare.app_common.utils.math_utils import parse_compare_criteria
        from nvflare.fuel.utils.log_utils import custom_logger, get_obj_logger
        from nvflare.apis.dxo import DXO, DataKind, from_dict
        from nvflare.apis.utils.format_check import name_check
        from nvflare.app_opt.sklearn import SklearnFedAvgRecipe
        from nvflare.app_opt.sklearn.recipes import SklearnFedAvgRecipe as same
        print(parse_compare_criteria("accuracy >= 0.8") == ("accuracy", 0.8, operator.ge))
        for bad in ("accuracy>=0.8", "accuracy => 0.8", "accuracy >= high"):
            try:
                parse_compare_criteria(bad)
            except ValueError as exc:
                print(exc)
        class Trainer:
            pass
        print(get_obj_logger(Trainer()).name, custom_logger(get_obj_logger(Trainer)).name)
        dxo = from_dict(DXO(DataKind.WEIGHTS, {"w": 1}, {"round": 2}).to_dict())
        print(dxo.data_kind, dxo.data, dxo.meta)
        print(name_check("site-1", "client")[0], name_check("site 1", "client")[0])
        print(SklearnFedAvgRecipe is same)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "True",
        "Invalid early_stop_condition, expecting form of '<key> <op> <value>' but got 'accuracy>=0.8'",
        "Invalid operator symbol: expecting one of <=, =, >=, <, > ",
        "expect a number, but get 'high' in 'accuracy >= high'",
        "__main__.Trainer custom.__main__.Trainer",
        "WEIGHTS {'w': 1} {'round': 2}",
        "False True",
        "True",
    ]


def test_fobs_keeps_a_models_meta_in_a_file_and_reads_it_back_without_unpickling(tmp_path: Path) -> None:
    # FLARE's tutorial FedAvg controllers: torch.save the params, fobs.dumpf the rest
    code = textwrap.dedent(f"""
        import flconfig.compat
        assert flconfig.compat.install()
        import numpy as np, torch
        from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
        from nvflare.app_opt.pt.decomposers import TensorDecomposer
        from nvflare.fuel.utils import fobs
        from nvflare.fuel.utils.fobs import Decomposer

        fobs.register(TensorDecomposer)
        model = FLModel(params={{"w": torch.tensor([[1.5, 2.0]]), "b": np.array([3], dtype=np.int64)}},
                        metrics={{"accuracy": 0.75}}, current_round=3, total_rounds=5,
                        meta={{"NUM_STEPS_CURRENT_ROUND": 12, "shape": (2, 1), "raw": b"\\x00\\xff"}})
        path = "{tmp_path / 'model.metadata'}"
        fobs.dumpf(model, path)
        back = fobs.loadf(path)
        print(type(back).__name__, back.params_type is ParamsType.FULL, back.current_round, back.total_rounds)
        print(type(back.params["w"]).__name__, back.params["w"].tolist(), back.params["b"].dtype, back.params["b"].tolist())
        print(back.metrics, back.meta)

        class Point:
            def __init__(self, x, y):
                self.x, self.y = x, y

        class PointDecomposer(Decomposer):
            def supported_type(self):
                return Point
            def decompose(self, target, manager=None):
                return [target.x, target.y]
            def recompose(self, data, manager=None):
                return Point(*data)

        try:
            fobs.dumps(Point(1, 2))
        except TypeError as exc:
            print(exc)
        fobs.register(PointDecomposer)
        data = fobs.dumps({{"p": Point(1, 2)}})
        print(vars(fobs.loads(data)["p"]))
        # FLARE's keywords; a numpy scalar stays a scalar, bfloat16 stays bfloat16
        back = fobs.loads(fobs.dumps({{"acc": np.float32(0.5), "bf": torch.tensor([1.5], dtype=torch.bfloat16)}},
                                     max_value_size=None, fobs_ctx={{}}), fobs_ctx={{}})
        print("%.3f" % back["acc"], type(back["acc"]).__name__, back["bf"].dtype, back["bf"].tolist())
        try:
            fobs.dumps(np.array([object()]))
        except TypeError as exc:
            print(exc)
        fobs.reset()
        for bad in (data, b"\\x80\\x04 a pickle", b'{{"__fobs__": 1, "value": {{"__fobs__": "bytes"}}}}'):
            try:
                fobs.loads(bad)
            except (TypeError, ValueError) as exc:
                print(type(exc).__name__, str(exc).split(" (")[0])
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        "FLModel True 3 5",
        "Tensor [[1.5, 2.0]] int64 [3]",
        "{'accuracy': 0.75} {'NUM_STEPS_CURRENT_ROUND': 12, 'shape': (2, 1), 'raw': b'\\x00\\xff'}",
        "fobs: cannot write a __main__.Point: flconfig writes plain values, arrays, tensors and FLModel; "
        "register a Decomposer for this type",
        "{'x': 1, 'y': 2}",
        "0.500 float32 torch.bfloat16 [1.5]",
        "fobs: cannot write an array of Python objects (dtype object): nothing is pickled; convert it to "
        "numbers or strings first",
        "TypeError fobs: the data holds a __main__.Point, and no Decomposer for it is registered in this "
        "process: register it before loading",
        "ValueError fobs: not data fobs.dumps wrote",
        "ValueError fobs: not data fobs.dumps wrote",
    ]


def test_nvflare_is_flconfigs_module_under_both_names_and_missing_ones_say_why() -> None:
    code = textwrap.dedent("""
        import flconfig.compat
        assert flconfig.compat.install()
        import nvflare.client as flare
        from nvflare.app_common.abstract.fl_model import FLModel, ParamsType
        import flconfig.compat.nvflare.client as ours
        assert flare is ours and flare.FLModel is FLModel
        assert FLModel(params={"w": 1}).params_type is ParamsType.FULL
        try:
            import nvflare.app_opt.xgboost
        except ModuleNotFoundError as exc:
            print(exc)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == (
        "No module named 'nvflare.app_opt.xgboost': flconfig's FLARE API does not provide it yet "
        "(docs/flare-support.md lists what it serves)")


# --------------------------------------------------------------------------- end to end


FLARE_2_9_EXECUTOR = """executor {
        path = "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor"
        args {
          execution_mode = "in_process"
          task_script_path = "{app_script}"
          task_script_args = "{app_config}"
          params_exchange_format = "pytorch"
          params_transfer_type = "DIFF"
          train_with_evaluation = true
        }
      }"""


def as_flare_2_9(tmp_path: Path, external: bool = False) -> Path:
    """The example job with FLARE 2.9's one Client API executor instead of 2.5's."""
    job = copy_example(tmp_path)
    client = job / "app" / "config" / "config_fed_client.conf"
    text = client.read_text()
    start = text.index("executor {")
    end = text.index("}\n    }\n  ]", start) + 1
    executor = FLARE_2_9_EXECUTOR
    if external:
        executor = executor.replace('execution_mode = "in_process"', 'execution_mode = "external_process"')
        executor = executor.replace('task_script_path = "{app_script}"\n          task_script_args = "{app_config}"',
                                    'command = "python3 -u custom/{app_script} {app_config}"')
        assert "command =" in executor
    text = text[:start] + executor + text[end:]
    if external:  # FLARE 2.9's external process sends its records to the server itself
        text = text[:text.index("  components = [")] + "  components = []\n}\n"
    client.write_text(text)
    return job


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("form", ["FLARE 2.5 (PTInProcessClientAPIExecutor)", "FLARE 2.9 (ClientAPIExecutor)",
                                  "FLARE 2.9 (ClientAPIExecutor, external_process)"])
def test_the_flare_client_api_job_runs_unchanged_every_scalar_in_tensorboard(tmp_path: Path, form: str) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = EXAMPLE if "2.5" in form else as_flare_2_9(tmp_path, external="external" in form)
    if "2.9" in form:
        assert "ClientAPIExecutor" in (job / "app" / "config" / "config_fed_client.conf").read_text()
        assert errors_of(job) == []
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    assert "round 3/3: results from site-1, site-2" in proc.stdout
    run = ws / "server" / "simulate_job"
    steps_per_round = 2 * 23  # --epochs 2, 719 (718) images in batches of 32
    for site_name in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site_name), size_guidance={"scalars": 0})
        acc.Reload()
        losses = [e.step for e in acc.Scalars("train_loss")]
        assert losses == list(range(3 * steps_per_round))  # every add_scalar of every round
        accuracy = acc.Scalars("global_model_accuracy")
        assert [e.step for e in accuracy] == [0, 1, 2]
        assert accuracy[-1].value > accuracy[0].value + 0.3  # the federation learned
        log = (ws / site_name / "simulate_job" / "log.txt").read_text()
        assert f"[round 2, {site_name}] training on" in log  # the script's prints, in its site's log
    # The files a FLARE user opens: torch's format, FLARE 2.9's checkpoint dict, weights only.
    best = torch.load(run / "best_FL_global_model.pt", weights_only=True)
    final = torch.load(run / "FL_global_model.pt", weights_only=True)
    for checkpoint in (best, final):
        assert list(checkpoint) == ["model", "meta_props", "train_conf"]
        assert checkpoint["train_conf"] == {"train": {"model": "Net"}}
        assert all(isinstance(v, torch.Tensor) for v in checkpoint["model"].values())
    assert final["meta_props"]["current_round"] == 2
    assert best["meta_props"]["validation_metric"] > 0.5
    assert set(best["model"]) == set(final["model"]) and "classifier.weight" in best["model"]
    assert "new best global model at round 2" in (run / "log.txt").read_text()
    # ... and loads it into the model class the way a notebook does (the class read from the
    # job's net.py without importing it as "net" here: later tests validate jobs with a net.py).
    import runpy

    net = runpy.run_path(str(job / "app" / "custom" / "net.py"))["Net"]()
    net.load_state_dict(final["model"])
    images = torch.zeros(4, 1, 8, 8)
    assert net(images).shape[0] == 4


MODEL_CONTROLLER_SERVER = """{
  format_version = 2
  task_data_filters = []
  task_result_filters = []
  model_class_path = "net.Net"
  # FLARE 2.5's ModelController FedAvg: no aggregator, no shareable generator
  workflows = [
    {
      id = "fedavg_ctl",
      name = "FedAvg",
      args { num_clients = 2, num_rounds = 3, persistor_id = "persistor" }
    }
  ]
  components = [
    { id = "persistor", path = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
      args.model.path = "{model_class_path}" }
    { id = "model_selector", path = "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
      args.key_metric = "accuracy" }
    { id = "receiver", path = "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
      args.events = ["fed.analytix_log_stats"] }
  ]
}
"""


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flares_fedavg_model_controller_runs_the_client_api_job(tmp_path: Path) -> None:
    import torch
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = copy_example(tmp_path)
    (job / "app" / "config" / "config_fed_server.conf").write_text(MODEL_CONTROLLER_SERVER)
    assert errors_of(job) == []
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "workflow fedavg_ctl (FedAvg) started" in proc.stdout
    assert "round 3/3: results from site-1, site-2" in proc.stdout
    run = ws / "server" / "simulate_job"
    for site_name in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site_name), size_guidance={"scalars": 0})
        acc.Reload()
        assert len(acc.Scalars("train_loss")) == 3 * 2 * 23
        accuracy = [e.value for e in acc.Scalars("global_model_accuracy")]
        assert accuracy[-1] > accuracy[0] + 0.3  # the averaged DIFFs trained the global model
    assert "classifier.weight" in torch.load(run / "best_FL_global_model.pt", weights_only=True)["model"]
    assert "new best global model at round 2" in (run / "log.txt").read_text()


LAUNCHER_CLIENT = """{
  # FLARE 2.5's sag_pt template: the script in a process of its own
  format_version = 2
  app_script = "train.py"
  app_config = "--epochs 2 --batch-size 32"
  executors = [
    {
      tasks = ["train"]
      executor {
        path = "nvflare.app_opt.pt.client_api_launcher_executor.PTClientAPILauncherExecutor"
        args {
          launcher_id = "launcher"
          pipe_id = "pipe"
          heartbeat_timeout = 60
          params_exchange_format = "pytorch"
          params_transfer_type = "DIFF"
          train_with_evaluation = true
        }
      }
    }
  ]
  task_data_filters = []
  task_result_filters = []
  components = [
    {
      id = "launcher"
      path = "nvflare.app_common.launchers.subprocess_launcher.SubprocessLauncher"
      args {
        script = "python3 -u custom/{app_script}  {app_config} "
        launch_once = true
      }
    }
    {
      id = "pipe"
      path = "nvflare.fuel.utils.pipe.cell_pipe.CellPipe"
      args {
        mode = "PASSIVE"
        site_name = "{SITE_NAME}"
        token = "{JOB_ID}"
        root_url = "{ROOT_URL}"
        secure_mode = "{SECURE_MODE}"
        workspace_dir = "{WORKSPACE}"
      }
    }
    {
      id = "metrics_pipe"
      path = "nvflare.fuel.utils.pipe.cell_pipe.CellPipe"
      args {
        mode = "PASSIVE"
        site_name = "{SITE_NAME}"
        token = "{JOB_ID}"
        root_url = "{ROOT_URL}"
        secure_mode = "{SECURE_MODE}"
        workspace_dir = "{WORKSPACE}"
      }
    },
    {
      id = "metric_relay"
      path = "nvflare.app_common.widgets.metric_relay.MetricRelay"
      args {
        pipe_id = "metrics_pipe"
        event_type = "fed.analytix_log_stats"
        read_interval = 0.1
      }
    },
    {
      id = "config_preparer"
      path = "nvflare.app_common.widgets.external_configurator.ExternalConfigurator"
      args {
        component_ids = ["metric_relay"]
      }
    }
  ]
}
"""


def as_launcher_job(tmp_path: Path, script: str | None = None) -> Path:
    job = copy_example(tmp_path)
    text = LAUNCHER_CLIENT if script is None else LAUNCHER_CLIENT.replace(
        'script = "python3 -u custom/{app_script}  {app_config} "', f"script = {json.dumps(script)}")
    (job / "app" / "config" / "config_fed_client.conf").write_text(text)
    return job


@pytest.mark.parametrize(("script", "code", "message"), [
    ("bash -c 'rm -rf ~'", "not-supported", "the command runs 'bash': flconfig runs only a Python script"),
    ("python3 -c 'import os'", "not-supported", "the command passes '-c' to Python: not supported"),
    ("python3 -u custom/trian.py", "script-not-found", "the command's script 'custom/trian.py' is not a file"),
    ("python3 ../../etc/passwd.py", "script-not-found", "is not a file of the app's custom/ folder"),
])
def test_a_launch_command_may_only_run_a_python_script_of_custom(tmp_path: Path, script: str, code: str,
                                                                   message: str) -> None:
    _, problems = inspect_job(as_launcher_job(tmp_path, script), environ={})
    [problem] = [p for p in problems if p.is_error]
    assert problem.code == code and message in problem.message, problem
    assert problem.position.line == 29  # the launcher's script = ...


@pytest.mark.parametrize(("original", "written", "message"), [
    # an argument PTClientAPILauncherExecutor takes from ClientAPILauncherExecutor (**kwargs)
    ("heartbeat_timeout", "heartbeat_timout", "unknown argument 'heartbeat_timout' for "
                                              "PTClientAPILauncherExecutor — did you mean 'heartbeat_timeout'?"),
    # the one it restates with its own default
    ("params_exchange_format", "params_exchange_formt", "unknown argument 'params_exchange_formt' for "
                                                        "PTClientAPILauncherExecutor — did you mean "
                                                        "'params_exchange_format'?"),
])
def test_a_misspelt_argument_of_the_pt_launcher_executor_is_placed_and_corrected(
        tmp_path: Path, original: str, written: str, message: str) -> None:
    job = as_launcher_job(tmp_path)
    config = job / "app" / "config" / "config_fed_client.conf"
    config.write_text(config.read_text().replace(f"{original} =", f"{written} ="))
    _, problems = inspect_job(job, environ={})
    [problem] = [p for p in problems if p.is_error]
    assert (problem.code, problem.message) == ("unknown-arg", message), problem
    row = next(n for n, line in enumerate(config.read_text().splitlines(), 1) if f"{written} =" in line)
    assert (problem.position.file, problem.position.line, problem.position.column) == (str(config), row, 11)


def test_the_pt_launcher_executor_takes_its_base_s_arguments_in_their_order() -> None:
    executor = PTClientAPILauncherExecutor("pipe", "launcher", 30.0, heartbeat_timeout=5.0)
    assert (executor.pipe_id, executor.launcher_id, executor.launch_timeout) == ("pipe", "launcher", 30.0)
    assert executor.heartbeat_timeout == 5.0 and executor.params_exchange_format == "pytorch"
    assert PTClientAPILauncherExecutor("p", params_exchange_format="numpy").params_exchange_format == "numpy"


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_the_flare_launcher_job_runs_the_script_in_its_own_process(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    job = as_launcher_job(tmp_path)
    assert errors_of(job) == []
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=220)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round 3/3: results from site-1, site-2" in proc.stdout
    run = ws / "server" / "simulate_job"
    for site_name in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site_name), size_guidance={"scalars": 0})
        acc.Reload()
        assert [e.step for e in acc.Scalars("train_loss")] == list(range(3 * 2 * 23))  # none lost
        accuracy = [e.value for e in acc.Scalars("global_model_accuracy")]
        assert accuracy[-1] > accuracy[0] + 0.3
        log = (ws / site_name / "simulate_job" / "log.txt").read_text()
        assert f"[round 2, {site_name}] training on" in log  # the child's output, in its site's log
    assert (run / "best_FL_global_model.pt").is_file()


def test_a_script_process_that_fails_fails_its_task_with_its_last_words(tmp_path: Path) -> None:
    script = """
    import nvflare.client as flare

    flare.init()
    while flare.is_running():
        model = flare.receive()
        raise ZeroDivisionError("the script's own bug")
    """
    executor = ClientAPIExecutor("external_process", command="python3 -u custom/src/train.py")
    ctx, _ = site(tmp_path, script, executor)
    try:
        result = executor.execute("train", task(0, w=[1.0]), ctx, Signal())
    finally:
        ctx.fire_event(EventType.END_RUN)
    assert result.rc == ReturnCode.EXECUTION_EXCEPTION
    assert result.meta["error"] == ("the training script train.py exited with code 1: "
                                    "ZeroDivisionError: the script's own bug")


# FLARE's pt_client_api_basic shape: a script started afresh for every task (launch_once false)
# that takes one model, sends one result and ends. This one lingers after its result until the
# script of its site's next task has started (as a script saving checkpoints or flushing logs
# on its way out may take as long as it likes): a task must go to the script started for it,
# whatever the one before is still doing. The wait is on a file the next script writes; 60 s
# is only a hang guard for a site that never starts its next script.
PER_TASK_SCRIPT = """
import os
import time

import nvflare.client as flare
from nvflare.client.cell.api import CellClientAPI

# as FLARE's pt_large_model_pass_through job does: wrap a hook of the process's Client API
hook = CellClientAPI._install_site_auth_headers
CellClientAPI._install_site_auth_headers = lambda self, *args, **kwargs: hook(self, *args, **kwargs)

flare.init()
model = flare.receive()
current, total = model.current_round, model.total_rounds
open(f"started-{current}", "w").close()
print(f"process {os.getpid()} took round {current}")
flare.send(flare.FLModel(params={k: v + 1 for k, v in model.params.items()}, metrics={"accuracy": 0.5},
                         meta={"NUM_STEPS_CURRENT_ROUND": 1}))
if LOOP:
    while flare.is_running():  # FLARE: a per-task script's session ends with its task
        raise RuntimeError("a per-task script was given a second task")
if current + 1 < total:
    deadline = time.monotonic() + 60
    while not os.path.exists(f"started-{current + 1}") and time.monotonic() < deadline:
        time.sleep(0.05)
print(f"process {os.getpid()} ends after round {current}")
"""


def per_task_job(tmp_path: Path, loop: bool, rounds: int) -> Path:
    from harness.numpy_job import write_job

    job = write_job(tmp_path)
    config = job / "app" / "config"
    custom = job / "app" / "custom"
    custom.mkdir()
    (custom / "train.py").write_text(PER_TASK_SCRIPT.replace("LOOP", str(loop)))
    server = json.loads((config / "config_fed_server.json").read_text())
    server["workflows"] = server["workflows"][:1]
    server["workflows"][0]["args"]["num_rounds"] = rounds
    server["components"][2]["args"]["expected_data_kind"] = "WEIGHT_DIFF"
    (config / "config_fed_server.json").write_text(json.dumps(server, indent=1))
    client = {"format_version": 2, "executors": [{"tasks": ["train"], "executor": {
        "path": "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor",
        "args": {"execution_mode": "external_process", "command": "python3 -u custom/train.py",
                 "launch_once": False, "params_exchange_format": "numpy", "params_transfer_type": "DIFF",
                 "train_with_evaluation": True}}}],
        "task_data_filters": [], "task_result_filters": [], "components": []}
    (config / "config_fed_client.json").write_text(json.dumps(client, indent=1))
    return job


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("loop", [False, True], ids=["one model then exit", "loops while is_running"])
def test_launch_once_false_gives_each_task_to_the_script_started_for_it(tmp_path: Path, loop: bool) -> None:
    rounds = 8
    job = per_task_job(tmp_path, loop, rounds)
    assert errors_of(job) == []
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=380)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert f"round {rounds}/{rounds}: results from site-1, site-2" in proc.stdout
    for site_name in ("site-1", "site-2"):
        log = (ws / site_name / "simulate_job" / "log.txt").read_text()
        took = [line.split("process ")[1].split() for line in log.splitlines() if " took round " in line]
        assert [int(words[-1]) for words in took] == list(range(rounds))
        assert len({words[0] for words in took}) == rounds  # a process of its own for every task
        # every script ended, each after the next one had started (the last: at once)
        assert sum(" ends after round " in line for line in log.splitlines()) == rounds
    # FLARE's hello-numpy model, +1 per round from both sites (DIFF results)
    final = np.load(ws / "server" / "simulate_job" / "models" / "server.npy")
    np.testing.assert_array_equal(final, np.arange(1, 10, dtype=np.float32).reshape(3, 3) + rounds)


def test_a_connection_without_the_token_is_refused(tmp_path: Path) -> None:
    import socket

    from flconfig.common.framing import ChannelClosed, read_frame, send_frame
    from flconfig.compat.client_session import ClientAPISession
    from flconfig.compat.remote import Bridge

    closed: list[str] = []
    session = ClientAPISession("site-1", "job", {}, lambda *a, **k: None, lambda a, b: {})
    bridge = Bridge(session, closed.append)
    bridge.start("test-bridge")
    try:
        with socket.create_connection(bridge.address[:2]) as sock:
            send_frame(sock, {"token": "0" * 64})
            sock.settimeout(5)
            with pytest.raises((ChannelClosed, OSError)):  # closed unanswered
                read_frame(sock)
    finally:
        bridge.close()
    assert closed == ["a connection without the job's token was refused"]


def test_an_external_process_job_without_a_receiver_is_fine(tmp_path: Path) -> None:
    # FLARE 2.9's jobs often track nothing: the script's records (if any) then go nowhere.
    job = as_flare_2_9(tmp_path, external=True)
    server = job / "app" / "config" / "config_fed_server.conf"
    text = server.read_text()
    start = text.index("    {\n      id = \"receiver\"")
    server.write_text(text[:start].rstrip().rstrip(",") + "\n  ]\n}\n")
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []


def test_job_code_in_flconfigs_runtime_gets_flconfigs_api_even_with_flare_installed(tmp_path: Path) -> None:
    # A package named nvflare on the path stands for an installed FLARE (tests/compat/test_job_api.py
    # runs jobs beside FLARE's real wheel). Job code imported by flconfig's runtime talks to
    # flconfig's sites, so its 'import nvflare' is flconfig's FLARE API; any other program
    # still gets FLARE's own package.
    site_packages = tmp_path / "site-packages"
    (site_packages / "nvflare").mkdir(parents=True)
    (site_packages / "nvflare" / "__init__.py").write_text("REAL = True\n")
    custom = tmp_path / "custom"
    custom.mkdir()
    (custom / "job_code.py").write_text("import nvflare\n\n\nclass Thing:\n    served = nvflare.FLCONFIG_COMPAT\n")
    code = textwrap.dedent(f"""
        import sys
        sys.path.insert(0, {str(site_packages)!r})
        from flconfig.common.loader import import_class
        from flconfig.runtime.build import prepare_job_code
        cls = import_class("job_code.Thing", "job_code", "Thing", "custom", {str(custom / "job_code.py")!r},
                           [{str(custom)!r}], prepare_job_code=prepare_job_code)
        print("served:", cls.served)
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "served: True\n"
    plain = subprocess.run([sys.executable, "-c", "import flconfig.compat, nvflare; print(nvflare.REAL)"],
                           capture_output=True, text=True, timeout=60,
                           env={**os.environ, "PYTHONPATH": str(site_packages)})
    assert plain.stdout == "True\n", plain.stderr
