"""FLARE's NumPy components (``nvflare.app_common.np``): the hello-numpy jobs, as FLARE runs them.

The model is one array under the key ``numpy_key``. NPModelPersistor starts from
``[[1, 2, 3], [4, 5, 6], [7, 8, 9]]`` (float32) unless ``models/server.npy`` is in the
server's run folder, and saves the global model there; NPTrainer adds ``delta`` to
it and keeps its last result in its own run folder; NPValidator scores a model as
``sum(w / max(w))`` plus a random number in [0, 1); NPModelLocator offers the saved
global model to cross-site evaluation as ``server``. Files are ``.npy`` (never
pickled: ``allow_pickle`` stays off), written atomically.

Standard library only at import time (the registry reads this file); numpy is
imported when a component runs.
"""

from __future__ import annotations

import io
import logging
import time
from pathlib import Path
from typing import Any, ClassVar

from ..files import inside, outside_file, write_atomic
from ..types import FLModel, ReturnCode, RunContext, Signal
from .base import Executor, ModelLocator, ModelPersistor, Widget, site_logger

log = logging.getLogger(__name__)

#: The key of the one array of a NumPy model (FLARE's ``NPConstants.NUMPY_KEY``).
NUMPY_KEY = "numpy_key"
#: The model name NPModelLocator offers cross-site evaluation (FLARE's ``SERVER_MODEL_NAME``).
SERVER_MODEL_NAME = "server"




def _load(path: Path) -> Any:
    import numpy as np

    return np.load(path, allow_pickle=False)


def _save(path: Path, array: Any) -> None:
    import numpy as np

    buffer = io.BytesIO()
    np.save(buffer, np.asarray(array), allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, buffer.getvalue())


def _wait(seconds: float, abort_signal: Signal) -> bool:
    """Sleep ``seconds`` in half-second steps (FLARE's mock work); False once aborted."""
    waited = 0.0
    while waited < seconds:
        if abort_signal.triggered:
            return False
        time.sleep(0.5)
        waited += 0.5
    return not abort_signal.triggered


