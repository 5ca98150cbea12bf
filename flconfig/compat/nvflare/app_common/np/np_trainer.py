"""FLARE's ``nvflare.app_common.np.np_trainer``: ``NPTrainer``, the NumPy mock trainer, with
FLARE's API, for job code that subclasses it (``class SlowTrainer(NPTrainer)`` overriding
``_train(shareable, fl_ctx, abort_signal)``).

A config that names ``nvflare.app_common.np.np_trainer.NPTrainer`` itself gets flconfig's
built-in :class:`flconfig.components.numpy_family.NPTrainer`; this class is what job code
imports and extends, and runs behind the FLARE-API executor adapter like any job executor.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from flconfig.files import write_atomic

from .....files import inside
from ...apis.dxo import DXO, DataKind, MetaKey, from_shareable
from ...apis.executor import Executor
from ...apis.fl_constant import ReturnCode
from ...apis.fl_context import FLContext
from ...apis.shareable import Shareable, make_reply
from ...apis.signal import Signal
from ..app_constant import AppConstants
from .constants import NPConstants

#: How often ``sleep_time`` checks the abort signal.
_SLEEP_STEP = 0.5


class NPTrainer(Executor):
    """Adds ``delta`` to the model's ``numpy_key`` array on ``train_task_name``, keeps the
    result in ``<run dir>/<model_dir>/<model_name>`` and sends it back on
    ``submit_model_task_name``; waits ``sleep_time`` seconds before each task."""

    def __init__(self, delta: float = 1, sleep_time: float = 0,
                 train_task_name: str = AppConstants.TASK_TRAIN,
                 submit_model_task_name: str = AppConstants.TASK_SUBMIT_MODEL,
                 model_name: str = "best_numpy.npy", model_dir: str = "model") -> None:
        """
        Args:
            delta: what training adds to every weight.
            sleep_time: seconds to wait before each task (the abort signal is heeded).
            train_task_name: the task that trains.
            submit_model_task_name: the task that sends the kept model.
            model_name: the file the trained model is kept in.
            model_dir: its folder, inside the site's run folder.
        """
        super().__init__()
        if isinstance(delta, bool) or not isinstance(delta, (int, float)):
            raise TypeError("delta must be an instance of float or int.")
        self._delta = delta
        self._model_name = model_name
        self._model_dir = model_dir
        self._sleep_time = sleep_time
        self._train_task_name = train_task_name
        self._submit_model_task_name = submit_model_task_name

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        """Nothing to set up or tear down."""

    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext,
                abort_signal: Signal) -> Shareable:
        """Train or submit the kept model, as ``task_name`` says; TASK_UNKNOWN otherwise."""
        waited = 0.0
        while waited < self._sleep_time:
            if abort_signal.triggered:
                return make_reply(ReturnCode.TASK_ABORTED)
            time.sleep(_SLEEP_STEP)
            waited += _SLEEP_STEP
        self.log_info(fl_ctx, f"Task name: {task_name}")
        try:
            if task_name == self._train_task_name:
                return self._train(shareable, fl_ctx, abort_signal)
            if task_name == self._submit_model_task_name:
                return self._submit_model(fl_ctx, abort_signal)
            return make_reply(ReturnCode.TASK_UNKNOWN)
        except Exception as exc:  # a task fails; the site goes on, as in FLARE
            self.log_exception(fl_ctx, f"Exception in NPTrainer execute: {type(exc).__name__}: {exc}.")
            return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def _train(self, shareable: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        try:
            dxo = from_shareable(shareable)
        except ValueError as exc:
            self.system_panic(f"Unable to convert shareable to model definition. Exception {exc}", fl_ctx)
            return make_reply(ReturnCode.BAD_TASK_DATA)
        if dxo.data_kind != DataKind.WEIGHTS:
            self.system_panic("Model DXO should be of kind DataKind.WEIGHTS.", fl_ctx)
            return make_reply(ReturnCode.BAD_TASK_DATA)
        weights = dxo.data
        current_round = shareable.get_header(AppConstants.CURRENT_ROUND, None)
        total_rounds = shareable.get_header(AppConstants.NUM_ROUNDS, None)
        self.log_info(fl_ctx, f"Model received for round {current_round}/{total_rounds}")
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        if not weights:
            self.log_error(fl_ctx, "No model weights found in shareable.")
            return make_reply(ReturnCode.BAD_TASK_DATA)
        if NPConstants.NUMPY_KEY not in weights:
            self.log_error(fl_ctx, "numpy_key not found in model.")
            return make_reply(ReturnCode.BAD_TASK_DATA)
        weights[NPConstants.NUMPY_KEY] = weights[NPConstants.NUMPY_KEY] + self._delta
        try:
            self._save_local_model(fl_ctx, weights)
        except (OSError, ValueError) as exc:
            self.log_error(fl_ctx, f"Exception in saving local model: {exc}.")
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        return DXO(data_kind=dxo.data_kind, data=weights, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: 1}).to_shareable()

    def _submit_model(self, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        weights = self._load_local_model(fl_ctx)
        if abort_signal.triggered:
            return make_reply(ReturnCode.TASK_ABORTED)
        if not weights:
            self.log_error(fl_ctx, "local model not found.")
            return make_reply(ReturnCode.EXECUTION_RESULT_ERROR)
        return DXO(data_kind=DataKind.WEIGHTS, data=weights).to_shareable()

    def _model_path(self, fl_ctx: FLContext) -> Path:
        engine = fl_ctx.get_engine()
        if engine is None:
            raise ValueError("NPTrainer: the FLContext has no engine: no run folder to keep the model in")
        run_dir = engine.get_workspace().get_run_dir(fl_ctx.get_job_id())
        return inside(run_dir, str(Path(self._model_dir) / self._model_name))

    def _load_local_model(self, fl_ctx: FLContext) -> dict[str, Any] | None:
        import numpy as np

        try:
            return {NPConstants.NUMPY_KEY: np.load(self._model_path(fl_ctx), allow_pickle=False)}
        except (OSError, ValueError) as exc:
            self.log_error(fl_ctx, f"Unable to load local model: {exc}")
            return None

    def _save_local_model(self, fl_ctx: FLContext, model: dict[str, Any]) -> None:
        import io

        import numpy as np


        path = self._model_path(fl_ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        buffer = io.BytesIO()  # the file under its own name (np.save would add .npy), whole or not at all
        np.save(buffer, np.asarray(model[NPConstants.NUMPY_KEY]), allow_pickle=False)
        write_atomic(path, buffer.getvalue())
        self.log_info(fl_ctx, f"Saved numpy model to: {path}")


__all__ = ["NPTrainer"]
