"""Server workflows end to end: ScatterAndGather rounds and CrossSiteModelEval over real gRPC.

The server is a real CommServer on 127.0.0.1; each site is a thread with its
own CommClient running a real LearnerExecutor on a real Learner (the
example's DigitsLearner, or a tiny learner whose arithmetic the tests can
check exactly). The persistor, locator, generator and JSON files are the real
ones, read back as a FLARE user reads them (``torch.load(weights_only=True)``) and
with json.
"""

from __future__ import annotations

import json
import os
import threading
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from flconfig.components.aggregators import InTimeAccumulateWeightedAggregator
from flconfig.components.base import AppEventType, Learner, Widget
from flconfig.components.cross_site_model_eval import CrossSiteModelEval
from flconfig.components.learner_executor import LearnerExecutor
from flconfig.components.model_locators import PTFileModelLocator
from flconfig.components.model_selection import IntimeModelSelector
from flconfig.components.persistors import PTFileModelPersistor
from flconfig.components.scatter_and_gather import ScatterAndGather
from flconfig.components.shareable_generators import FullModelShareableGenerator
from flconfig.components.validation_json import ValidationJsonGenerator
from flconfig.errors import JobError
from flconfig.examples.digits import DigitsLearner
from flconfig.examples.models import DigitsCNN
from flconfig.runtime.context import SiteContext
from flconfig.transport.client import END, CommClient
from flconfig.transport.server import CommServer
from flconfig.types import Event, EventType, FLModel, ReturnCode, Signal

pytestmark = pytest.mark.timeout(60)

TOKENS = {f"site-{i}": f"token-{i}" for i in range(1, 4)}


def load_checkpoint(path: Path) -> dict[str, Any]:
    """A global model file as a FLARE user reads it: ``torch.load(weights_only=True)``, which
    must find FLARE 2.9's checkpoint dict (state dict under ``model``, plain ``meta_props``)."""
    checkpoint = torch.load(path, weights_only=True)
    assert list(checkpoint)[:2] == ["model", "meta_props"]
    assert all(isinstance(v, torch.Tensor) for v in checkpoint["model"].values())
    return checkpoint


def load_file(path: str) -> dict[str, np.ndarray]:
    """The parameters of a global model file as numpy arrays."""
    return {name: value.numpy() for name, value in load_checkpoint(Path(path))["model"].items()}


# --------------------------------------------------------------------------- sites


