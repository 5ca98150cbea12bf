"""PTFedOptModelShareableGenerator: FedOpt, the global model updated by a server-side torch optimizer."""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from ..errors import JobError
from ..types import Event, EventType, FLModel, ReturnCode, RunContext, is_torch_tensor
from .base import site_logger
from .shareable_generators import GLOBAL_MODEL_PROP, FullModelShareableGenerator, add_difference

log = logging.getLogger(__name__)

#: The modules an ``optimizer_args`` / ``lr_scheduler_args`` class may come from.
OPTIMIZER_MODULE = "torch.optim"
SCHEDULER_MODULE = "torch.optim.lr_scheduler"


class PTFedOptModelShareableGenerator(FullModelShareableGenerator):
    """FedOpt (Reddi et al., "Adaptive federated optimization", 2020): the aggregated
    weight difference is the negative gradient of a torch optimizer on the server
    (FLARE's ``PTFedOptModelShareableGenerator``).

    Each round the server's copy of ``source_model`` takes the current global weights,
    every trainable parameter the difference holds gets ``grad = -diff``, and the
    optimizer (``optimizer_args``, SGD with lr 1.0 by default, which is FedAvg) takes
    one step, then the learning-rate scheduler (``lr_scheduler_args``) if any. Entries
    of the difference that are not trainable parameters (batch-norm statistics) are
    added to the global model as FedAvg does. The next global model keeps the current
    one's representation (numpy arrays, or tensors).

    ``optimizer_args`` and ``lr_scheduler_args`` are FLARE's dicts ``{"path":
    "torch.optim.SGD", "args": {...}}`` (``class_path`` or ``name`` also name the class;
    with both ``path`` and ``class_path``, as FLARE 2.9's recipe writes them, ``path`` wins;
    ``"config_type": "dict"`` may be there or not);
    the class must be one of ``torch.optim`` (the scheduler one of
    ``torch.optim.lr_scheduler``), so a config runs no other code through them.
    Aggregated results must be weight differences (``WEIGHT_DIFF``; the aggregator's
    default).
    """

    REFERENCES: ClassVar[dict[str, str]] = {"source_model": "model"}
    #: FLARE exports the default optimizer spec without ``"config_type": "dict"`` (§1.4 of its
    #: job API); both args are the generator's plain dicts, never components to build.
    PLAIN_DICT_ARGS: ClassVar[list[str]] = ["optimizer_args", "lr_scheduler_args"]
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "optimizer_args": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string", "pattern": r"^(torch\.optim\.)?[A-Z][A-Za-z0-9_]*$",
                                 "patternErrorMessage": "a torch.optim optimizer class, such as torch.optim.SGD"},
                        "class_path": {"type": "string", "pattern": r"^(torch\.optim\.)?[A-Z][A-Za-z0-9_]*$",
                                       "patternErrorMessage": "a torch.optim optimizer class, such as torch.optim.SGD"},
                        "name": {"type": "string", "pattern": r"^[A-Z][A-Za-z0-9_]*$",
                                 "patternErrorMessage": "a torch.optim optimizer class name, such as SGD"},
                        "args": {"type": "object", "not": {"required": ["params"]}},
                        "config_type": {"enum": ["dict"]},
                    },
                    "additionalProperties": False,
                },
            ],
        },
        "lr_scheduler_args": {
            "anyOf": [
                {"type": "null"},
                {
                    "type": "object",
                    "properties": {
                        "path": {"type": "string",
                                 "pattern": r"^(torch\.optim\.lr_scheduler\.)?[A-Z][A-Za-z0-9_]*$",
                                 "patternErrorMessage": "a torch.optim.lr_scheduler class, such as "
                                                        "torch.optim.lr_scheduler.CosineAnnealingLR"},
                        "class_path": {"type": "string",
                                       "pattern": r"^(torch\.optim\.lr_scheduler\.)?[A-Z][A-Za-z0-9_]*$",
                                       "patternErrorMessage": "a torch.optim.lr_scheduler class"},
                        "name": {"type": "string", "pattern": r"^[A-Z][A-Za-z0-9_]*$",
                                 "patternErrorMessage": "a torch.optim.lr_scheduler class name"},
                        "args": {"type": "object", "not": {"required": ["optimizer"]}},
                        "config_type": {"enum": ["dict"]},
                    },
                    "additionalProperties": False,
                },
            ],
        },
        "source_model": {"type": "string", "minLength": 1,
                         "description": "the id of the torch model component the optimizer updates"},
        "device": {"type": ["string", "null"], "minLength": 1},
    }

    def __init__(
        self,
        optimizer_args: dict | None = None,
        lr_scheduler_args: dict | None = None,
        source_model: str = "model",
        device: str | None = None,
    ) -> None:
        """
        Args:
            optimizer_args: the server's optimizer, ``{"path": "torch.optim.SGD",
                "args": {"lr": 1.0}}`` (the default: plain FedAvg).
            lr_scheduler_args: a learning-rate scheduler stepped every round, such as
                ``{"path": "torch.optim.lr_scheduler.CosineAnnealingLR", "args": {"T_max": 100}}``.
            source_model: the id of the torch model component whose trainable
                parameters the optimizer updates (the persistor's model).
            device: where the server optimizes, such as ``"cpu"``; by default
                ``cuda:0`` when CUDA is available, else the CPU (as FLARE).
        """
        default = {"path": "torch.optim.SGD", "args": {"lr": 1.0}}
        self.optimizer_args: dict[str, Any] = dict(optimizer_args) if optimizer_args else default
        self.lr_scheduler_args = dict(lr_scheduler_args) if lr_scheduler_args is not None else None
        self.source_model = source_model
        self.device = device
        self._optimizer: Any = None
        self._scheduler: Any = None
        self._module: Any = None
        self._device: Any = None

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Build the optimizer (and scheduler) over the model's parameters when the run starts."""
        if event.type == EventType.START_RUN:
            self._start(ctx)

    def _start(self, ctx: RunContext) -> None:
        import torch

        module = ctx.get_component(self.source_model) if isinstance(self.source_model, str) else self.source_model
        if module is None:
            raise JobError(f"{self._owner()}: source_model '{self.source_model}' names no component; "
                           "add the torch model component with that id")
        if not isinstance(module, torch.nn.Module):
            raise JobError(f"{self._owner()}: source_model '{self.source_model}' is a "
                           f"{type(module).__name__}, not a torch.nn.Module")
        device = torch.device(self.device or ("cuda:0" if torch.cuda.is_available() else "cpu"))
        # A copy of its own: the persistor's model must not move or change under it.
        import copy

        self._module = copy.deepcopy(module).to(device)
        self._device = device
        optimizer_cls = _torch_class(self.optimizer_args, torch.optim, OPTIMIZER_MODULE, self._owner(),
                                     "optimizer_args")
        self._optimizer = optimizer_cls(self._module.parameters(), **dict(self.optimizer_args.get("args") or {}))
        if self.lr_scheduler_args is not None:
            scheduler_cls = _torch_class(self.lr_scheduler_args, torch.optim.lr_scheduler, SCHEDULER_MODULE,
                                         self._owner(), "lr_scheduler_args")
            self._scheduler = scheduler_cls(self._optimizer, **dict(self.lr_scheduler_args.get("args") or {}))

    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        """The next global model: one optimizer step along the aggregated difference.

        Raises JobError for a failed aggregate, a result that is not a weight
        difference, or a difference that does not fit the model.
        """
        import torch

        if aggregated.rc != ReturnCode.OK:
            raise JobError(f"{self._owner()}: the aggregate has return code {aggregated.rc}"
                           f" ({aggregated.meta.get('error', 'no message')})")
        if aggregated.params_type != "DIFF":
            raise JobError(
                f"{self._owner()}: FedOpt updates the model from weight differences, but the "
                f"aggregate holds {aggregated.params_type} weights: have the sites send "
                "WEIGHT_DIFF (params_transfer_type DIFF) and keep the aggregator's "
                "expected_data_kind WEIGHT_DIFF")
        if self._optimizer is None:
            self._start(ctx)
        current = getattr(ctx, "props", {}).get(GLOBAL_MODEL_PROP)
        base: dict[str, Any] = dict(current.params) if isinstance(current, FLModel) else {}
        as_torch = any(is_torch_tensor(v) for v in (base or aggregated.params).values())
        module = self._module
        state = module.state_dict()
        with torch.no_grad():  # the server model starts from the current global weights
            for name, value in base.items():
                if name in state:
                    state[name].copy_(_tensor(value, name, tuple(state[name].shape), self._owner()))
        module.train()
        self._optimizer.zero_grad()
        stepped = []
        for name, param in module.named_parameters():
            if name in aggregated.params:
                diff = _tensor(aggregated.params[name], name, tuple(param.shape), self._owner())
                param.grad = (-diff).to(device=param.device, dtype=param.dtype)
                stepped.append(name)
        self._optimizer.step()
        if self._scheduler is not None:
            self._scheduler.step()
        out: dict[str, Any] = dict(base)
        for name, value in module.state_dict().items():
            tensor = value.detach().cpu().clone()
            out[name] = tensor if as_torch else tensor.numpy()
        averaged = 0
        for name, diff in aggregated.params.items():
            if name in stepped:
                continue
            if name not in base and name not in out:
                raise JobError(f"{self._owner()}: the aggregated difference has parameter {name!r}, "
                               "which neither the global model nor source_model has")
            start = base.get(name, out[name])
            out[name] = add_difference(name, start, diff)
            averaged += 1
        lr = self._optimizer.param_groups[-1]["lr"]
        site_logger(ctx, log).info("FedOpt (%s on %s): %d parameters stepped, %d averaged, lr %.4g",
                          type(self._optimizer).__name__, self._device, len(stepped), averaged, lr)
        meta = dict(current.meta) if isinstance(current, FLModel) else {}
        return FLModel(params=out, meta=meta, metrics=dict(aggregated.metrics), params_type="FULL")

    def _owner(self) -> str:
        return f"shareable generator {getattr(self, 'id', None) or type(self).__name__}"


def _torch_class(spec: dict, module: Any, module_name: str, owner: str, arg: str) -> Any:
    """The class a FLARE ``{"path": ...}`` dict names, which must live in ``module``."""
    name = spec.get("path") or spec.get("class_path") or spec.get("name")
    if not isinstance(name, str) or not name:
        raise JobError(f"{owner}: {arg} needs a 'path', such as '{module_name}.{'SGD' if arg == 'optimizer_args' else 'StepLR'}'")
    short = name[len(module_name) + 1:] if name.startswith(module_name + ".") else name
    cls = getattr(module, short, None) if "." not in short else None
    if not isinstance(cls, type):
        raise JobError(f"{owner}: {arg} names {name!r}, which is not a class of {module_name}")
    return cls


def _tensor(value: Any, name: str, shape: tuple[int, ...], owner: str) -> Any:
    import torch

    tensor = value.detach().cpu() if is_torch_tensor(value) else torch.from_numpy(np.array(value))
    if tuple(tensor.shape) != shape:
        raise JobError(f"{owner}: {name!r} has shape {tuple(tensor.shape)}, the model's is {shape}")
    return tensor


