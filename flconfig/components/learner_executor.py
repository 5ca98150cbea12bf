"""LearnerExecutor: runs a site's train, validate and submit_model tasks on a Learner."""

from __future__ import annotations

import logging
import math
import threading
from dataclasses import replace
from typing import Any, ClassVar

from ..compat.learner_adapter import FlareLearner
from ..errors import JobError
from ..types import Event, EventType, FLModel, ReturnCode, RunContext, Signal
from .base import Executor, Learner, site_logger

log = logging.getLogger(__name__)

#: Task-data meta key naming the model ``submit_model`` asks for (FLARE's header).
SUBMIT_MODEL_NAME_KEY = "submit_model_name"
#: The model ``submit_model`` asks for when the task data names none.
DEFAULT_SUBMIT_MODEL_NAME = "best"
#: Meta key telling the learner why it validates (FLARE's ``_validate_type`` header).
VALIDATE_TYPE_KEY = "_validate_type"
BEFORE_TRAIN_VALIDATE = "before_train_validate"
MODEL_VALIDATE = "model_validate"
#: Meta key of the validation of the incoming global model, copied into train results.
INITIAL_METRICS_KEY = "initial_metrics"


class LearnerExecutor(Executor):
    """Routes FLARE's three learner tasks to the :class:`~flconfig.components.base.Learner`
    named by ``learner_id`` (FLARE's ``LearnerExecutor``).

    The learner is looked up, and initialised with the site's components, on
    the first task, as FLARE does.

    - ``train_task``: validates the incoming model first (meta
      ``_validate_type="before_train_validate"``), then trains; the
      validation's ``initial_metrics`` (from its meta or metrics) is copied
      into the train result's meta, where ScatterAndGather reads how well the
      global model did.
    - ``submit_model_task``: ``learner.get_model_for_validation(name)`` with
      the name the task data's ``meta["submit_model_name"]`` gives ("best"
      when it gives none).
    - ``validate_task``: validates (meta ``_validate_type="model_validate"``).
    - any other task: a ``TASK_UNKNOWN`` result.

    An exception raised by the learner becomes an ``EXECUTION_EXCEPTION``
    result carrying its message (the traceback goes to the site's log); a
    learner that failed to initialise fails every task the same way. On
    ``ABORT_TASK`` the learner's ``abort`` is called, on ``END_RUN`` its
    ``finalize``.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "learner_id": {"minLength": 1},
        "train_task": {"minLength": 1},
        "submit_model_task": {"minLength": 1},
        "validate_task": {"minLength": 1},
    }

    def __init__(
        self,
        learner_id: str,
        train_task: str = "train",
        submit_model_task: str = "submit_model",
        validate_task: str = "validate",
    ) -> None:
        """
        Args:
            learner_id: id of the Learner component that does the work.
            train_task: task name that trains: the learner validates the
                incoming global model, then trains on it.
            submit_model_task: task name that returns the site's model for
                cross-site evaluation.
            validate_task: task name that validates a model sent by the server.
        """
        self.learner_id = learner_id
        self.train_task = train_task
        self.submit_model_task = submit_model_task
        self.validate_task = validate_task
        tasks = [self.train_task, self.submit_model_task, self.validate_task]
        if len(set(tasks)) != len(tasks):
            raise ValueError(
                "train_task, submit_model_task and validate_task must be different task names,"
                f" got {tasks}"
            )

        self._learner: Learner | None = None
        self._init_error: str | None = None
        self._finalized = False
        self._lock = threading.Lock()

    # -- tasks ----------------------------------------------------------------------

    def execute(
        self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal
    ) -> FLModel:
        """Run one task on the learner; failures come back as error results."""
        handled = (self.train_task, self.submit_model_task, self.validate_task)
        if task_name not in handled:
            return FLModel.error(
                ReturnCode.TASK_UNKNOWN,
                f"unknown task '{task_name}': this executor handles {', '.join(handled)}",
            )
        learner = self._initialized_learner(ctx)
        if learner is None:
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, self._init_error or "")
        try:
            if task_name == self.train_task:
                return self._train(learner, data, ctx, abort_signal)
            if task_name == self.submit_model_task:
                name = data.meta.get(SUBMIT_MODEL_NAME_KEY) or DEFAULT_SUBMIT_MODEL_NAME
                return _checked(learner.get_model_for_validation(str(name), ctx))
            return _checked(learner.validate(_with_meta(data, MODEL_VALIDATE), ctx, abort_signal))
        except Exception as exc:
            site_logger(ctx, log).exception("learner '%s' failed in task '%s'", self.learner_id, task_name)
            return FLModel.error(
                ReturnCode.EXECUTION_EXCEPTION,
                f"learner '{self.learner_id}' failed in task '{task_name}': "
                f"{type(exc).__name__}: {exc}",
            )

    def _train(
        self, learner: Learner, data: FLModel, ctx: RunContext, abort_signal: Signal
    ) -> FLModel:
        validation = learner.validate(_with_meta(data, BEFORE_TRAIN_VALIDATE), ctx, abort_signal)
        if abort_signal.triggered:
            return FLModel.error(ReturnCode.TASK_ABORTED, "train aborted")
        result = _checked(learner.train(data, ctx, abort_signal))
        if result.rc == ReturnCode.OK and isinstance(validation, FLModel):
            initial = _initial_metrics(validation)
            if initial is not None:
                result.meta[INITIAL_METRICS_KEY] = initial
        return result

    def _initialized_learner(self, ctx: RunContext) -> Learner | None:
        """The learner, initialised once; None if its initialisation failed.

        Raises JobError when ``learner_id`` names nothing or not a Learner.
        """
        with self._lock:
            if self._learner is not None or self._init_error is not None:
                return self._learner
            learner = ctx.get_component(self.learner_id)
            if learner is None:
                raise JobError(
                    f"learner_id '{self.learner_id}' names no component; add a Learner "
                    f"component with id '{self.learner_id}' to the client config",
                    ctx.site_name,
                )
            if not isinstance(learner, Learner) and getattr(type(learner), "_flare_component", False):
                learner = FlareLearner(learner)  # written against FLARE's Learner API
            if not isinstance(learner, Learner):
                raise JobError(
                    f"learner_id '{self.learner_id}' names a {type(learner).__name__}, "
                    "not a Learner",
                    ctx.site_name,
                )
            try:
                learner.initialize(ctx.components, ctx)
            except Exception as exc:
                site_logger(ctx, log).exception("learner '%s' failed to initialize", self.learner_id)
                self._init_error = (
                    f"learner '{self.learner_id}' failed to initialize: {type(exc).__name__}: {exc}"
                )
                return None
            self._learner = learner
            return learner

    # -- events ---------------------------------------------------------------------

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """ABORT_TASK: ask the learner to stop; END_RUN: finalize it (once)."""
        learner = self._learner
        if learner is None:
            return
        if event.type == EventType.ABORT_TASK:
            learner.abort(ctx)
        elif event.type == EventType.END_RUN:
            with self._lock:
                if self._finalized:
                    return
                self._finalized = True
            learner.finalize(ctx)



def _with_meta(data: FLModel, validate_type: str) -> FLModel:
    """``data`` with ``_validate_type`` set, leaving the caller's meta unchanged."""
    return replace(data, meta={**data.meta, VALIDATE_TYPE_KEY: validate_type})


def _checked(result: Any) -> FLModel:
    """A learner's return value, or an EMPTY_RESULT error when it returned no FLModel."""
    if isinstance(result, FLModel):
        return result
    return FLModel.error(
        ReturnCode.EMPTY_RESULT,
        f"the learner returned a {type(result).__name__}, not an FLModel",
    )


def _initial_metrics(validation: FLModel) -> float | None:
    if validation.rc != ReturnCode.OK:
        return None
    for source in (validation.meta, validation.metrics):
        value = source.get(INITIAL_METRICS_KEY) if isinstance(source, dict) else None
        if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
            return float(value)
    return None
