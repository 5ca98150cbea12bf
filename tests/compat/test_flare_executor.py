"""An Executor written against FLARE's API (``nvflare.apis.executor``) runs unchanged, and its
``send_analytic_dxo`` records reach the server's TensorBoard."""

from __future__ import annotations

import json
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch

from flconfig.validate.loader import inspect_job

# The job's own code, as FLARE's tb_streaming integration app writes its CustomExecutor.
EXECUTOR = '''
from nvflare.apis.analytix import AnalyticsDataType
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.event_type import EventType
from nvflare.apis.executor import Executor
from nvflare.apis.fl_constant import FLContextKey, ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.apis.utils.analytix_utils import create_analytic_dxo, send_analytic_dxo


class CustomExecutor(Executor):
    def __init__(self, task_name: str = "poc", delta: float = 1.0):
        super().__init__()
        self.task_name = task_name
        self.delta = delta

    def handle_event(self, event_type: str, fl_ctx: FLContext):
        if event_type == EventType.START_RUN:
            self.log_info(fl_ctx, f"started on {fl_ctx.get_identity_name()}")

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        if task_name != self.task_name:
            return make_reply(ReturnCode.TASK_UNKNOWN)
        peer_ctx = fl_ctx.get_prop(FLContextKey.PEER_CONTEXT)
        r = peer_ctx.get_prop("current_round")
        dxo = from_shareable(shareable)
        weights = {k: v + self.delta for k, v in dxo.data.items()}
        number = float(weights["numpy_key"].sum())
        send_analytic_dxo(self, create_analytic_dxo(tag="weight_sum", value=number,
                                                    data_type=AnalyticsDataType.SCALAR, global_step=r), fl_ctx)
        send_analytic_dxo(self, create_analytic_dxo(tag="debug_msg", value=f"round {r}",
                                                    data_type=AnalyticsDataType.TEXT, global_step=r), fl_ctx)
        return DXO(data_kind=DataKind.WEIGHTS, data=weights, meta={"NUM_STEPS_CURRENT_ROUND": 1}).to_shareable()
'''

SERVER = {
    "format_version": 2,
    "components": [
        {"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor", "args": {}},
        {"id": "shareable_generator",
         "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator"},
        {"id": "aggregator",
         "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator",
         "args": {"expected_data_kind": "WEIGHTS"}},
        {"id": "tb_analytics_receive", "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
         "args": {"events": ["fed.analytix_log_stats"]}},
    ],
    "workflows": [{"id": "sag", "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                   "args": {"min_clients": 2, "num_rounds": 3, "train_task_name": "poc", "persistor_id": "persistor",
                            "wait_time_after_min_received": 0}}],
}
CLIENT = {
    "format_version": 2,
    "executors": [{"tasks": ["poc"], "executor": {"id": "Executor", "path": "custom_executor.CustomExecutor",
                                                   "args": {}}}],
    "components": [{"id": "event_to_fed", "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
                    "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}}],
}


def write_job(root: Path) -> Path:
    app = root / "job" / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (app / "custom" / "custom_executor.py").write_text(textwrap.dedent(EXECUTOR))
    (app / "config" / "config_fed_server.json").write_text(json.dumps(SERVER, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(CLIENT, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "custom-executor", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"


def test_a_flare_executor_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


def test_a_flare_executor_runs_on_shareables_and_a_bad_record_fails_at_the_call(tmp_path: Path) -> None:
    from flconfig import compat
    from flconfig.compat.learner_adapter import flare_executor
    from flconfig.runtime.context import SiteContext
    from flconfig.types import FLModel, ReturnCode, Signal

    compat.install()
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "custom_executor_unit.py").write_text(textwrap.dedent(EXECUTOR))
        from custom_executor_unit import CustomExecutor  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    fired: list[object] = []

    class Recorder:
        def handle_event(self, event: object, ctx: object) -> None:
            fired.append(event)

    raw = CustomExecutor(delta=2.0)
    ctx = SiteContext("site-1", "job1", tmp_path / "ws", {"Executor": raw}, [Recorder()])
    executor = flare_executor(raw)
    result = executor.execute("poc", FLModel(params={"numpy_key": np.ones(3)}, meta={"current_round": 4}),
                              ctx, Signal())
    assert result.rc == ReturnCode.OK and result.params_type == "FULL"
    np.testing.assert_array_equal(result.params["numpy_key"], [3.0, 3.0, 3.0])
    assert result.meta == {"NUM_STEPS_CURRENT_ROUND": 1}
    records = [r for e in fired if getattr(e, "type", None) == "analytix_log_stats" for r in e.data]
    assert [(r["tag"], r["value"], r["step"]) for r in records] == [("weight_sum", 9.0, 4), ("debug_msg", "round 4", 4)]
    assert executor.execute("train", FLModel(), ctx, Signal()).rc == ReturnCode.TASK_UNKNOWN
    from flconfig.compat.nvflare.apis.analytix import AnalyticsDataType
    from flconfig.compat.nvflare.apis.utils.analytix_utils import (
        create_analytic_dxo,
        send_analytic_dxo,
    )
    from flconfig.compat.shareables import flare_context

    bad = create_analytic_dxo("loss", "low", AnalyticsDataType.SCALAR)
    with pytest.raises((TypeError, ValueError), match="loss"):  # a value that is no number fails at the call
        send_analytic_dxo(raw, bad, flare_context(ctx))


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_flare_executor_job_runs_and_its_records_reach_the_servers_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    default = np.arange(1, 10, dtype=np.float32).reshape(3, 3)
    np.testing.assert_array_equal(np.load(run / "models" / "server.npy"), default + 3)
    for site in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site), size_guidance={"scalars": 0, "tensors": 0})
        acc.Reload()
        assert [(e.step, e.value) for e in acc.Scalars("weight_sum")] == [(0, 54.0), (1, 63.0), (2, 72.0)]
        assert [t.step for t in acc.Tensors("debug_msg/text_summary")] == [0, 1, 2]
        assert f"CustomExecutor: started on {site}" in (ws / site / "simulate_job" / "log.txt").read_text()
