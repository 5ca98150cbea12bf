"""ModelLearnerExecutor: runs a site's tasks on a learner written against FLARE's ModelLearner."""

from __future__ import annotations

import logging
import threading
from typing import Any, ClassVar

from ..compat.nvflare.apis.fl_constant import FLContextKey
from ..compat.nvflare.app_common.abstract.fl_model import FLModel as FlareModel
from ..compat.nvflare.app_common.abstract.fl_model import MetaKey
from ..compat.nvflare.app_common.abstract.model_learner import ModelLearner
from ..compat.nvflare.app_common.app_constant import AppConstants, ModelName, ValidateType
from ..compat.nvflare.app_common.utils.fl_model_utils import FLModelUtils
from ..compat.shareables import flare_context, from_shareable, to_shareable
from ..types import Event, EventType, FLModel, ReturnCode, RunContext, Signal
from .base import Executor, flare_learner, site_logger

log = logging.getLogger(__name__)


class ModelLearnerExecutor(Executor):
    """Drives a FLARE ``ModelLearner`` (``nvflare.app_common.abstract.model_learner``), as
    FLARE's ``ModelLearnerExecutor`` does.

    The learner named by ``learner_id`` is a class of the job's own code that subclasses
    FLARE's ``ModelLearner``; its methods take and return FLARE's ``FLModel``:

    - ``train_task``: ``validate(model)`` of the incoming global model first (meta
      ``validate_type = "before_train_validate"``), then ``train(model)``; the
      validation's metrics go with the train result as ``initial_metrics``, where
      IntimeModelSelector reads them.
    - ``submit_model_task``: ``get_model(name)`` with the name the server asks for.
    - ``validate_task``: ``validate(model)`` (``validate_type = "model_validate"``).
    - ``configure_task``: ``configure(model)``.

    Before each task the learner's attributes are set as FLARE sets them (``fl_ctx``,
    ``shareable``, ``abort_signal``, ``site_name``, ``job_id``, ``engine``,
    ``workspace``, ``app_root``, ``job_root``, ``workspace_root``, ``current_round``,
    ``total_rounds``); ``initialize()`` is called before the first task, ``abort()``
    on ``ABORT_TASK`` and ``finalize()`` at the end of the run. A ReturnCode string
    returned by the learner, or an exception it raises, is the task's error result.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "learner_id": {"minLength": 1},
        "train_task": {"minLength": 1},
        "submit_model_task": {"minLength": 1},
        "validate_task": {"minLength": 1},
        "configure_task": {"minLength": 1},
    }

    def __init__(
        self,
        learner_id: str,
        train_task: str = "train",
        submit_model_task: str = "submit_model",
        validate_task: str = "validate",
        configure_task: str = "configure",
    ) -> None:
        """
        Args:
            learner_id: id of the ModelLearner component (the job's own class).
            train_task: task name that validates the global model, then trains on it.
            submit_model_task: task name that returns one of the site's models.
            validate_task: task name that scores a model sent by the server.
            configure_task: task name that hands the learner its configuration.
        """
        self.learner_id = learner_id
        self.train_task, self.submit_model_task = train_task, submit_model_task
        self.validate_task, self.configure_task = validate_task, configure_task
        self.tasks = {train_task: self._train, submit_model_task: self._submit_model,
                      validate_task: self._validate, configure_task: self._configure}
        if len(self.tasks) != 4:
            raise ValueError("train_task, submit_model_task, validate_task and configure_task must be "
                             f"different task names, got {[train_task, submit_model_task, validate_task, configure_task]}")
        self._learner: Any = None
        self._initialized = False
        self._finalized = False
        self._lock = threading.Lock()

    # -- tasks ----------------------------------------------------------------------

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Run one task on the learner; failures come back as error results."""

        task = self.tasks.get(task_name)
        if task is None:
            return FLModel.error(ReturnCode.TASK_UNKNOWN,
                                 f"unknown task '{task_name}': this executor handles {', '.join(self.tasks)}")
        with self._lock:  # the task's context lives on the learner: one task at a time, as FLARE
            learner = self._model_learner(ctx)
            shareable = to_shareable(data)
            what = f"{type(learner).__name__}"
            try:
                self._set_up(learner, shareable, ctx, abort_signal)
                if not self._initialized:
                    self._initialized = True
                    learner.initialize()
                return task(learner, shareable, what)
            except Exception as exc:
                site_logger(ctx, log).exception("learner '%s' failed in task '%s'", self.learner_id, task_name)
                return FLModel.error(ReturnCode.EXECUTION_EXCEPTION,
                                     f"learner '{self.learner_id}' failed in task '{task_name}': "
                                     f"{type(exc).__name__}: {exc}")

    def _train(self, learner: Any, shareable: Any, what: str) -> FLModel:
        shareable.set_header(AppConstants.VALIDATE_TYPE, ValidateType.BEFORE_TRAIN_VALIDATE)
        model = _model_of(shareable)
        validation = learner.validate(model)
        if isinstance(validation, str):
            learner.log_warning(learner.fl_ctx, f"validation before training failed: {validation}")
        metrics = validation.metrics if isinstance(validation, FlareModel) else None
        result = learner.train(model)
        if isinstance(result, str):
            return FLModel.error(result, f"{what}.train returned {result}")
        if not isinstance(result, FlareModel):
            return FLModel.error(ReturnCode.EMPTY_RESULT,
                                 f"{what}.train returned a {type(result).__name__}, not an FLModel")
        if metrics:
            result.meta[MetaKey.INITIAL_METRICS] = metrics
        return _reply(result, f"{what}.train")

    def _submit_model(self, learner: Any, shareable: Any, what: str) -> FLModel:
        name = shareable.get_header(AppConstants.SUBMIT_MODEL_NAME) or ModelName.BEST_MODEL
        return _reply(learner.get_model(name), f"{what}.get_model")

    def _validate(self, learner: Any, shareable: Any, what: str) -> FLModel:
        if shareable.get_header(AppConstants.VALIDATE_TYPE) is None:
            shareable.set_header(AppConstants.VALIDATE_TYPE, ValidateType.MODEL_VALIDATE)
        return _reply(learner.validate(_model_of(shareable)), f"{what}.validate")

    def _configure(self, learner: Any, shareable: Any, what: str) -> FLModel:
        learner.configure(_model_of(shareable))
        return FLModel()

    # -- the learner ------------------------------------------------------------------

    def _model_learner(self, ctx: RunContext) -> Any:
        """The learner ``learner_id`` names; JobError when it is none or not a ModelLearner."""
        if self._learner is not None:
            return self._learner

        learner = flare_learner(ctx, self.learner_id, ModelLearner,
                                "nvflare.app_common.abstract.model_learner.ModelLearner")
        self._learner = learner
        return learner

    @staticmethod
    def _set_up(learner: Any, shareable: Any, ctx: RunContext, abort_signal: Signal) -> None:
        fl_ctx = flare_context(ctx, **{FLContextKey.TASK_DATA: shareable,
                                       AppConstants.CURRENT_ROUND: shareable.get_header(AppConstants.CURRENT_ROUND)})
        engine = fl_ctx.get_engine()
        workspace = engine.get_workspace()
        learner.shareable, learner.fl_ctx, learner.abort_signal = shareable, fl_ctx, abort_signal
        learner.site_name = learner.site_name or ctx.site_name
        learner.job_id = learner.job_id or ctx.job_id
        if not learner.engine:
            learner.engine, learner.workspace = engine, workspace
            learner.workspace_root = workspace.get_root_dir()
            learner.job_root = workspace.get_run_dir(ctx.job_id)
            learner.app_root = workspace.get_app_dir(ctx.job_id)
        learner.current_round = shareable.get_header(AppConstants.CURRENT_ROUND)
        learner.total_rounds = shareable.get_header(AppConstants.NUM_ROUNDS)

    # -- events ---------------------------------------------------------------------

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """ABORT_TASK: ask the learner to stop; END_RUN: finalize it (once)."""
        learner = self._learner
        if learner is None:
            return
        if event.type == EventType.ABORT_TASK:
            learner.abort()
        elif event.type == EventType.END_RUN and not self._finalized:
            self._finalized = True
            learner.finalize()


def _model_of(shareable: Any) -> Any:
    return FLModelUtils.from_shareable(shareable)


def _reply(result: Any, what: str) -> FLModel:
    """A learner's FLModel (or ReturnCode string) as flconfig's result."""

    if isinstance(result, str):
        return FLModel.error(result, f"{what} returned {result}")
    if not isinstance(result, FlareModel):
        return FLModel.error(ReturnCode.EMPTY_RESULT, f"{what} returned a {type(result).__name__}, not an FLModel")
    try:
        shareable = FLModelUtils.to_shareable(result)
    except ValueError as exc:
        return FLModel.error(ReturnCode.EMPTY_RESULT, f"{what}: {exc}")
    return from_shareable(shareable, what)

