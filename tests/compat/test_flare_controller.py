"""A workflow written on FLARE's older Controller API (Tasks, ``broadcast_and_wait``, task
callbacks, the engine's components) runs unchanged, with flconfig's built-in persistor and
shareable generator behind FLARE's interfaces, as FLARE's tb_streaming test app writes it."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch

from flconfig.validate.loader import inspect_job

CONTROLLER = '''
from nvflare.apis.client import Client
from nvflare.apis.controller_spec import ClientTask, Task
from nvflare.apis.fl_context import FLContext
from nvflare.apis.impl.controller import Controller
from nvflare.apis.shareable import Shareable
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.learnable_persistor import LearnablePersistor
from nvflare.app_common.abstract.shareable_generator import ShareableGenerator
from nvflare.app_common.app_constant import AppConstants


def _prepare(client_task: ClientTask, fl_ctx: FLContext):
    fl_ctx.set_prop("current_round", client_task.task.props["round"], private=False)
    fl_ctx.set_prop("total_rounds", client_task.task.props["total"], private=False)


def _take_result(client_task: ClientTask, fl_ctx: FLContext):
    client_task.task.data = client_task.result


class RoundsController(Controller):
    def __init__(self, min_clients: int, num_rounds: int, persistor_id="persistor",
                 shareable_generator_id="shareable_generator"):
        Controller.__init__(self)
        self.persistor_id = persistor_id
        self.shareable_generator_id = shareable_generator_id
        self._min_clients = min_clients
        self._num_rounds = num_rounds

    def start_controller(self, fl_ctx: FLContext):
        if self._num_rounds > 10:
            self.system_panic(f"{self._num_rounds} rounds is too many for this test", fl_ctx)
            return
        self.shareable_gen = self._engine.get_component(self.shareable_generator_id)
        if not isinstance(self.shareable_gen, ShareableGenerator):
            self.system_panic("shareable_gen should be an instance of ShareableGenerator.", fl_ctx)
        self.persistor = self._engine.get_component(self.persistor_id)
        if not isinstance(self.persistor, LearnablePersistor):
            self.system_panic("persistor should be an instance of LearnablePersistor.", fl_ctx)
        self._global_model = self.persistor.load(fl_ctx)
        fl_ctx.set_prop(AppConstants.GLOBAL_MODEL, self._global_model, private=True, sticky=True)

    def process_result_of_unknown_task(self, client: Client, task_name: str, client_task_id: str,
                                       result: Shareable, fl_ctx: FLContext):
        return None

    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext):
        # a sticky property set in start_controller's context is in this one (FLARE's engine)
        self.log_info(fl_ctx, f"global model carried: {fl_ctx.get_prop(AppConstants.GLOBAL_MODEL) is not None}")
        for r in range(self._num_rounds):
            task = Task(name="poc", data=self.shareable_gen.learnable_to_shareable(self._global_model, fl_ctx),
                        props={"round": r, "total": self._num_rounds}, timeout=0,
                        before_task_sent_cb=_prepare, result_received_cb=_take_result)
            names = sorted(c.name for c in self._engine.get_clients())
            self.log_info(fl_ctx, f"round {r} to {names}")
            self.broadcast_and_wait(task=task, fl_ctx=fl_ctx, targets=None, min_responses=self._min_clients,
                                    abort_signal=abort_signal)
            self._global_model = self.shareable_gen.shareable_to_learnable(task.data, fl_ctx)
            fl_ctx.set_prop(AppConstants.GLOBAL_MODEL, self._global_model, private=True, sticky=True)
            self.persistor.save(self._global_model, fl_ctx)

    def stop_controller(self, fl_ctx: FLContext):
        self.log_info(fl_ctx, "stopped")
'''

EXECUTOR = '''
from nvflare.apis.analytix import AnalyticsDataType
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import FLContextKey
from nvflare.apis.utils.analytix_utils import create_analytic_dxo, send_analytic_dxo


class PeerExecutor(Executor):
    def execute(self, task_name, shareable, fl_ctx, abort_signal):
        peer_ctx = fl_ctx.get_prop(FLContextKey.PEER_CONTEXT)
        r, total = peer_ctx.get_prop("current_round"), peer_ctx.get_prop("total_rounds")
        send_analytic_dxo(self, create_analytic_dxo(tag="progress", value=(r + 1) / total,
                                                    data_type=AnalyticsDataType.SCALAR, global_step=r), fl_ctx)
        weights = {k: v + 1 for k, v in from_shareable(shareable).data.items()}
        return DXO(DataKind.WEIGHTS, data=weights).to_shareable()
'''


def write_job(root: Path, server_args: dict | None = None) -> Path:
    app = root / "job" / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (app / "custom" / "rounds_controller.py").write_text(textwrap.dedent(CONTROLLER))
    (app / "custom" / "peer_executor.py").write_text(textwrap.dedent(EXECUTOR))
    server = {"format_version": 2, "components": [
        {"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor", "args": {}},
        {"id": "shareable_generator",
         "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator"},
        {"id": "tb", "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
         "args": {"events": ["fed.analytix_log_stats"]}}],
        "workflows": [{"id": "rounds", "path": "rounds_controller.RoundsController",
                       "args": {"min_clients": 2, "num_rounds": 2, **(server_args or {})}}]}
    client = {"format_version": 2,
              "executors": [{"tasks": ["poc"], "executor": {"path": "peer_executor.PeerExecutor"}}],
              "components": [{"id": "to_fed", "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
                              "args": {"events_to_convert": ["analytix_log_stats"]}}]}
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "controller", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"



def test_a_flare_controller_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_flare_controller_runs_with_the_built_in_persistor_and_generator(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    default = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), default + 2)  # +1 a round
    log = (run / "log.txt").read_text()
    assert "RoundsController: round 1 to ['site-1', 'site-2']" in log and "RoundsController: stopped" in log
    assert "RoundsController: global model carried: True" in log
    for site in ("site-1", "site-2"):  # the public props the callback set reached the sites
        acc = EventAccumulator(str(run / "tb_events" / site), size_guidance={"scalars": 0})
        acc.Reload()
        assert [(e.step, e.value) for e in acc.Scalars("progress")] == [(0, 0.5), (1, 1.0)]


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_system_panic_in_a_flare_controller_fails_the_job_with_its_reason(tmp_path: Path) -> None:
    proc = launch(write_job(tmp_path, {"num_rounds": 11}), tmp_path / "ws")
    assert proc.returncode != 0
    assert "11 rounds is too many for this test" in proc.stdout
    assert "Traceback" not in proc.stdout


def test_a_persistor_id_naming_another_kind_is_refused_before_anything_starts(tmp_path: Path) -> None:
    # FLARE finds it when the workflow's isinstance check panics; flconfig at the config's line
    _, problems = inspect_job(write_job(tmp_path, {"persistor_id": "shareable_generator"}), environ={})
    [problem] = [p for p in problems if p.severity == "error"]
    assert "persistor_id" in problem.message and "config_fed_server.json" in str(problem.position)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_flares_event_recorders_count_every_event_of_their_site(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    for name, cls in (("server", "ServerEventRecorder"), ("client", "ClientEventRecorder")):
        file = job / "app" / "config" / f"config_fed_{name}.json"
        config = json.loads(file.read_text())
        config["components"].append({"id": "event_recorder",
                                     "path": f"nvflare.app_common.widgets.event_recorder.{cls}", "args": {}})
        file.write_text(json.dumps(config))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    server = dict(line.split(": ") for line in
                  (ws / "server" / "simulate_job" / "event_recorded.txt").read_text().splitlines())
    assert server["_start_run"] == "1" and server["_end_run"] == "1"
    site = dict(line.split(": ") for line in
                (ws / "site-1" / "simulate_job" / "event_recorded.txt").read_text().splitlines())
    assert site["_before_task_execution"] == "2"  # two rounds of the poc task
