"""LearnerExecutor: how FLARE's three learner tasks reach a Learner, and how failures come back."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

import numpy as np
import pytest

from flconfig.components.base import Learner, Widget
from flconfig.components.learner_executor import LearnerExecutor
from flconfig.errors import JobError
from flconfig.examples.digits import DigitsLearner
from flconfig.runtime.context import SiteContext
from flconfig.types import Event, EventType, FLModel, ReturnCode, Signal

pytestmark = pytest.mark.timeout(60)


class RecordingLearner(Learner):
    """Answers every call and remembers what it was asked."""

    def __init__(self, fail_in: str = "", fail_init: bool = False) -> None:
        self.fail_in = fail_in
        self.fail_init = fail_init
        self.calls: list[tuple[str, Any]] = []

    def initialize(self, parts: Mapping[str, Any], ctx: Any) -> None:
        self.calls.append(("initialize", sorted(parts)))
        if self.fail_init:
            raise OSError("no data folder")

    def train(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        self.calls.append(("train", dict(data.meta)))
        if self.fail_in == "train":
            raise RuntimeError("CUDA out of memory")
        return FLModel(params={"w": data.params["w"] + 1}, meta={"NUM_STEPS_CURRENT_ROUND": 5})

    def validate(self, data: FLModel, ctx: Any, abort_signal: Signal) -> FLModel:
        self.calls.append(("validate", data.meta.get("_validate_type")))
        return FLModel(metrics={"accuracy": 0.75}, meta={"initial_metrics": 0.75})

    def get_model_for_validation(self, model_name: str, ctx: Any) -> FLModel:
        self.calls.append(("get_model_for_validation", model_name))
        return FLModel(params={"w": np.zeros(2)})

    def abort(self, ctx: Any) -> None:
        self.calls.append(("abort", None))

    def finalize(self, ctx: Any) -> None:
        self.calls.append(("finalize", None))


def make_site(tmp_path, learner: Any, **executor_args: Any) -> tuple[LearnerExecutor, SiteContext]:
    executor = LearnerExecutor("learner", **executor_args)
    ctx = SiteContext(
        "site-1", "job", tmp_path, {"learner": learner, "other": Widget()}, [learner, executor]
    )
    return executor, ctx


def run(
    executor: LearnerExecutor, ctx: SiteContext, task: str, data: FLModel | None = None
) -> FLModel:
    return executor.execute(task, data or FLModel(params={"w": np.zeros(2)}), ctx, Signal())


def test_train_validates_first_and_copies_initial_metrics(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner)
    data = FLModel(params={"w": np.zeros(2)}, meta={"current_round": 3})
    out = run(executor, ctx, "train", data)
    assert out.rc == ReturnCode.OK
    np.testing.assert_array_equal(out.params["w"], [1.0, 1.0])
    assert out.meta == {"NUM_STEPS_CURRENT_ROUND": 5, "initial_metrics": 0.75}
    assert [c[0] for c in learner.calls] == ["initialize", "validate", "train"]
    assert learner.calls[1] == ("validate", "before_train_validate")
    assert learner.calls[2] == ("train", {"current_round": 3})  # the task data, unchanged
    assert data.meta == {"current_round": 3}


def test_submit_model_and_validate_reach_their_learner_methods(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner)
    run(executor, ctx, "submit_model", FLModel(meta={"submit_model_name": "best_model"}))
    run(executor, ctx, "submit_model", FLModel())
    out = run(executor, ctx, "validate")
    assert out.metrics == {"accuracy": 0.75}
    assert learner.calls[1:] == [
        ("get_model_for_validation", "best_model"),
        ("get_model_for_validation", "best"),
        ("validate", "model_validate"),
    ]


def test_task_names_come_from_the_config(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner, train_task="fit", validate_task="eval")
    assert run(executor, ctx, "fit").rc == ReturnCode.OK
    assert run(executor, ctx, "eval").rc == ReturnCode.OK
    assert run(executor, ctx, "train").rc == ReturnCode.TASK_UNKNOWN


def test_unknown_task_says_which_tasks_are_handled(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner)
    out = run(executor, ctx, "evaluate")
    assert out.rc == ReturnCode.TASK_UNKNOWN
    assert out.meta["error"] == (
        "unknown task 'evaluate': this executor handles train, submit_model, validate"
    )
    assert learner.calls == []  # an unknown task does not start the learner


def test_the_learner_is_initialized_once_with_the_site_components(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner)
    for task in ("train", "validate", "submit_model", "train"):
        run(executor, ctx, task)
    assert [c for c in learner.calls if c[0] == "initialize"] == [
        ("initialize", ["learner", "other"])
    ]


def test_an_exception_in_the_learner_is_an_execution_exception(tmp_path, caplog) -> None:
    learner = RecordingLearner(fail_in="train")
    executor, ctx = make_site(tmp_path, learner)
    with caplog.at_level(logging.ERROR):
        out = run(executor, ctx, "train")
    assert out.rc == ReturnCode.EXECUTION_EXCEPTION
    assert out.meta["error"] == (
        "learner 'learner' failed in task 'train': RuntimeError: CUDA out of memory"
    )
    logged = [r for r in caplog.records if "failed in task 'train'" in r.getMessage()]
    assert logged and logged[0].exc_info is not None  # with the traceback
    # The executor keeps working for the next task.
    assert run(executor, ctx, "validate").rc == ReturnCode.OK


def test_a_learner_that_fails_to_initialize_fails_every_task(tmp_path) -> None:
    learner = RecordingLearner(fail_init=True)
    executor, ctx = make_site(tmp_path, learner)
    for task in ("train", "validate"):
        out = run(executor, ctx, task)
        assert out.rc == ReturnCode.EXECUTION_EXCEPTION
        assert "failed to initialize: OSError: no data folder" in out.meta["error"]
    assert [c[0] for c in learner.calls] == ["initialize"]


@pytest.mark.parametrize(
    ("components", "message"),
    [
        ({"learner": Widget()}, "learner_id 'learner' names a Widget, not a Learner"),
        ({}, "learner_id 'learner' names no component"),
    ],
)
def test_learner_id_must_name_a_learner(tmp_path, components, message) -> None:
    executor = LearnerExecutor("learner")
    ctx = SiteContext("site-1", "job", tmp_path, components, [executor])
    with pytest.raises(JobError, match=message) as err:
        run(executor, ctx, "train")
    assert err.value.site == "site-1"


def test_a_result_that_is_not_a_model_is_an_empty_result(tmp_path) -> None:
    class Sloppy(RecordingLearner):
        def get_model_for_validation(self, model_name: str, ctx: Any) -> Any:
            return None

    executor, ctx = make_site(tmp_path, Sloppy())
    assert run(executor, ctx, "submit_model").rc == ReturnCode.EMPTY_RESULT


def test_abort_and_end_run_reach_the_learner(tmp_path) -> None:
    learner = RecordingLearner()
    executor, ctx = make_site(tmp_path, learner)
    ctx.fire_event(EventType.END_RUN)  # before the first task: nothing to finalize
    assert learner.calls == []
    run(executor, ctx, "validate")
    executor.handle_event(Event(EventType.ABORT_TASK), ctx)
    ctx.fire_event(EventType.END_RUN)
    ctx.fire_event(EventType.END_RUN)
    assert [c[0] for c in learner.calls] == ["initialize", "validate", "abort", "finalize"]


def test_with_the_digits_learner(tmp_path) -> None:
    learner = DigitsLearner(num_sites=2, max_train_batches=2, batch_size=16)
    executor, ctx = make_site(tmp_path, learner)
    initial = run(executor, ctx, "submit_model")
    assert initial.rc == ReturnCode.OK and initial.params
    trained = run(executor, ctx, "train", FLModel(params=initial.params))
    assert trained.rc == ReturnCode.OK
    assert trained.meta["NUM_STEPS_CURRENT_ROUND"] == 2
    assert 0.0 <= trained.meta["initial_metrics"] <= 1.0
    assert any(not np.array_equal(trained.params[k], initial.params[k]) for k in initial.params)
    checked = run(executor, ctx, "validate", FLModel(params=trained.params))
    assert checked.metrics["accuracy"] == pytest.approx(trained.metrics["validation_accuracy"])
    ctx.fire_event(EventType.END_RUN)
    assert (ctx.run_dir / "local_model.safetensors").is_file()
