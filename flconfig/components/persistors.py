"""PTFileModelPersistor: loads and saves a PyTorch global model as files."""

from __future__ import annotations

import json
import logging
import math
import re
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..files import inside, outside_file
from ..types import Event, EventType, FLModel, RunContext, is_torch_tensor
from .base import (
    AppEventType,
    Filter,
    ModelPersistor,
    lookup_component,
    site_logger,
    state_mismatch,
    write_atomic,
)

if TYPE_CHECKING:
    import torch

log = logging.getLogger(__name__)

#: Meta key holding a model's validation metric (higher is better).
VALIDATION_METRIC_KEY = "validation_metric"
#: The keys of FLARE's PyTorch checkpoint dict (``PTModelPersistenceFormatManager``'s).
CHECKPOINT_MODEL, CHECKPOINT_META, CHECKPOINT_TRAIN_CONF = "model", "meta_props", "train_conf"


class PTFileModelPersistor(ModelPersistor):
    """Provides the initial global model and saves the global model (and the best
    one) under the server's run directory (FLARE's ``PTFileModelPersistor``).

    **File format: PyTorch's own, as FLARE 2.9 writes it.** ``FL_global_model.pt``
    and ``best_FL_global_model.pt`` hold ``torch.save`` of a dict
    ``{"model": OrderedDict(name -> tensor), "meta_props": {...}, "train_conf":
    {"train": {"model": "<model class>"}}}`` with nothing but tensors and plain
    values in it, so ``torch.load(path, weights_only=True)`` reads them (no
    arbitrary unpickling) and ``model.load_state_dict(ckpt["model"])`` loads
    them, as FLARE's own locators and users' notebooks do. ``meta_props`` holds
    the model's plain meta values (``current_round``, ``validation_metric`` for
    the best model ...). Each file is written to a temporary file first and
    renamed into place, so a reader never sees half a model. A file name ending
    in ``.safetensors`` is written as safetensors instead (its metadata holds
    the same meta values, as JSON).

    Every file is read with ``torch.load(weights_only=True)``: a dict with a
    ``"model"`` key (FLARE's checkpoint; its ``train_conf`` and other keys are
    kept in the files saved later) or a plain state dict, or a safetensors
    file (by content: the ``.pt`` files earlier flconfig versions wrote are
    safetensors). ``source_ckpt_file_full_name`` is read the same way.

    The best model is saved when the workflow reports that the global model
    it sent validated better than any before (the
    ``_global_best_model_available`` event, carrying that model with
    ``meta["validation_metric"]``; ScatterAndGather fires it from the
    ``initial_metrics`` the sites return), or when :meth:`save` is given a
    model whose ``meta["validation_metric"]`` beats the best so far.

    ``allow_numpy_conversion`` (FLARE's switch): true (the default) gives the
    workflow numpy arrays; false keeps torch tensors from the model or the
    checkpoint to the sites and back (``server_expected_format = "pytorch"``).
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
                the model's initial weights: a PyTorch checkpoint read with
                ``torch.load(weights_only=True)`` (FLARE's ``{"model": ...}`` dict or a
                plain state dict), or a safetensors file.
            filter_id: id of a filter applied to the model when it is saved
                and loaded.
            load_weights_only: FLARE's switch for unpickling whole checkpoints.
                flconfig always reads tensors only; ``false`` is refused.
            allow_numpy_conversion: true: the workflow gets numpy arrays; false: torch
                tensors, kept so to the sites and back (FLARE's switch).
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
        #: what a FLARE checkpoint read at start holds besides the model: kept in the saved files
        self._kept: dict[str, Any] = {}

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
            path = outside_file(ctx, self.source_ckpt_file_full_name, "source_ckpt_file_full_name")
            if not path.is_file():
                raise JobError(f"source_ckpt_file_full_name: no such file {path}")
            checkpoint = read_model_file(path, "source_ckpt_file_full_name")
            params = checkpoint.params
            self._kept = checkpoint.kept
            if module is not None:
                _check_fits(params, module, self.source_ckpt_file_full_name)
            source = self.source_ckpt_file_full_name
        elif module is not None:
            params = {name: value for name, value in module.state_dict().items()}
            source = type(module).__name__
        else:
            site_logger(ctx, log).warning(
                "persistor %r has neither a model nor source_ckpt_file_full_name: "
                "the initial global model is empty",
                self.id,
            )
            return FLModel(params_type="FULL")
        model = FLModel(
            params={n: self._converted(v) for n, v in params.items() if not self._excluded(n)},
            meta={"source": source},
            params_type="FULL",
        )
        return self._filtered(model, ctx)

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """A saved model by file name (one of :meth:`model_names`), or None."""
        if name not in self.model_names(ctx):
            return None
        path = Path(ctx.run_dir) / name
        saved = read_model_file(path, "persistor")
        meta: dict[str, Any] = {"source": str(path)}
        metric = saved.meta.get(VALIDATION_METRIC_KEY)
        if isinstance(metric, (int, float)) and not isinstance(metric, bool):
            meta[VALIDATION_METRIC_KEY] = float(metric)
        params = {n: self._converted(v) for n, v in saved.params.items()}
        return FLModel(params=params, meta=meta, params_type="FULL")

    def model_names(self, ctx: RunContext) -> list[str]:
        """File names of the models saved so far: the global model, then the best one."""
        names = [self.global_model_file_name, self.best_global_model_file_name]
        return [name for name in names if inside(ctx.run_dir, name).is_file()]

    # -- saving ---------------------------------------------------------------------

    def save(self, model: FLModel, ctx: RunContext) -> None:
        """Write ``model`` to ``ctx.run_dir / global_model_file_name`` (atomically; see the class).

        Also writes ``best_global_model_file_name`` when
        ``model.meta["validation_metric"]`` is higher than any seen before.
        """
        model = self._filtered(model, ctx)
        path = inside(ctx.run_dir, self.global_model_file_name)
        self._write(path, model)
        site_logger(ctx, log).info("saved the global model to %s", path)
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
        site_logger(ctx, log).info(
            "saved the best global model (validation metric %s) to %s",
            "unknown" if metric is None else f"{metric:.4g}",
            path,
        )

    def _write(self, path: Path, model: FLModel) -> None:
        params = {n: v for n, v in model.params.items() if not self._excluded(n)}
        meta = plain_meta(model.meta)
        if path.suffix == ".safetensors":
            metadata = {"format": "flconfig.global_model", "params_type": model.params_type}
            metadata.update({k: json.dumps(v) for k, v in meta.items()})
            write_atomic(path, _safetensors_bytes(params, metadata))
            return
        module = self.model if self.model is not None and not isinstance(self.model, str) else None
        train_conf = {"train": {"model": type(module).__name__}} if module is not None else None
        write_atomic(path, checkpoint_bytes(params, meta, train_conf, self._kept))

    def _converted(self, value: Any) -> Any:
        """A parameter read from a model or a file, as the workflow gets it: a numpy array,
        or (``allow_numpy_conversion`` false) a CPU tensor of its own."""
        if self.allow_numpy_conversion:
            return _to_numpy(value)
        return _to_tensor(value)

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


@dataclass
class ModelFile:
    """What a model file holds: its parameters (as read: tensors, or numpy arrays from a
    safetensors file), its plain meta values, and (a FLARE checkpoint) its other keys."""

    params: dict[str, Any]
    meta: dict[str, Any] = field(default_factory=dict)
    kept: dict[str, Any] = field(default_factory=dict)


def read_model_file(path: Path, what: str) -> ModelFile:
    """A model file as FLARE's ``PTFileModelPersistor`` reads one, never unpickling objects:
    ``torch.load(weights_only=True)`` of a checkpoint dict with a ``"model"`` key (its
    ``meta_props`` as the meta, its ``train_conf`` and other keys kept) or of a plain state
    dict; or a safetensors file (told by its content, whatever its name). ``what`` names the
    reader in the JobError a bad file raises."""
    if _looks_like_safetensors(path):
        params, metadata = _read_safetensors(path)
        meta: dict[str, Any] = {}
        for key, text in metadata.items():
            if key in ("format", "params_type"):
                continue
            try:
                meta[key] = json.loads(text)
            except ValueError:
                meta[key] = text
        return ModelFile(params, meta)
    import pickle

    import torch

    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except (pickle.UnpicklingError, RuntimeError, EOFError, ValueError, OSError) as exc:
        first_line = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise JobError(
            f"{what}: cannot read {path} as a weights-only PyTorch checkpoint ({first_line}); "
            "flconfig never unpickles arbitrary objects: save the model's state_dict "
            "(torch.save(model.state_dict(), ...)) or a .safetensors file"
        ) from None
    meta = {}
    kept: dict[str, Any] = {}
    if isinstance(data, Mapping) and isinstance(data.get(CHECKPOINT_MODEL), Mapping):
        meta_props = data.get(CHECKPOINT_META)
        meta = dict(meta_props) if isinstance(meta_props, Mapping) else {}
        kept = {k: v for k, v in data.items() if k not in (CHECKPOINT_MODEL, CHECKPOINT_META)}
        data = data[CHECKPOINT_MODEL]
    if not isinstance(data, Mapping) or not data:
        raise JobError(
            f"{what}: {path} holds a {type(data).__name__}, not a state dict (a non-empty "
            "mapping of parameter names to tensors) nor FLARE's {'model': state_dict} checkpoint"
        )
    bad = [str(k) for k, v in data.items() if not isinstance(k, str) or not torch.is_tensor(v)]
    if bad:
        raise JobError(
            f"{what}: {path} is not a plain state dict; "
            f"these entries are not named tensors: {', '.join(bad[:5])}"
        )
    return ModelFile(dict(data), meta, kept)


def checkpoint_bytes(params: Mapping[str, Any], meta: Mapping[str, Any],
                     train_conf: Mapping[str, Any] | None, kept: Mapping[str, Any]) -> bytes:
    """``torch.save`` of FLARE 2.9's checkpoint dict: ``{"model": OrderedDict of CPU tensors,
    "meta_props": meta, "train_conf": ...}`` plus the ``kept`` keys of the checkpoint the
    model started from (its own ``train_conf`` wins). Raises JobError for a parameter that
    is not numbers."""
    import io

    import torch

    tensors: OrderedDict[str, Any] = OrderedDict()
    for name, value in params.items():
        tensors[name] = _to_tensor(value, name)
    checkpoint: OrderedDict[str, Any] = OrderedDict()
    checkpoint[CHECKPOINT_MODEL] = tensors
    checkpoint[CHECKPOINT_META] = dict(meta)
    if train_conf is not None and CHECKPOINT_TRAIN_CONF not in kept:
        checkpoint[CHECKPOINT_TRAIN_CONF] = dict(train_conf)
    checkpoint.update(kept)
    buffer = io.BytesIO()
    torch.save(checkpoint, buffer)
    return buffer.getvalue()


def plain_meta(meta: Mapping[str, Any]) -> dict[str, Any]:
    """The entries of a model's meta that are plain values (numbers, strings, booleans, None,
    and lists and str-keyed dicts of them), as Python's own types (a numpy scalar becomes a
    number): what ``weights_only`` loading accepts besides tensors. Arrays (SCAFFOLD's
    control terms) and other objects are left out."""
    skip = object()

    def plain(value: Any, depth: int = 0) -> Any:
        if value is None or type(value) in (bool, int, float, str):
            return value
        if isinstance(value, (bool, int, float, str)):  # subclasses (np.float64, IntEnum): the base type
            return next(t(value) for t in (bool, int, float, str) if isinstance(value, t))
        if type(value).__module__ == "numpy" and getattr(value, "ndim", None) == 0 and value.dtype.kind in "biuf":
            return value.item()
        if depth > 32:
            return skip
        if isinstance(value, (list, tuple)):
            items = [plain(v, depth + 1) for v in value]
            return skip if any(v is skip for v in items) else items
        if isinstance(value, dict):
            pairs = {k: plain(v, depth + 1) for k, v in value.items()}
            return skip if any(not isinstance(k, str) or v is skip for k, v in pairs.items()) else pairs
        return skip

    out: dict[str, Any] = {}
    for key, value in meta.items():
        converted = plain(value)
        if converted is not skip:
            out[str(key)] = converted
    return out


def _to_tensor(value: Any, name: str = "") -> Any:
    """A parameter as a CPU tensor with storage of its own (a view of a bigger tensor would
    save the whole of it; a read-only numpy array cannot back a tensor)."""
    import numpy as np
    import torch

    if is_torch_tensor(value):
        return value.detach().to("cpu").clone(memory_format=torch.contiguous_format)
    array = np.asarray(value)
    if array.dtype.kind not in "biufc":
        raise JobError(f"persistor: params[{name!r}] has dtype {array.dtype}, not a number")
    return torch.from_numpy(np.array(array, copy=True, order="C"))


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
    from safetensors.torch import save

    # Private copies: safetensors refuses tensors that share memory (tied weights, views).
    return save({name: _to_tensor(value, name) for name, value in params.items()}, metadata=metadata)