class NPModelPersistor(ModelPersistor):
    """FLARE's ``NPModelPersistor``: the global model as one ``.npy`` file.

    ``load`` reads ``<run folder>/<model_dir>/<model_name>`` when it is there, else
    starts from ``[[1, 2, 3], [4, 5, 6], [7, 8, 9]]``; ``save`` writes the global model
    there.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "model_dir": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
        "model_name": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
    }

    def __init__(self, model_dir: str = "models", model_name: str = "server.npy",
                 model: list[Any] | None = None, source_ckpt_file_full_name: str | None = None) -> None:
        """
        Args:
            model_dir: folder of the model file, inside the server's run folder.
            model_name: the model file's name.
            model: the initial model as a (nested) list, when no saved model is there
                (FLARE main); the 3×3 default without it.
            source_ckpt_file_full_name: a ``.npy`` file that, when it exists, is the initial
                model before anything else (FLARE main).
        """
        self.model_dir = model_dir
        self.model_name = model_name
        self.model = model
        self.source_ckpt_file_full_name = source_ckpt_file_full_name

    def _path(self, ctx: RunContext) -> Path:
        return inside(inside(ctx.run_dir, self.model_dir), self.model_name)

    def load(self, ctx: RunContext) -> FLModel:
        """The saved model, or FLARE's default 3×3 array."""
        import numpy as np

        path = self._path(ctx)
        source = (outside_file(ctx, self.source_ckpt_file_full_name, "source_ckpt_file_full_name")
                  if self.source_ckpt_file_full_name else None)
        if source is not None and source.is_file():
            path = source
        try:
            data = _load(path)
            site_logger(ctx, log).info("loaded the initial model from %s", path)
        except (OSError, ValueError) as exc:
            fallback = "the configured model" if self.model is not None else "the default array"
            site_logger(ctx, log).info("no model at %s (%s): starting from %s", path, exc, fallback)
            data = (np.asarray(self.model, dtype=np.float32) if self.model is not None
                    else np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32))
        return FLModel(params={NUMPY_KEY: data}, params_type="FULL")

    def save(self, model: FLModel, ctx: RunContext) -> None:
        """Write the global model's ``numpy_key`` array to the model file."""
        if NUMPY_KEY not in model.params:
            site_logger(ctx, log).error("the global model has no %r array: nothing saved", NUMPY_KEY)
            return
        path = self._path(ctx)
        _save(path, model.params[NUMPY_KEY])
        site_logger(ctx, log).info("saved the numpy model to %s", path)

    def model_names(self, ctx: RunContext) -> list[str]:
        """``server`` once the global model is saved."""
        return [SERVER_MODEL_NAME] if self._path(ctx).is_file() else []

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The saved global model as ``server``."""
        if name != SERVER_MODEL_NAME or not self._path(ctx).is_file():
            return None
        return FLModel(params={NUMPY_KEY: _load(self._path(ctx))}, params_type="FULL")


class NPTrainer(Executor):
    """FLARE's ``NPTrainer``: mock training that adds ``delta`` to the model.

    ``train_task_name``: adds ``delta`` to the ``numpy_key`` array, saves the result in
    ``<site run folder>/<model_dir>/<model_name>`` and returns it with
    ``NUM_STEPS_CURRENT_ROUND = 1``; ``submit_model_task_name``: returns the saved
    model. A model without ``numpy_key`` is ``BAD_TASK_DATA``, as in FLARE.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "delta": {"type": "number"},
        "sleep_time": {"minimum": 0},
        "train_task_name": {"minLength": 1},
        "submit_model_task_name": {"minLength": 1},
        "model_name": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
        "model_dir": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
    }

    def __init__(
        self,
        delta: float = 1,
        sleep_time: float = 0,
        train_task_name: str = "train",
        submit_model_task_name: str = "submit_model",
        model_name: str = "best_numpy.npy",
        model_dir: str = "model",
    ) -> None:
        """
        Args:
            delta: what training adds to every weight.
            sleep_time: seconds each task pretends to work.
            train_task_name: the task that trains.
            submit_model_task_name: the task that returns the site's saved model.
            model_name: the file the site keeps its last model in.
            model_dir: that file's folder, inside the site's run folder.
        """
        self.delta = delta
        self.sleep_time = sleep_time
        self.train_task_name = train_task_name
        self.submit_model_task_name = submit_model_task_name
        self.model_name = model_name
        self.model_dir = model_dir

    def _path(self, ctx: RunContext) -> Path:
        return inside(inside(ctx.run_dir, self.model_dir), self.model_name)

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Train or submit the saved model; any other task is ``TASK_UNKNOWN``."""
        if not _wait(self.sleep_time, abort_signal):
            return FLModel.error(ReturnCode.TASK_ABORTED)
        if task_name == self.train_task_name:
            return self._train(data, ctx)
        if task_name == self.submit_model_task_name:
            try:
                return FLModel(params={NUMPY_KEY: _load(self._path(ctx))}, params_type="FULL")
            except (OSError, ValueError) as exc:
                return FLModel.error("EXECUTION_RESULT_ERROR", f"local model not found: {exc}")
        return FLModel.error(ReturnCode.TASK_UNKNOWN,
                             f"unknown task '{task_name}': NPTrainer handles "
                             f"{self.train_task_name}, {self.submit_model_task_name}")

    def _train(self, data: FLModel, ctx: RunContext) -> FLModel:
        import numpy as np

        if data.params_type != "FULL" or NUMPY_KEY not in data.params:
            return FLModel.error("BAD_TASK_DATA",
                                 f"the task data holds no {NUMPY_KEY!r} weights to train")
        trained = np.asarray(data.params[NUMPY_KEY]) + self.delta
        try:
            _save(self._path(ctx), trained)
        except OSError as exc:
            site_logger(ctx, log).error("could not save the local model: %s", exc)
        site_logger(ctx, log).info("round %s: model after training:\n%s", data.meta.get("current_round"), trained)
        return FLModel(params={NUMPY_KEY: trained}, params_type="FULL",
                       meta={"NUM_STEPS_CURRENT_ROUND": 1})


class NPValidator(Executor):
    """FLARE's ``NPValidator``: mock validation, ``accuracy = sum(w / max(w)) + random()``."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "epsilon": {"type": "number"},
        "sleep_time": {"minimum": 0},
        "validate_task_name": {"minLength": 1},
    }

    def __init__(self, epsilon: float = 1, sleep_time: float = 0,
                 validate_task_name: str = "validate") -> None:
        """
        Args:
            epsilon: accepted, as FLARE's (which adds a random number in [0, 1) instead).
            sleep_time: seconds each task pretends to work.
            validate_task_name: the task that validates.
        """
        self.epsilon = epsilon
        self.sleep_time = sleep_time
        self.validate_task_name = validate_task_name

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Score the model in the task data; any other task is ``TASK_UNKNOWN``."""
        import numpy as np

        if not _wait(self.sleep_time, abort_signal):
            return FLModel.error(ReturnCode.TASK_ABORTED)
        if task_name != self.validate_task_name:
            return FLModel.error(ReturnCode.TASK_UNKNOWN,
                                 f"unknown task '{task_name}': NPValidator handles {self.validate_task_name}")
        if NUMPY_KEY not in data.params:
            return FLModel.error("BAD_TASK_DATA", f"the model to validate holds no {NUMPY_KEY!r}")
        weights = np.asarray(data.params[NUMPY_KEY], dtype=np.float64)
        accuracy = float(np.sum(weights / np.max(weights)) + np.random.random())
        site_logger(ctx, log).info("validated the model of %s: accuracy %.4f",
                          data.meta.get("model_owner", "?"), accuracy)
        return FLModel(metrics={"accuracy": accuracy})


class NPModelLocator(ModelLocator):
    """FLARE's ``NPModelLocator``: the server's saved NumPy models for cross-site evaluation.

    ``model_name`` is one file (offered as ``server``) or ``{name: file}``, inside
    ``<server run folder>/<model_dir>``. As in FLARE 2.9, an absolute ``model_dir`` or file is
    a path on the server (``NumpyCrossSiteEvalRecipe``'s pretrained models, such as
    ``/tmp/nvflare/server_pretrain_models``): the file is read as ``.npy``, never unpickled.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "model_dir": {"minLength": 1, "pattern": r"^(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a folder inside the run folder, or an absolute path on the server (no '..')"},
        "model_name": {"anyOf": [{"minLength": 1, "pattern": r"^(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a file inside model_dir, or an absolute path on the server (no '..')"}, {"type": "object", "additionalProperties": {"minLength": 1, "pattern": r"^(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a file inside model_dir, or an absolute path on the server (no '..')"},
                                                 "minProperties": 1}, {"type": "null"}]},
        "model_names": {"anyOf": [{"type": "object", "additionalProperties": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))", "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')"},
                                   "minProperties": 1}, {"type": "null"}]},
    }

    def __init__(self, model_dir: str = "models", model_name: str | dict[str, str] = "server.npy",
                 model_names: dict[str, str] | None = None) -> None:
        """
        Args:
            model_dir: folder of the model files, inside the server's run folder.
            model_name: the global model's file, or ``{name: file}`` for several.
            model_names: ``{name: file}`` (FLARE 2.4's name for the dict form); wins over
                ``model_name``.
        """
        self.model_dir = model_dir
        self.model_name = model_name
        self.model_names = model_names
        chosen = model_names if model_names else model_name
        self._files = ({SERVER_MODEL_NAME: "server.npy"} if chosen is None
                       else {SERVER_MODEL_NAME: chosen} if isinstance(chosen, str)
                       else dict(chosen))

    def get_model_names(self, ctx: RunContext) -> list[str]:
        """The names configured (FLARE offers them whether or not the files exist yet)."""
        return list(self._files)

    def locate_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The model file ``name`` stands for, or None when it is not there."""
        file = self._files.get(name)
        if file is None:
            return None
        folder = Path(self.model_dir)
        path = (outside_file(ctx, file, "model_name") if Path(file).is_absolute()
                else inside(outside_file(ctx, self.model_dir, "model_dir") if folder.is_absolute()
                            else inside(ctx.run_dir, self.model_dir), file))
        try:
            return FLModel(params={NUMPY_KEY: _load(path)}, params_type="FULL")
        except (OSError, ValueError) as exc:
            site_logger(ctx, log).error("cannot load the numpy model %s from %s: %s", name, path, exc)
            return None


class NPFormatter(Widget):
    """FLARE's ``NPFormatter``, accepted where cross-site evaluation names it: flconfig's
    CrossSiteModelEval writes its results as JSON itself (``cross_val_results.json``)."""

    kind = "formatter"
