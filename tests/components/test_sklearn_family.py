"""FLARE's scikit-learn components: a learner and an assembler written against FLARE's API
(as FLARE's sklearn-kmeans example writes them) run unchanged."""

from __future__ import annotations

import json
import pickle
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest
from harness.launching import launch

from flconfig.components.sklearn_family import (
    CollectAndAssembleAggregator,
    JoblibModelParamPersistor,
)
from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext
from flconfig.transport.codec import decode_model
from flconfig.types import FLModel, ReturnCode
from flconfig.validate.loader import inspect_job

# The job's own code, written against FLARE's API as FLARE's scikit-learn examples are: a
# learner whose model is the mean of its rows and an assembler averaging by counts.
LEARNER = '''
import numpy as np

from nvflare.apis.fl_context import FLContext
from nvflare.app_common.abstract.learner_spec import Learner
from nvflare.app_opt.sklearn.data_loader import load_data_for_range


class MeanLearner(Learner):
    def __init__(self, data_path: str, train_start: int, train_end: int):
        super().__init__()
        self.data_path = data_path
        self.train_start = train_start
        self.train_end = train_end
        self.n_samples = None

    def initialize(self, parts: dict, fl_ctx: FLContext):
        self.x, self.y, self.n_samples = load_data_for_range(self.data_path, self.train_start, self.train_end)
        self.log_info(fl_ctx, f"loaded {self.n_samples} rows")

    def train(self, curr_round: int, global_param, fl_ctx: FLContext):
        if curr_round == 0:
            # the first round gets the persistor's settings; nothing counted yet
            assert global_param == {"n_features": 2}, global_param
            return {"center": self.x.mean(axis=0), "count": None}, None
        return {"center": self.x.mean(axis=0), "count": self.n_samples}, None

    def validate(self, curr_round: int, global_param, fl_ctx: FLContext):
        distance = float(np.linalg.norm(self.x.mean(axis=0) - global_param["center"]))
        return {"distance": distance}, None
'''
ASSEMBLER = '''
import numpy as np

from nvflare.apis.dxo import DXO, DataKind
from nvflare.apis.fl_context import FLContext
from nvflare.app_common.aggregators.assembler import Assembler
from nvflare.app_common.app_constant import AppConstants


class MeanAssembler(Assembler):
    def __init__(self):
        super().__init__(data_kind=DataKind.WEIGHTS)

    def get_model_params(self, dxo: DXO):
        return {"center": dxo.data["center"], "count": dxo.data["count"]}

    def assemble(self, data, fl_ctx: FLContext) -> DXO:
        counts = [1 if r["count"] is None else r["count"] for r in data.values()]
        center = sum(r["center"] * c for r, c in zip(data.values(), counts)) / sum(counts)
        self.log_info(fl_ctx, f"round {fl_ctx.get_prop(AppConstants.CURRENT_ROUND)}: {sorted(data)}")
        return DXO(data_kind=self.expected_data_kind, data={"center": center})
'''


def server_config(num_rounds: int = 3) -> dict:
    return {
        "format_version": 2,
        "components": [
            {"id": "persistor", "path": "nvflare.app_opt.sklearn.joblib_model_param_persistor.JoblibModelParamPersistor",
             "args": {"initial_params": {"n_features": 2}}},
            {"id": "shareable_generator", "name": "FullModelShareableGenerator", "args": {}},
            {"id": "aggregator",
             "path": "nvflare.app_common.aggregators.collect_and_assemble_aggregator.CollectAndAssembleAggregator",
             "args": {"assembler_id": "mean_assembler"}},
            {"id": "mean_assembler", "path": "mean_assembler.MeanAssembler", "args": {}},
            {"id": "receiver", "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
             "args": {"events": ["fed.analytix_log_stats"]}},
        ],
        "workflows": [{"id": "scatter_and_gather", "name": "ScatterAndGather", "args": {
            "min_clients": 2, "num_rounds": num_rounds, "start_round": 0, "wait_time_after_min_received": 0,
            "aggregator_id": "aggregator", "persistor_id": "persistor",
            "shareable_generator_id": "shareable_generator", "train_task_name": "train", "train_timeout": 0}}],
    }


