"""PTFileModelPersistor: loads and saves a PyTorch global model as files."""

from __future__ import annotations

import json
import logging
import math
import re
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..files import inside
from ..types import Event, EventType, FLModel, RunContext
from .base import (
    AppEventType,
    Filter,
    ModelPersistor,
    lookup_component,
    state_mismatch,
    write_atomic,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Meta key holding a model's validation metric (higher is better).
VALIDATION_METRIC_KEY = "validation_metric"


class PTFileModelPersistor(ModelPersistor):
    """Provides the initial global model and saves the global model (and the best
    one) under the server's run directory (FLARE's ``PTFileModelPersistor``).

    **File format: safetensors, never pickle.** The saved files keep FLARE's
    names (``FL_global_model.pt``, ``best_FL_global_model.pt``) but hold
    safetensors data: read them with ``safetensors.torch.load_file`` (not
    ``torch.load``) and load the result with ``model.load_state_dict``. Each
    file is written to a temporary file first and renamed into place, so a
    reader never sees half a model. ``source_ckpt_file_full_name`` may be a
    ``.safetensors`` file or a PyTorch checkpoint, which is read with
    ``torch.load(weights_only=True)``: tensors only, nothing is unpickled
    into arbitrary objects.

    The best model is saved when the workflow reports that the global model
    it sent validated better than any before (the
    ``_global_best_model_available`` event, carrying that model with
    ``meta["validation_metric"]``; ScatterAndGather fires it from the
    ``initial_metrics`` the sites return), or when :meth:`save` is given a
    model whose ``meta["validation_metric"]`` beats the best so far.
    """

    REFERENCES: ClassVar[dict[str, str]] = {"model": "model"}
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "model": {
            "description": "a nested component spec building the model, or the id of a model component",
            "anyOf": [{"type": "object"}, {"type": "string", "minLength": 1}, {"type": "null"}],
        },
        "exclude_vars": {"format": "regex"},
        "global_model_file_name": {
            "minLength": 1,
            "pattern": r"^(?!\.\.?$)[^/\\]+$",
            "patternErrorMessage": "a file name without a folder",
        },
        "best_global_model_file_name": {
            "minLength": 1,
            "pattern": r"^(?!\.\.?$)[^/\\]+$",
            "patternErrorMessage": "a file name without a folder",
        },
        "source_ckpt_file_full_name": {"minLength": 1},
        "filter_id": {"minLength": 1},
        "load_weights_only": {
            "enum": [True],
            "description": "must stay true: flconfig reads tensors only and never unpickles a checkpoint",
        },
    }

    def __init__(
        self,
        exclude_vars: str | None = None,
        model: torch.nn.Module | str | None = None,
        global_model_file_name: str = "FL_global_model.pt",
        best_global_model_file_name: str = "best_FL_global_model.pt",
        source_ckpt_file_full_name: str | None = None,
        filter_id: str | None = None,
        load_weights_only: bool = True,
        allow_numpy_conversion: bool = True,
        load_device: str | None = None,
    ) -> None:
        """
        Args:
            exclude_vars: regular expression of parameter names not loaded from
                or saved to the files.
            model: the model; a nested component spec (built first, into an
                ``nn.Module``) or the id of a component of kind ``model``,
                looked up when the run starts.
            global_model_file_name: file name of the saved global model.
            best_global_model_file_name: file name of the best global model.
            source_ckpt_file_full_name: checkpoint file to start from instead of
                the model's initial weights: a safetensors file, or a PyTorch
                state dict read with ``torch.load(weights_only=True)``.
            filter_id: id of a filter applied to the model when it is saved
                and loaded.
            load_weights_only: FLARE's switch for unpickling whole checkpoints.
                flconfig always reads tensors only; ``false`` is refused.
            allow_numpy_conversion: accepted for FLARE's configs: flconfig sends
                weights as safetensors either way, so it changes nothing.
            load_device: accepted for FLARE's configs: the server holds its
                models on the CPU.
        """
        if load_weights_only is False:
            raise ValueError(
                "PTFileModelPersistor: load_weights_only false would unpickle the checkpoint, "
                "which can run code; flconfig reads tensors only (save the checkpoint as a "
                "state dict or in safetensors)")
        self.load_weights_only = load_weights_only
        self.allow_numpy_conversion = allow_numpy_conversion
        self.load_device = load_device
        self.exclude_vars = exclude_vars
        self.model = _check_model(model)
        self.global_model_file_name = global_model_file_name
        self.best_global_model_file_name = best_global_model_file_name
        self.source_ckpt_file_full_name = source_ckpt_file_full_name
        self.filter_id = filter_id
        self._exclude = re.compile(exclude_vars) if exclude_vars else None
        self._best_metric: float | None = None

    # -- events ---------------------------------------------------------------------

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Resolve a ``model`` id at START_RUN; save the best model when one is announced."""
        if event.type == EventType.START_RUN:
            self._module(ctx)
        elif event.type == AppEventType.GLOBAL_BEST_MODEL_AVAILABLE:
            model = event.data if isinstance(event.data, FLModel) else None
            if model is None:
                model = getattr(ctx, "props", {}).get("global_model")
            if isinstance(model, FLModel) and model.params:
                self._save_best(model, ctx)

    # -- loading --------------------------------------------------------------------

    def load(self, ctx: RunContext) -> FLModel:
        """The initial global model as numpy arrays (``params_type`` FULL).

        From ``source_ckpt_file_full_name`` when given (checked against the
        model's parameter names and shapes when there is a model), otherwise
        from the model's ``state_dict``. Parameters matching ``exclude_vars``
        are left out. With neither a model nor a checkpoint the model is
        empty. Raises JobError for a missing or unreadable checkpoint.
        """
        module = self._module(ctx)
        if self.source_ckpt_file_full_name:
            params = _read_checkpoint(Path(self.source_ckpt_file_full_name).expanduser())
            if module is not None:
                _check_fits(params, module, self.source_ckpt_file_full_name)
            source = self.source_ckpt_file_full_name
        elif module is not None:
            params = {name: value for name, value in module.state_dict().items()}
            source = type(module).__name__
        else:
            _logger(ctx).warning(
                "persistor %r has neither a model nor source_ckpt_file_full_name: "
                "the initial global model is empty",
                self.id,
            )
            return FLModel(params_type="FULL")
        model = FLModel(
            params={n: _to_numpy(v) for n, v in params.items() if not self._excluded(n)},
            meta={"source": source},
            params_type="FULL",
        )
        return self._filtered(model, ctx)

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """A saved model by file name (one of :meth:`model_names`), or None."""
        if name not in self.model_names(ctx):
            return None
        path = Path(ctx.run_dir) / name
        params, metadata = _read_safetensors(path)
        meta: dict[str, Any] = {"source": str(path)}
        if VALIDATION_METRIC_KEY in metadata:
            try:
                meta[VALIDATION_METRIC_KEY] = float(metadata[VALIDATION_METRIC_KEY])
            except ValueError:
                pass
        return FLModel(params=params, meta=meta, params_type="FULL")

    def model_names(self, ctx: RunContext) -> list[str]:
        """File names of the models saved so far: the global model, then the best one."""
        names = [self.global_model_file_name, self.best_global_model_file_name]
        return [name for name in names if inside(ctx.run_dir, name).is_file()]

    # -- saving ---------------------------------------------------------------------

    def save(self, model: FLModel, ctx: RunContext) -> None:
        """Write ``model`` to ``ctx.run_dir / global_model_file_name`` (safetensors, atomically).

        Also writes ``best_global_model_file_name`` when
        ``model.meta["validation_metric"]`` is higher than any seen before.
        """
        model = self._filtered(model, ctx)
        path = inside(ctx.run_dir, self.global_model_file_name)
        self._write(path, model)
        _logger(ctx).info("saved the global model to %s", path)
        metric = _metric(model)
        if metric is not None and (self._best_metric is None or metric > self._best_metric):
            self._save_best(model, ctx, filtered=True)

    def _save_best(self, model: FLModel, ctx: RunContext, *, filtered: bool = False) -> None:
        metric = _metric(model)
        if metric is not None:
            if self._best_metric is not None and metric <= self._best_metric:
                return
            self._best_metric = metric
        if not filtered:
            model = self._filtered(model, ctx)
        path = inside(ctx.run_dir, self.best_global_model_file_name)
        self._write(path, model)
        _logger(ctx).info(
            "saved the best global model (validation metric %s) to %s",
            "unknown" if metric is None else f"{metric:.4g}",
            path,
        )

    def _write(self, path: Path, model: FLModel) -> None:
        params = {n: v for n, v in model.params.items() if not self._excluded(n)}
        metadata = {"format": "flconfig.global_model", "params_type": model.params_type}
        for key in ("current_round", VALIDATION_METRIC_KEY):
            value = model.meta.get(key)
            if isinstance(value, (int, float)) and not isinstance(value, bool):
                metadata[key] = json.dumps(value)
        write_atomic(path, _safetensors_bytes(params, metadata))

    # -- helpers --------------------------------------------------------------------

    def _excluded(self, name: str) -> bool:
        return self._exclude is not None and self._exclude.search(name) is not None

    def _module(self, ctx: RunContext) -> Any:
        """The model as an nn.Module-like object (resolving a component id), or None."""
        if isinstance(self.model, str):
            component = ctx.get_component(self.model)
            if component is None:
                raise JobError(
                    f"persistor {self.id or type(self).__name__}: model '{self.model}' names no "
                    "component; add a model component with that id or give 'model' as a spec"
                )
            if not callable(getattr(component, "state_dict", None)):
                raise JobError(
                    f"persistor {self.id or type(self).__name__}: model '{self.model}' names a "
                    f"{type(component).__name__}, which has no state_dict (not a torch model)"
                )
            self.model = component
        return self.model

    def _filtered(self, model: FLModel, ctx: RunContext) -> FLModel:
        if not self.filter_id:
            return model
        owner = f"persistor {self.id or type(self).__name__}"
        flt = lookup_component(ctx, owner, "filter_id", self.filter_id, Filter)
        result = flt.process(model, ctx)
        if not isinstance(result, FLModel):
            raise JobError(
                f"{owner}: filter '{self.filter_id}' returned a {type(result).__name__}, "
                "not an FLModel"
            )
        return result


def _check_model(model: Any) -> Any:
    # The schema allows a spec (built before the constructor sees it), an id or None; this
    # checks what the spec built, by duck type: importing torch here would put it on the
    # validate path.
    if model is None or isinstance(model, str):
        return model
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(
            f"model must be a torch.nn.Module or the id of a model component, got {type(model).__name__}"
        )
    return model


def _logger(ctx: RunContext) -> logging.Logger:
    return getattr(ctx, "log", None) or log


def _metric(model: FLModel) -> float | None:
    value = model.meta.get(VALIDATION_METRIC_KEY)
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _to_numpy(value: Any) -> Any:
    """A tensor as a fresh numpy array; dtypes numpy lacks (bf16, fp8) stay CPU tensors."""
    if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
        tensor = value.detach().to("cpu", copy=True)
        try:
            return tensor.numpy()
        except TypeError:  # no numpy dtype for it
            return tensor
    import numpy as np

    return np.array(value, copy=True)


def _read_checkpoint(path: Path) -> dict[str, Any]:
    """Tensors by name from a ``.safetensors`` file or a weights-only PyTorch checkpoint."""
    if not path.is_file():
        raise JobError(f"source_ckpt_file_full_name: no such file {path}")
    if _looks_like_safetensors(path):  # by content: our own ".pt" outputs are safetensors
        return _read_safetensors(path)[0]
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(
            f"source_ckpt_file_full_name: cannot read {path} as a weights-only PyTorch "
            f"checkpoint ({first_line}); flconfig never unpickles arbitrary objects: save "
            "the model's state_dict (torch.save(model.state_dict(), ...)) or a .safetensors file"
        ) from None
    # FLARE's own checkpoints wrap the state dict: {"model": state_dict, "train_conf": ...}.
    if isinstance(data, Mapping) and isinstance(data.get("model"), Mapping):
        data = data["model"]
    if not isinstance(data, Mapping) or not data:
        raise JobError(
            f"source_ckpt_file_full_name: {path} holds a {type(data).__name__}, not a "
            "state dict (a non-empty mapping of parameter names to tensors)"
        )
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise JobError(
            f"source_ckpt_file_full_name: {path} is not a plain state dict; "
            f"these entries are not named tensors: {', '.join(bad[:5])}"
        )
    return dict(data)


def _looks_like_safetensors(path: Path) -> bool:
    """A safetensors file starts with an 8-byte header length, then a JSON object."""
    with open(path, "rb") as f:
        head = f.read(9)
    return len(head) == 9 and head[8:9] == b"{" and int.from_bytes(head[:8], "little") > 1


def _check_fits(params: Mapping[str, Any], module: Any, source: str) -> None:
    mismatch = state_mismatch(module.state_dict(), params)
    if mismatch:
        raise JobError(
            f"source_ckpt_file_full_name: {source} does not fit the model "
            f"{type(module).__name__}: {mismatch}"
        )


def _read_safetensors(path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Params (numpy where numpy has the dtype) and metadata of a safetensors file."""
    from safetensors import SafetensorError, safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            metadata = f.metadata() or {}
            params = {name: _to_numpy(f.get_tensor(name)) for name in f.keys()}
    except (SafetensorError, OSError, ValueError) as exc:
        raise JobError(f"cannot read {path} as a safetensors file: {exc}") from None
    return params, metadata


def _safetensors_bytes(params: Mapping[str, Any], metadata: dict[str, str]) -> bytes:
    import numpy as np
    import torch
    from safetensors.torch import save

    # Private copies: safetensors refuses tensors that share memory (tied
    # weights, views), and read-only numpy buffers cannot back a tensor.
    tensors: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        if type(value).__module__.startswith("torch") and hasattr(value, "detach"):
            tensors[name] = value.detach().to("cpu", copy=True).contiguous()
            continue
        array = np.asarray(value)
        if array.dtype.kind not in "biufc":
            raise JobError(f"persistor: params[{name!r}] has dtype {array.dtype}, not a number")
        tensors[name] = torch.from_numpy(np.array(array, copy=True, order="C"))
    return save(tensors, metadata=metadata)