class ShiftLearner(Learner):
    """Adds its site number to every parameter and reports that many steps.

    Validation scores a model by the mean of its ``weight``, so later
    (larger) global models validate better. ``hang`` makes ``train`` block
    until the event is set; ``fail`` makes it raise.
    """

    def __init__(self, hang: threading.Event | None = None, fail: bool = False) -> None:
        self.hang = hang
        self.fail = fail
        self.number = 0
        self.local: dict[str, np.ndarray] = {}
        self.task_meta: list[dict[str, Any]] = []

    def initialize(self, parts: Mapping[str, Any], ctx: Any) -> None:
        self.number = int(ctx.site_name.rsplit("-", 1)[1])

    def train(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        self.task_meta.append(dict(data.meta))
        if self.hang is not None:
            self.hang.wait(20)
        if self.fail:
            raise RuntimeError(f"disk full on {ctx.site_name}")
        self.local = {k: np.asarray(v) + np.float32(self.number) for k, v in data.params.items()}
        return FLModel(params=self.local, meta={"NUM_STEPS_CURRENT_ROUND": self.number})

    def validate(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        score = float(np.mean(data.params["weight"]))
        return FLModel(metrics={"accuracy": score}, meta={"initial_metrics": score})

    def get_model_for_validation(self, model_name: str, ctx: Any) -> FLModel:
        return FLModel(params=self.local)


class SiteThread(threading.Thread):
    """One client site: pulls tasks and answers them with a LearnerExecutor until told to stop."""

    def __init__(
        self, address: str, site: str, learner: Learner, workspace: Path, heartbeat_interval: float
    ) -> None:
        super().__init__(name=f"test-{site}", daemon=True)
        self.learner = learner
        self.client = CommClient(address, site, TOKENS[site], heartbeat_interval, retry_timeout=5)
        self.executor = LearnerExecutor("learner")
        self.ctx = SiteContext(
            site, "job", workspace, {"learner": learner}, [learner, self.executor]
        )
        self.tasks: list[str] = []
        self.stop = threading.Event()
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.client.connect(timeout=10)
            while not self.stop.is_set():
                task = self.client.get_task(timeout=0.2)
                if task is END:
                    break
                if task is None:
                    continue
                self.tasks.append(task.name)
                result = self.executor.execute(
                    task.name, task.data, self.ctx, self.ctx.abort_signal
                )
                if not self.stop.is_set():
                    self.client.submit_result(task, result)
        except BaseException as exc:  # reported by the fixture
            self.error = exc
        finally:
            self.ctx.fire_event(EventType.END_RUN)
            self.client.close(timeout=5)


@pytest.fixture
def server() -> Iterator[Callable[..., CommServer]]:
    servers: list[CommServer] = []

    def make(heartbeat_timeout: float = 10.0) -> CommServer:
        comm = CommServer(TOKENS, heartbeat_timeout=heartbeat_timeout).start()
        servers.append(comm)
        return comm

    yield make
    for comm in servers:
        comm.stop(grace=0.5)


@pytest.fixture
def sites(tmp_path: Path) -> Iterator[Callable[..., list[SiteThread]]]:
    started: list[SiteThread] = []
    releases: list[threading.Event] = []

    def start(
        comm: CommServer,
        learners: dict[str, Learner],
        heartbeat: dict[str, float] | None = None,
    ) -> list[SiteThread]:
        new = [
            SiteThread(comm.address, site, learner, tmp_path, (heartbeat or {}).get(site, 0.2))
            for site, learner in learners.items()
        ]
        for thread in new:
            if isinstance(thread.learner, ShiftLearner) and thread.learner.hang is not None:
                releases.append(thread.learner.hang)
            thread.start()
        started.extend(new)
        comm.wait_for_sites(len(learners), timeout=10)
        return new

    yield start
    for thread in started:
        thread.stop.set()
    for event in releases:
        event.set()
    for thread in started:
        thread.join(timeout=15)
    errors = [f"{t.client.site}: {t.error!r}" for t in started if t.error is not None]
    assert not errors, errors


class EventLog(Widget):
    """Records the events the server fires, and can trigger an abort on one of them."""

    def __init__(self) -> None:
        self.events: list[tuple[str, Any]] = []
        self.abort_on: tuple[str, int] | None = None
        self.abort: Signal | None = None

    def handle_event(self, event: Event, ctx: Any) -> None:
        self.events.append((event.type, event.data))
        if self.abort_on and self.abort is not None:
            kind, round_ = self.abort_on
            if event.type == kind and event.data["current_round"] == round_:
                self.abort.trigger("stopped by the test")

    def types(self) -> list[str]:
        return [t for t, _ in self.events]


def linear_model() -> nn.Module:
    torch.manual_seed(0)
    return nn.Linear(2, 1)


def server_parts(model: Any = None, **sag_args: Any) -> dict[str, Any]:
    """The example job's server components, built directly."""
    sag = {"min_clients": 2, "num_rounds": 2, "wait_time_after_min_received": 0, **sag_args}
    return {
        "persistor": PTFileModelPersistor(model=model if model is not None else linear_model()),
        "shareable_generator": FullModelShareableGenerator(),
        "aggregator": InTimeAccumulateWeightedAggregator(expected_data_kind="WEIGHTS"),
        "model_locator": PTFileModelLocator(pt_persistor_id="persistor"),
        "json_generator": ValidationJsonGenerator(results_dir="widget_out"),
        "events": EventLog(),
        "scatter_and_gather": ScatterAndGather(
            aggregator_id="aggregator",
            persistor_id="persistor",
            shareable_generator_id="shareable_generator",
            **sag,
        ),
        "cross_site_validate": CrossSiteModelEval(
            model_locator_id="model_locator", wait_for_clients_timeout=5
        ),
    }


def server_ctx(
    tmp_path: Path, parts: dict[str, Any], comm: CommServer | None, lines: list[str]
) -> SiteContext:
    for component_id, component in parts.items():
        component.id = component_id
    return SiteContext(
        "server", "job", tmp_path, parts, list(parts.values()),
        role="server", comm=comm, progress=lines.append,
    )  # fmt: skip


def run_workflow(workflow: Any, ctx: SiteContext, abort: Signal | None = None) -> None:
    workflow.start_controller(ctx)
    try:
        workflow.control_flow(abort or ctx.abort_signal, ctx)
    finally:
        workflow.stop_controller(ctx)


def initial_params(parts: dict[str, Any]) -> dict[str, np.ndarray]:
    return {k: v.detach().numpy().copy() for k, v in parts["persistor"].model.state_dict().items()}


# --------------------------------------------------------------------------- ScatterAndGather


def test_rounds_average_the_sites_results_and_persist_the_global_model(
    tmp_path, server, sites
) -> None:
    comm = server()
    learners = {"site-1": ShiftLearner(), "site-2": ShiftLearner()}
    site_threads = sites(comm, learners)
    parts = server_parts(num_rounds=3)
    start = initial_params(parts)
    lines: list[str] = []
    ctx = server_ctx(tmp_path, parts, comm, lines)
    sag = parts["scatter_and_gather"]

    run_workflow(sag, ctx)

    # Each round adds site-1's +1 (1 step) and site-2's +2 (2 steps): (1*1 + 2*2) / 3 = 5/3.
    for name, value in start.items():
        np.testing.assert_allclose(sag.global_model.params[name], value + 3 * 5 / 3, rtol=1e-5)
    assert ctx.props["global_model"] is sag.global_model
    assert ctx.props["current_round"] == 2
    assert [t.tasks for t in site_threads] == [["train"] * 3] * 2
    assert [m["current_round"] for m in learners["site-1"].task_meta] == [0, 1, 2]
    assert {m["num_rounds"] for m in learners["site-1"].task_meta} == {3}
    assert len(lines) == 3
    for number, line in enumerate(lines, 1):
        assert line.startswith(f"round {number}/3: results from site-1, site-2 (")

    saved = load_file(str(ctx.run_dir / "FL_global_model.pt"))
    assert saved.keys() == start.keys()
    for name, value in saved.items():
        np.testing.assert_array_equal(value, sag.global_model.params[name])
    assert not [p for p in os.listdir(ctx.run_dir) if p.endswith(".tmp")]

    # The model sent in round 3 validated best (the mean weight grows every round).
    best = load_file(str(ctx.run_dir / "best_FL_global_model.pt"))
    for name, value in start.items():
        np.testing.assert_allclose(best[name], value + 2 * 5 / 3, rtol=1e-5)
    metric = load_checkpoint(ctx.run_dir / "best_FL_global_model.pt")["meta_props"]["validation_metric"]
    assert metric == pytest.approx(float(np.mean(start["weight"])) + 2 * 5 / 3, rel=1e-5)

    types = parts["events"].types()
    assert types.count(EventType.ROUND_STARTED) == 3 and types.count(EventType.ROUND_DONE) == 3
    assert types[0] == AppEventType.INITIAL_MODEL_LOADED
    assert types.count(AppEventType.BEFORE_CONTRIBUTION_ACCEPT) == 6


class DictMetricLearner(ShiftLearner):
    """Reports its metrics as FLARE's Client API does: a dict, in the result's metrics."""

    def train(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        result = super().train(data, ctx, abort_signal)
        loss = -float(np.mean(data.params["weight"]))  # falls as the weights grow
        result.metrics = {"accuracy": -loss, "val_loss": loss}
        return result

    def validate(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        return FLModel(metrics={"mean": float(np.mean(data.params["weight"]))})  # no initial_metrics


@pytest.mark.parametrize("negate", [False, True])
def test_intime_model_selector_chooses_the_best_model_instead_of_the_workflow(
    tmp_path, server, sites, negate
) -> None:
    comm = server()
    sites(comm, {"site-1": DictMetricLearner(), "site-2": DictMetricLearner()})
    parts = server_parts(num_rounds=4)
    start = initial_params(parts)
    selector = IntimeModelSelector(key_metric="val_loss" if negate else "accuracy",
                                   negate_key_metric=negate, weigh_by_local_iter=True)
    parts = {"model_selector": selector, **parts}
    ctx = server_ctx(tmp_path, parts, comm, [])

    run_workflow(parts["scatter_and_gather"], ctx)

    # Round 0 is skipped (FLARE). The mean weight grows each round: accuracy is highest, and
    # the loss lowest, for the model sent in round 3.
    best_events = [d for t, d in parts["events"].events if t == AppEventType.GLOBAL_BEST_MODEL_AVAILABLE]
    assert selector.best_round == 3
    assert len(best_events) == 3  # rounds 1, 2 and 3 each beat the one before; never twice a round
    best = load_file(str(ctx.run_dir / "best_FL_global_model.pt"))
    for name, value in start.items():
        np.testing.assert_allclose(best[name], value + 3 * 5 / 3, rtol=1e-5)
    expected = float(np.mean(start["weight"])) + 3 * 5 / 3
    assert selector.best_metric == pytest.approx(expected, rel=1e-5)


def test_intime_model_selector_maximises_a_loss_only_when_told_and_says_so(
    tmp_path, server, sites, caplog
) -> None:
    comm = server()
    sites(comm, {"site-1": DictMetricLearner(), "site-2": DictMetricLearner()})
    with caplog.at_level("WARNING"):
        selector = IntimeModelSelector(key_metric="val_loss")
    assert "looks like a lower-is-better metric" in caplog.text
    parts = {"model_selector": selector, **server_parts(num_rounds=4)}
    start = initial_params(parts)
    ctx = server_ctx(tmp_path, parts, comm, [])
    run_workflow(parts["scatter_and_gather"], ctx)
    # Maximising the loss keeps the first model it saw after round 0: the one sent in round 1.
    assert selector.best_round == 1
    best = load_file(str(ctx.run_dir / "best_FL_global_model.pt"))
    for name, value in start.items():
        np.testing.assert_allclose(best[name], value + 5 / 3, rtol=1e-5)


def test_intime_model_selector_weighs_sites_and_leaves_out_what_it_cannot_use(tmp_path) -> None:
    selector = IntimeModelSelector(key_metric="acc", aggregation_weights={"site-1": 3.0})
    fired: list[Event] = []

    class Catch(Widget):
        def handle_event(self, event: Event, ctx: Any) -> None:
            if event.type == AppEventType.GLOBAL_BEST_MODEL_AVAILABLE:
                fired.append(event)

    ctx = SiteContext("server", "job", tmp_path, {}, [selector, Catch()], role="server")
    ctx.props.update(current_round=1, global_model=FLModel(params={"w": np.ones(1)}))
    results = {
        "site-1": FLModel(meta={"initial_metrics": {"acc": 0.9}, "current_round": 1}),
        "site-2": FLModel(meta={"initial_metrics": {"acc": 0.5}}),
        "site-3": FLModel(meta={"initial_metrics": {"loss": 0.1}}),  # no acc: left out
        "site-4": FLModel(meta={"initial_metrics": {"acc": 1.0}, "current_round": 0}),  # stale
        "site-5": FLModel(meta={"initial_metrics": {"acc": float("nan")}}),  # not finite
    }
    ctx.fire_event(EventType.ROUND_STARTED, {"current_round": 1})
    for site, result in results.items():
        ctx.fire_event(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, {"site": site, "result": result})
    ctx.fire_event(AppEventType.BEFORE_AGGREGATION, {"current_round": 1})
    (event,) = fired
    assert event.data.meta["validation_metric"] == pytest.approx((3 * 0.9 + 0.5) / 4)
    assert selector.best_round == 1


def test_persist_every_n_rounds(tmp_path, server, sites) -> None:
    comm = server()
    sites(comm, {"site-1": ShiftLearner(), "site-2": ShiftLearner()})
    parts = server_parts(num_rounds=3, persist_every_n_rounds=2)
    ctx = server_ctx(tmp_path, parts, comm, [])
    saved_after: list[str | None] = []

    class FileWatcher(Widget):
        def handle_event(self, event: Event, ctx: Any) -> None:
            if event.type == EventType.ROUND_DONE:
                path = ctx.run_dir / "FL_global_model.pt"
                if not path.exists():
                    saved_after.append(None)
                    return
                saved_after.append(load_checkpoint(path)["meta_props"]["current_round"])

    ctx = SiteContext(
        "server", "job", tmp_path, parts, [*parts.values(), FileWatcher()],
        role="server", comm=comm,
    )  # fmt: skip
    run_workflow(parts["scatter_and_gather"], ctx)
    # Not after round 1; after round 2 (every 2nd); after round 3 (the last).
    assert saved_after == [None, 1, 2]


def test_min_clients_holds_when_a_site_stops_mid_round(tmp_path, server, sites) -> None:
    comm = server(heartbeat_timeout=1.0)
    hang = threading.Event()
    learners = {
        "site-1": ShiftLearner(),
        "site-2": ShiftLearner(),
        "site-3": ShiftLearner(hang=hang),
    }
    sites(comm, learners, heartbeat={"site-3": 60.0})  # site-3 goes silent once it hangs
    # An hour's grace: the rounds end only because, once site-3 is lost, nobody else
    # can still answer.
    parts = server_parts(num_rounds=2, min_clients=2, wait_time_after_min_received=3600)
    lines: list[str] = []
    ctx = server_ctx(tmp_path, parts, comm, lines)

    run_workflow(parts["scatter_and_gather"], ctx)

    assert [line.split(" (")[0] for line in lines] == [
        "round 1/2: results from site-1, site-2",
        "round 2/2: results from site-1, site-2",
    ]
    assert len(learners["site-3"].task_meta) == 1  # lost in round 1, not sent round 2


def test_losing_a_site_below_min_clients_names_it(tmp_path, server, sites) -> None:
    comm = server(heartbeat_timeout=1.0)
    hang = threading.Event()
    learners = {
        "site-1": ShiftLearner(),
        "site-2": ShiftLearner(),
        "site-3": ShiftLearner(hang=hang),
    }
    sites(comm, learners, heartbeat={"site-3": 60.0})
    parts = server_parts(num_rounds=2, min_clients=3)
    ctx = server_ctx(tmp_path, parts, comm, [])
    with pytest.raises(JobError) as err:
        run_workflow(parts["scatter_and_gather"], ctx)
    assert err.value.site == "site-3"
    assert "round 1/2" in str(err.value) and "site-3: no call for 1 s" in str(err.value)
    assert not (ctx.run_dir / "FL_global_model.pt").exists()


@pytest.mark.parametrize(
    ("min_clients", "ignore_result_error", "outcome"),
    [
        (2, None, "round 1/1: results from site-1, site-3"),
        (2, True, "round 1/1: results from site-1, site-3"),
        (3, None, "min_clients (3) can no longer be reached"),
        (2, False, "task 'train' failed"),
    ],
    ids=["dynamic-min-holds", "ignore", "dynamic-min-lost", "strict"],
)
def test_a_failed_site_result(
    tmp_path, server, sites, min_clients, ignore_result_error, outcome
) -> None:
    comm = server()
    learners = {
        "site-1": ShiftLearner(),
        "site-2": ShiftLearner(fail=True),
        "site-3": ShiftLearner(),
    }
    sites(comm, learners)
    parts = server_parts(
        num_rounds=1,
        min_clients=min_clients,
        ignore_result_error=ignore_result_error,
        wait_time_after_min_received=10,
    )
    lines: list[str] = []
    ctx = server_ctx(tmp_path, parts, comm, lines)
    if outcome.startswith("round"):
        run_workflow(parts["scatter_and_gather"], ctx)
        assert lines[0].startswith(outcome)
        return
    with pytest.raises(JobError) as err:
        run_workflow(parts["scatter_and_gather"], ctx)
    assert outcome in str(err.value)
    assert err.value.site == "site-2"
    assert "EXECUTION_EXCEPTION" in str(err.value)
    assert "RuntimeError: disk full on site-2" in str(err.value)


def test_abort_stops_between_rounds(tmp_path, server, sites) -> None:
    comm = server()
    sites(comm, {"site-1": ShiftLearner(), "site-2": ShiftLearner()})
    parts = server_parts(num_rounds=5)
    lines: list[str] = []
    ctx = server_ctx(tmp_path, parts, comm, lines)
    abort = Signal()
    parts["events"].abort, parts["events"].abort_on = abort, (EventType.ROUND_STARTED, 1)
    run_workflow(parts["scatter_and_gather"], ctx, abort)
    assert [line.split(":")[0] for line in lines] == ["round 1/5"]
    assert parts["scatter_and_gather"].global_model.meta["current_round"] == 0


@pytest.mark.parametrize(
    ("remove", "replace", "message"),
    [
        ("aggregator", None, "aggregator_id 'aggregator' names no component"),
        (
            None,
            ("aggregator", FullModelShareableGenerator()),
            "aggregator_id 'aggregator' names a FullModelShareableGenerator, not an Aggregator",
        ),
        (
            "shareable_generator",
            None,
            "shareable_generator_id 'shareable_generator' names no component",
        ),
        ("persistor", None, "persistor_id 'persistor' names no component"),
    ],
)
def test_start_controller_names_a_missing_or_wrong_component(
    tmp_path, remove, replace, message
) -> None:
    parts = server_parts()
    if remove:
        del parts[remove]
    if replace:
        parts[replace[0]] = replace[1]
    ctx = server_ctx(tmp_path, parts, None, [])
    with pytest.raises(JobError, match=message):
        parts["scatter_and_gather"].start_controller(ctx)


def test_an_empty_initial_model_needs_allow_empty_global_weights(tmp_path) -> None:
    parts = server_parts()
    parts["persistor"] = PTFileModelPersistor()  # no model, no checkpoint
    ctx = server_ctx(tmp_path, parts, None, [])
    with pytest.raises(JobError, match="no initial global model.*allow_empty_global_weights"):
        parts["scatter_and_gather"].start_controller(ctx)
    allowing = ScatterAndGather(persistor_id="persistor", allow_empty_global_weights=True)
    allowing.start_controller(ctx)
    assert allowing.global_model.params == {}


# --------------------------------------------------------------------------- the example job's path


def test_fedavg_with_digits_then_cross_site_evaluation(tmp_path, server, sites) -> None:
    comm = server()
    learners = {
        site: DigitsLearner(num_sites=2, max_train_batches=3, batch_size=16)
        for site in ("site-1", "site-2")
    }
    site_threads = sites(comm, learners)
    parts = server_parts(model=DigitsCNN(), num_rounds=2)
    start = initial_params(parts)
    lines: list[str] = []
    ctx = server_ctx(tmp_path, parts, comm, lines)

    run_workflow(parts["scatter_and_gather"], ctx)
    run_workflow(parts["cross_site_validate"], ctx)
    ctx.fire_event(EventType.END_RUN)

    final = parts["scatter_and_gather"].global_model.params
    assert any(not np.array_equal(final[name], start[name]) for name in start)
    # As a notebook loads it: FLARE 2.9's checkpoint dict, the class named in its train_conf.
    checkpoint = torch.load(ctx.run_dir / "FL_global_model.pt", weights_only=True)
    assert checkpoint["train_conf"] == {"train": {"model": "DigitsCNN"}}
    reloaded = DigitsCNN()
    reloaded.load_state_dict(checkpoint["model"])
    for name, value in reloaded.state_dict().items():
        np.testing.assert_array_equal(value.numpy(), final[name])

    results_file = ctx.run_dir / "cross_site_val" / "cross_val_results.json"
    results = json.loads(results_file.read_text())
    models = {"SRV_FL_global_model.pt", "SRV_best_FL_global_model.pt", "site-1", "site-2"}
    assert set(results) == {"site-1", "site-2"}
    for site in results:
        assert set(results[site]) == models
        for metrics in results[site].values():
            assert 0.0 <= metrics["accuracy"] <= 1.0
    # Both sites validate the same model on the same held-out split.
    assert (
        results["site-1"]["SRV_FL_global_model.pt"] == results["site-2"]["SRV_FL_global_model.pt"]
    )
    assert ctx.props["cross_val_results"] == results
    assert [t.tasks[-5:] for t in site_threads] == [["submit_model"] + ["validate"] * 4] * 2
    assert any(
        line.startswith("cross-site evaluation: site-1 validated by site-1, site-2")
        for line in lines
    )

    # ValidationJsonGenerator wrote the same results from the events, at END_RUN.
    widget_file = ctx.run_dir / "widget_out" / "cross_val_results.json"
    assert json.loads(widget_file.read_text()) == results


def test_cross_site_evaluation_leaves_out_sites_without_a_model(tmp_path, server, sites) -> None:
    comm = server()
    sites(comm, {"site-1": ShiftLearner(), "site-2": ShiftLearner()})
    ctx = server_ctx(tmp_path, {}, comm, [])
    workflow = CrossSiteModelEval(
        submit_model_task_name="submit_model", participating_clients=["site-2"]
    )
    run_workflow(workflow, ctx)
    # ShiftLearner has no local model before training: both submissions are empty.
    results = json.loads((ctx.run_dir / "cross_site_val" / "cross_val_results.json").read_text())
    assert results == {"site-2": {}}


# --------------------------------------------------------------------------- persistor and generator


class NotWeights:
    """Pickled into a checkpoint: a weights-only load must refuse it."""

    def __reduce__(self) -> tuple[Any, ...]:
        return (os.getcwd, ())


def persistor_ctx(tmp_path: Path, **components: Any) -> SiteContext:
    return SiteContext("server", "job", tmp_path, components, list(components.values()))


def test_persistor_loads_a_checkpoint_weights_only(tmp_path) -> None:
    model = linear_model()
    torch.save({"model": model.state_dict(), "train_conf": {"epochs": 1}}, tmp_path / "ckpt.pt")
    persistor = PTFileModelPersistor(
        model=nn.Linear(2, 1), source_ckpt_file_full_name=str(tmp_path / "ckpt.pt")
    )
    loaded = persistor.load(persistor_ctx(tmp_path))
    for name, value in model.state_dict().items():
        np.testing.assert_array_equal(loaded.params[name], value.numpy())
        assert isinstance(loaded.params[name], np.ndarray)

    torch.save({"weight": NotWeights()}, tmp_path / "evil.pt")
    evil = PTFileModelPersistor(source_ckpt_file_full_name=str(tmp_path / "evil.pt"))
    with pytest.raises(JobError, match="weights-only PyTorch checkpoint.*never unpickles"):
        evil.load(persistor_ctx(tmp_path))


def test_persistor_checks_a_checkpoint_against_the_model(tmp_path) -> None:
    torch.save(nn.Linear(3, 1).state_dict(), tmp_path / "other.pt")
    persistor = PTFileModelPersistor(
        model=nn.Linear(2, 1), source_ckpt_file_full_name=str(tmp_path / "other.pt")
    )
    with pytest.raises(
        JobError, match=r"does not fit the model Linear: wrong shape weight \(1, 3\)"
    ):
        persistor.load(persistor_ctx(tmp_path))
    missing = PTFileModelPersistor(source_ckpt_file_full_name=str(tmp_path / "nope.safetensors"))
    with pytest.raises(JobError, match="no such file"):
        missing.load(persistor_ctx(tmp_path))


def test_persistor_saves_flares_checkpoint_that_it_can_start_from_again(tmp_path) -> None:
    ctx = persistor_ctx(tmp_path, net=linear_model())
    persistor = PTFileModelPersistor(model="net", exclude_vars="bias")
    persistor.handle_event(Event(EventType.START_RUN), ctx)  # resolves the id
    model = persistor.load(ctx)
    assert set(model.params) == {"weight"}
    persistor.save(FLModel(params={"weight": model.params["weight"] * 2, "bias": np.ones(1)},
                           meta={"current_round": 3, "scaffold": {"c": np.ones(1)},
                                 "nr_aggregated": np.int64(2), "loss": np.float32(0.5)}), ctx)
    path = ctx.run_dir / "FL_global_model.pt"
    checkpoint = load_checkpoint(path)
    assert set(checkpoint["model"]) == {"weight"}  # excluded on save too
    # plain values only, as Python's types: weights_only loading takes nothing else
    assert checkpoint["meta_props"] == {"current_round": 3, "nr_aggregated": 2, "loss": 0.5}
    assert type(checkpoint["meta_props"]["nr_aggregated"]) is int
    assert checkpoint["train_conf"] == {"train": {"model": "Linear"}}
    assert persistor.model_names(ctx) == ["FL_global_model.pt"]
    assert not [p for p in os.listdir(ctx.run_dir) if p.endswith(".tmp")]
    again = PTFileModelPersistor(source_ckpt_file_full_name=str(path)).load(ctx)
    np.testing.assert_array_equal(again.params["weight"], model.params["weight"] * 2)
    assert PTFileModelLocator("persistor").locate_model(
        "FL_global_model.pt", persistor_ctx(tmp_path, persistor=persistor)
    ).params.keys() == {"weight"}
    assert persistor.get_model("../../etc/passwd", ctx) is None


def test_persistor_reads_the_safetensors_files_earlier_versions_wrote_and_keeps_that_format_by_name(
        tmp_path) -> None:
    from safetensors.numpy import load_file as load_safetensors
    from safetensors.numpy import save_file

    ctx = persistor_ctx(tmp_path)
    old = ctx.run_dir / "FL_global_model.pt"  # what flconfig wrote before: safetensors in a .pt
    old.parent.mkdir(parents=True, exist_ok=True)
    save_file({"weight": np.full((1, 2), 3.0, np.float32)}, str(old),
              metadata={"format": "flconfig.global_model", "validation_metric": "0.75"})
    persistor = PTFileModelPersistor(source_ckpt_file_full_name=str(old))
    np.testing.assert_array_equal(persistor.load(ctx).params["weight"], [[3.0, 3.0]])
    assert persistor.get_model("FL_global_model.pt", ctx).meta["validation_metric"] == 0.75

    named = PTFileModelPersistor(model=nn.Linear(2, 1), global_model_file_name="global.safetensors")
    named.save(FLModel(params={"weight": np.ones((1, 2), np.float32), "bias": np.zeros(1, np.float32)},
                       meta={"current_round": 1}), ctx)
    assert set(load_safetensors(str(ctx.run_dir / "global.safetensors"))) == {"weight", "bias"}
    assert named.get_model("global.safetensors", ctx).params["weight"].tolist() == [[1.0, 1.0]]


def test_persistor_keeps_a_flare_checkpoints_train_conf_and_may_keep_tensors(tmp_path) -> None:
    model = linear_model()
    torch.save({"model": model.state_dict(), "train_conf": {"epochs": 1}, "epoch": 7}, tmp_path / "ckpt.pt")
    persistor = PTFileModelPersistor(model=nn.Linear(2, 1), source_ckpt_file_full_name=str(tmp_path / "ckpt.pt"),
                                     allow_numpy_conversion=False)
    ctx = persistor_ctx(tmp_path)
    loaded = persistor.load(ctx)
    assert all(isinstance(v, torch.Tensor) for v in loaded.params.values())  # as FLARE: no numpy
    persistor.save(loaded, ctx)
    checkpoint = load_checkpoint(ctx.run_dir / "FL_global_model.pt")
    assert checkpoint["train_conf"] == {"epochs": 1} and checkpoint["epoch"] == 7
    assert isinstance(persistor.get_model("FL_global_model.pt", ctx).params["weight"], torch.Tensor)


def test_persistor_needs_its_model_component(tmp_path) -> None:
    persistor = PTFileModelPersistor(model="net")
    with pytest.raises(JobError, match="model 'net' names no component"):
        persistor.load(persistor_ctx(tmp_path))


def test_generator_applies_diffs_and_keeps_excluded_params(tmp_path) -> None:
    ctx = persistor_ctx(tmp_path)
    generator = FullModelShareableGenerator()
    ctx.props["global_model"] = FLModel(
        params={"w": np.array([1.0, 2.0], np.float32), "bn": np.array([5.0])}
    )
    diff = generator.shareable_to_learnable(
        FLModel(params={"w": np.array([0.5, -1.0])}, params_type="DIFF"), ctx
    )
    np.testing.assert_array_equal(diff.params["w"], [1.5, 1.0])
    assert diff.params["w"].dtype == np.float32 and diff.params["bn"].tolist() == [5.0]
    full = generator.shareable_to_learnable(FLModel(params={"w": np.zeros(2)}), ctx)
    assert full.params["w"].tolist() == [0.0, 0.0] and full.params["bn"].tolist() == [5.0]
    with pytest.raises(JobError, match="'x', which the global model lacks"):
        generator.shareable_to_learnable(
            FLModel(params={"x": np.zeros(1)}, params_type="DIFF"), ctx
        )
    with pytest.raises(JobError, match="return code EXECUTION_EXCEPTION"):
        generator.shareable_to_learnable(FLModel.error(ReturnCode.EXECUTION_EXCEPTION), ctx)