def client_config(data_path: str) -> dict:
    return {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {
            "id": "Executor", "path": "nvflare.app_opt.sklearn.sklearn_executor.SKLearnExecutor",
            "args": {"learner_id": "mean_learner"}}}],
        "components": [
            {"id": "mean_learner", "path": "mean_learner.MeanLearner",
             "args": {"data_path": data_path, "train_start": 0, "train_end": 8}},
            {"id": "analytic_sender", "path": "nvflare.app_common.widgets.streaming.AnalyticsSender", "args": {}},
            {"id": "event_to_fed", "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
             "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}},
        ],
    }


def write_data(path: Path) -> np.ndarray:
    """A label column and two features, a header row first (FLARE's loader reads it as one)."""
    rows = np.column_stack([np.arange(10) % 2, np.arange(10, dtype=float), np.arange(10, dtype=float) * 2])
    path.write_text("label,a,b\n" + "\n".join(",".join(str(v) for v in row) for row in rows) + "\n")
    return rows


def write_job(root: Path, num_rounds: int = 3) -> Path:
    data = root / "data.csv"
    write_data(data)
    app = root / "job" / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    (app / "custom" / "mean_learner.py").write_text(textwrap.dedent(LEARNER))
    (app / "custom" / "mean_assembler.py").write_text(textwrap.dedent(ASSEMBLER))
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server_config(num_rounds), indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client_config(str(data)), indent=2))
    (root / "job" / "meta.json").write_text(json.dumps({"name": "sklearn_mean", "min_clients": 2,
                                                        "deploy_map": {"app": ["@ALL"]}}))
    return root / "job"


def test_flares_data_loader_reads_a_range_after_the_header_row(tmp_path: Path) -> None:
    from flconfig.compat.nvflare.app_opt.sklearn.data_loader import load_data, load_data_for_range

    rows = write_data(tmp_path / "data.csv")
    x, y, n = load_data_for_range(str(tmp_path / "data.csv"), 2, 5)
    assert n == 3
    np.testing.assert_array_equal(x, rows[2:5, 1:])
    np.testing.assert_array_equal(y, rows[2:5, 0])
    assert load_data(str(tmp_path / "data.csv"))[2] == 10
    with pytest.raises(ValueError, match="no pandas reader for given file format txt"):
        load_data(str(tmp_path / "data.txt"))


def test_the_persistor_starts_from_initial_params_and_never_unpickles(tmp_path: Path) -> None:
    ctx = SiteContext("server", "job1", tmp_path, {}, [], role="server")
    persistor = JoblibModelParamPersistor(initial_params={"n_clusters": 3})
    assert persistor.load(ctx).params == {"n_clusters": 3}
    persistor.save(FLModel(params={"center": np.ones((3, 2)), "count": None}), ctx)
    saved = decode_model((ctx.run_dir / "model_param.joblib").read_bytes())
    assert saved.params["count"] is None
    assert persistor.model_names(ctx) == ["model_param.joblib"]
    np.testing.assert_array_equal(persistor.load(ctx).params["center"], np.ones((3, 2)))
    (ctx.run_dir / "model_param.joblib").write_bytes(pickle.dumps({"center": 1}))
    with pytest.raises(JobError, match="is not a model flconfig saved .* never unpickled"):
        persistor.load(ctx)


def test_the_aggregator_refuses_failed_wrong_kind_and_repeated_results(tmp_path: Path) -> None:
    from flconfig import compat

    compat.install()  # import nvflare... as a site serves it to the job's code
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "mean_assembler_unit.py").write_text(textwrap.dedent(ASSEMBLER))
        from mean_assembler_unit import MeanAssembler  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    ctx = SiteContext("server", "job1", tmp_path, {"asm": MeanAssembler()}, [], role="server")
    ctx.props["current_round"] = 1
    agg = CollectAndAssembleAggregator(assembler_id="asm")
    one = FLModel(params={"center": np.array([0.0, 2.0]), "count": 1})
    three = FLModel(params={"center": np.array([4.0, 6.0]), "count": 3})
    assert agg.accept("site-1", one, ctx)
    assert not agg.accept("site-1", three, ctx)  # a second result from the same site
    assert not agg.accept("site-2", FLModel(params=three.params, params_type="DIFF"), ctx)
    assert not agg.accept("site-2", FLModel.error(ReturnCode.EXECUTION_EXCEPTION), ctx)
    assert agg.accept("site-2", three, ctx)
    result = agg.aggregate(ctx)
    np.testing.assert_array_equal(result.params["center"], [3.0, 5.0])
    assert result.meta["contributors"] == ["site-1", "site-2"]
    with pytest.raises(JobError, match="no result was accepted"):
        agg.aggregate(ctx)  # the assembler was reset
    with pytest.raises(JobError, match="assembler_id 'nope' names no component"):
        CollectAndAssembleAggregator(assembler_id="nope").accept("site-1", one, ctx)


def test_a_flare_sklearn_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(write_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_a_flare_sklearn_job_runs_its_metrics_reach_the_servers_tensorboard(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    ws = tmp_path / "ws"
    proc = launch(write_job(tmp_path), ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    # rows 0..7 after the header: features (i, 2i), mean (3.5, 7); every round assembles the same
    model = decode_model((run / "model_param.joblib").read_bytes())
    np.testing.assert_allclose(model.params["center"], [3.5, 7.0])
    for site in ("site-1", "site-2"):
        acc = EventAccumulator(str(run / "tb_events" / site), size_guidance={"scalars": 0})
        acc.Reload()
        assert [(e.step, e.value) for e in acc.Scalars("distance")] == [(1, 0.0), (2, 0.0)]
        assert "MeanLearner: loaded 8 rows" in (ws / site / "simulate_job" / "log.txt").read_text()
    assert "MeanAssembler: round 2: ['site-1', 'site-2']" in (run / "log.txt").read_text()


def test_without_a_sender_the_metrics_go_to_the_sites_own_tensorboard_files(tmp_path: Path) -> None:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    from flconfig import compat
    from flconfig.components.sklearn_family import SKLearnExecutor
    from flconfig.types import Event, EventType, Signal

    compat.install()
    write_data(tmp_path / "data.csv")
    sys.path.insert(0, str(tmp_path))
    try:
        (tmp_path / "mean_learner_unit.py").write_text(textwrap.dedent(LEARNER))
        from mean_learner_unit import MeanLearner  # type: ignore[import-not-found]
    finally:
        sys.path.remove(str(tmp_path))
    learner = MeanLearner(data_path=str(tmp_path / "data.csv"), train_start=0, train_end=4)
    ctx = SiteContext("site-1", "job1", tmp_path / "ws", {"learner": learner}, [])
    executor = SKLearnExecutor(learner_id="learner")
    executor.handle_event(Event(EventType.START_RUN), ctx)
    first = executor.execute("train", FLModel(params={"n_features": 2}, meta={"current_round": 0}), ctx, Signal())
    assert first.params["count"] is None and first.meta == {"NUM_STEPS_CURRENT_ROUND": 4}
    center = {"center": np.array([0.0, 0.0])}
    second = executor.execute("train", FLModel(params=center, meta={"current_round": 1}), ctx, Signal())
    assert second.params["count"] == 4
    executor.handle_event(Event(EventType.END_RUN), ctx)
    acc = EventAccumulator(str(ctx.run_dir / "tb_events"))
    acc.Reload()
    [event] = acc.Tensors("distance")  # tensorboard's summary writer, as FLARE writes them
    assert event.step == 1 and float(event.tensor_proto.float_val[0]) == pytest.approx(np.hypot(1.5, 3.0))
    assert executor.execute("validate", FLModel(), ctx, Signal()).rc == ReturnCode.TASK_UNKNOWN
    broken = executor.execute("train", FLModel(params={}, meta={"current_round": 0}), ctx, Signal())
    assert broken.rc == ReturnCode.EXECUTION_EXCEPTION and "AssertionError" in broken.meta["error"]
