"""The example job's Learner: trains a small CNN on one site's share of digits or CIFAR-10.

It follows FLARE's Learner API (initialize, train, validate,
get_model_for_validation, abort, finalize) and streams ``train_loss`` per step
and ``validation_accuracy`` per epoch through a SummaryWriter-like component
(``add_scalar(tag, value, global_step=...)``) named by ``analytic_sender_id``.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Mapping
from typing import Any, ClassVar

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from ..components.base import Learner, state_mismatch
from ..types import FLModel, ReturnCode, RunContext, Signal
from .data import DATASETS, SiteData, load_held_out, load_site_data, site_index_from_name
from .models import CifarCNN, DigitsCNN

#: The model each data set trains; the server's persistor must build the same one.
MODELS: dict[str, type[nn.Module]] = {"digits": DigitsCNN, "cifar10": CifarCNN}
DEVICES = ("cpu", "cuda", "auto")
#: Batch size for accuracy on the held-out split (no gradients, so it can be large).
EVAL_BATCH_SIZE = 1000
LOCAL_MODEL_FILE = "local_model.safetensors"


def build_model(dataset: str) -> nn.Module:
    """A fresh, default-sized model for ``dataset`` ("digits" or "cifar10")."""
    if dataset not in MODELS:
        raise ValueError(f"unknown dataset {dataset!r}; choose one of {', '.join(DATASETS)}")
    return MODELS[dataset]()


def resolve_device(device: str) -> torch.device:
    """``"cpu"``, ``"cuda"`` / ``"cuda:N"``, or ``"auto"`` (CUDA when available) as a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device == "cpu":
        return torch.device("cpu")
    if device == "cuda" or device.startswith("cuda:"):
        if not torch.cuda.is_available():
            raise ValueError(
                f"device {device!r} was asked for but torch sees no CUDA device; "
                "use 'auto' or 'cpu'"
            )
        return torch.device(device)
    raise ValueError(f"unknown device {device!r}; choose one of {', '.join(DEVICES)}")


def params_to_numpy(model: nn.Module) -> dict[str, np.ndarray]:
    """The model's state as fresh numpy arrays (copies: later training does not change them)."""
    return {
        name: value.detach().to("cpu", copy=True).numpy()
        for name, value in model.state_dict().items()
    }


def load_params(model: nn.Module, params: Mapping[str, Any]) -> None:
    """Copy ``params`` (name → numpy array or tensor) into ``model``.

    Raises ValueError naming every missing, unexpected or mis-shaped entry.
    """
    state = model.state_dict()
    tensors: dict[str, torch.Tensor] = {}
    for name, value in params.items():
        if isinstance(value, torch.Tensor):
            tensors[name] = value.detach()
        else:
            array = np.asarray(value)
            if not array.flags.writeable:
                # torch.from_numpy warns on read-only arrays (e.g. ones from safetensors).
                array = array.copy()
            tensors[name] = torch.from_numpy(array)
    mismatch = state_mismatch(state, tensors)
    if mismatch:
        raise ValueError(
            f"params do not fit {type(model).__name__}: {mismatch}. The server's "
            "initial model must be the same class, with the same arguments, as the learner's"
        )
    model.load_state_dict(tensors)


def _images(x: np.ndarray, device: torch.device) -> torch.Tensor:
    # Stay uint8 on the device; batches become float there (4x less to hold and copy).
    x = np.ascontiguousarray(x)
    if not x.flags.writeable:
        x = x.copy()
    return torch.from_numpy(x).to(device)


def _labels(y: np.ndarray, device: torch.device) -> torch.Tensor:
    return torch.from_numpy(np.ascontiguousarray(y, dtype=np.int64)).to(device)


def _accuracy(
    model: nn.Module,
    x: torch.Tensor,
    y: torch.Tensor,
    scale: float,
    abort_signal: Signal | None = None,
    should_stop: threading.Event | None = None,
) -> float | None:
    """Share of ``x`` that ``model`` classifies right; None when asked to stop midway."""
    if len(y) == 0:
        raise ValueError("the held-out split is empty")
    was_training = model.training
    model.eval()
    correct = torch.zeros((), dtype=torch.int64, device=y.device)
    try:
        with torch.inference_mode():
            for start in range(0, len(y), EVAL_BATCH_SIZE):
                if (abort_signal is not None and abort_signal.triggered) or (
                    should_stop is not None and should_stop.is_set()
                ):
                    return None
                xb = x[start : start + EVAL_BATCH_SIZE].float().mul_(scale)
                logits = model(xb)
                correct += (logits.argmax(dim=1) == y[start : start + EVAL_BATCH_SIZE]).sum()
    finally:
        model.train(was_training)
    # The only host sync of an evaluation.
    return correct.item() / len(y)


def evaluate_params(
    params: Mapping[str, Any],
    dataset: str = "digits",
    *,
    data_path: str | None = None,
    device: str = "cpu",
) -> float:
    """Held-out accuracy (0..1) of ``params`` in ``dataset``'s default model.

    For measuring a saved global model; ``data_path`` is needed for "cifar10".
    """
    torch_device = resolve_device(device)
    model = build_model(dataset)
    load_params(model, params)
    model.to(torch_device)
    held_out = load_held_out(dataset, data_path)
    acc = _accuracy(
        model,
        _images(held_out.x_test, torch_device),
        _labels(held_out.y_test, torch_device),
        held_out.scale,
    )
    assert acc is not None
    return acc


class DigitsLearner(Learner):
    """Trains a small CNN on this site's share of a data set, FedAvg-style.

    Each ``train`` task loads the global params, runs ``epochs`` local epochs of
    SGD (momentum 0.9) with cross-entropy, and returns the full local params
    with ``NUM_STEPS_CURRENT_ROUND``. It logs ``train_loss`` every step and
    ``validation_accuracy`` (on the held-out split) every epoch through the
    component ``analytic_sender_id`` names, when there is one; steps and epochs
    count on across rounds.

    Args:
        lr: SGD learning rate.
        epochs: local epochs per round.
        batch_size: training batch size.
        dataset: "digits" (scikit-learn's 8×8 digits, no download) or "cifar10".
        data_path: for "cifar10": the folder with the CIFAR-10 binary ``.bin`` files.
        num_sites: how many shares the training data is cut into; None (the
            default) takes the number of client sites in the run. With more
            sites than shares, the sites reuse the shares in turn (the k-th site
            gets share k mod num_sites), as in scale experiments where every
            site needs a fixed amount of data.
        site_index: this site's 0-based share; None takes the site's place
            among the run's client sites (else its name: "site-3" → 2).
        seed: seeds the initial model and the batch order.
        analytic_sender_id: id of the SummaryWriter-like component to log to
            (for example a TBWriter); a missing component means no logging.
        device: "cpu", "cuda" or "auto" (CUDA when available).
        max_train_batches: stop each epoch after this many batches (quick tests).
    """

    # What the type hints cannot say; `flconfig validate` checks it, and `flconfig launch`
    # again with each site's resolved values. Descriptions come from the docstring.
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "lr": {"exclusiveMinimum": 0},
        "epochs": {"minimum": 1},
        "batch_size": {"minimum": 1},
        "dataset": {"enum": ["digits", "cifar10"]},
        "num_sites": {"minimum": 1},
        "site_index": {"minimum": 0},
        "device": {
            "pattern": "^(cpu|cuda|auto|cuda:[0-9]+)$",
            "patternErrorMessage": "'cpu', 'cuda', 'cuda:N' or 'auto'",
        },
        "max_train_batches": {"minimum": 1},
    }

    def __init__(
        self,
        lr: float = 0.05,
        epochs: int = 1,
        batch_size: int = 32,
        dataset: str = "digits",
        data_path: str | None = None,
        num_sites: int | None = None,
        site_index: int | None = None,
        seed: int = 0,
        analytic_sender_id: str = "log_writer",
        device: str = "cpu",
        max_train_batches: int | None = None,
    ) -> None:
        if dataset == "cifar10" and not data_path:  # two args together: not one arg's schema
            raise ValueError("dataset 'cifar10' needs 'data_path' (the folder with the .bin files)")
        self.lr = lr
        self.epochs = epochs
        self.batch_size = batch_size
        self.dataset = dataset
        self.data_path = data_path
        self.num_sites = num_sites
        self.site_index = site_index
        self.seed = seed
        self.analytic_sender_id = analytic_sender_id
        self.device = device
        self.max_train_batches = max_train_batches

        self.writer: Any = None
        self.data: SiteData | None = None
        self._model: nn.Module | None = None
        self._eval_model: nn.Module | None = None
        self._optimizer: torch.optim.Optimizer | None = None
        self._device = torch.device("cpu")
        self._generator: torch.Generator | None = None
        self._tensors: tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor] | None = None
        self._abort = threading.Event()
        #: Steps and epochs done over the whole run: the x axis of the logged curves.
        self.global_step = 0
        self.global_epoch = 0

    # -- lifecycle ------------------------------------------------------------------

    def initialize(self, parts: Mapping[str, Any], ctx: RunContext) -> None:
        """Load this site's data, build and seed the model, find the writer."""
        run_sites = list(getattr(ctx, "client_sites", ()) or ())
        site_index = self.site_index
        if site_index is None:
            site_index = (run_sites.index(ctx.site_name) if ctx.site_name in run_sites
                          else site_index_from_name(ctx.site_name))
        num_sites = self.num_sites or len(run_sites) or 2
        if self.site_index is None and self.num_sites is not None:
            site_index %= num_sites  # more sites than shares: they reuse the shares in turn
        self.data = load_site_data(self.dataset, num_sites, site_index, self.data_path)
        if len(self.data.y_train) == 0:
            raise ValueError(
                f"site {ctx.site_name!r} (index {site_index}) got no training data "
                f"with num_sites={num_sites}"
            )
        # `flconfig launch --device` overrides the configured device for the whole run.
        self._device = resolve_device(getattr(ctx, "device", None) or self.device)
        # Seed the initial model without touching the process's global RNG state.
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(self.seed)
            self._model = build_model(self.dataset).to(self._device)
            self._eval_model = build_model(self.dataset).to(self._device)
        # Built here, not in the first train task: torch.optim's first use imports
        # torch._dynamo (about a second), which would otherwise stall round one.
        self._optimizer = torch.optim.SGD(self._model.parameters(), lr=self.lr, momentum=0.9)
        self._generator = torch.Generator().manual_seed(
            int(np.random.SeedSequence([self.seed, site_index]).generate_state(1)[0])
        )
        self._tensors = (
            _images(self.data.x_train, self._device),
            _labels(self.data.y_train, self._device),
            _images(self.data.x_test, self._device),
            _labels(self.data.y_test, self._device),
        )
        self.writer = parts.get(self.analytic_sender_id) if self.analytic_sender_id else None
        if self.writer is not None and not callable(getattr(self.writer, "add_scalar", None)):
            raise ValueError(
                f"component {self.analytic_sender_id!r} has no add_scalar method; "
                "'analytic_sender_id' must name a SummaryWriter-like component such as TBWriter"
            )

    def abort(self, ctx: RunContext) -> None:
        """Ask the running task to stop at the next batch."""
        self._abort.set()

    def finalize(self, ctx: RunContext) -> None:
        """Save the local model to ``ctx.run_dir / "local_model.safetensors"``."""
        if self._model is None:
            return
        from safetensors.torch import save_file

        ctx.run_dir.mkdir(parents=True, exist_ok=True)
        state = {
            name: value.detach().to("cpu").contiguous()
            for name, value in self._model.state_dict().items()
        }
        metadata = {
            "dataset": self.dataset,
            "site": ctx.site_name,
            "model": type(self._model).__name__,
        }
        save_file(state, str(ctx.run_dir / LOCAL_MODEL_FILE), metadata=metadata)

    # -- tasks ----------------------------------------------------------------------

    def train(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Train ``epochs`` local epochs from ``data.params``; return the new full params.

        Empty ``data.params`` train on from the current local model.
        """
        model, (x_train, y_train, _, _) = self._ready()
        self._abort.clear()
        if data.params:
            if data.params_type != "FULL":
                return FLModel.error(
                    ReturnCode.EXECUTION_EXCEPTION,
                    f"train needs FULL params, got params_type {data.params_type!r}",
                )
            try:
                load_params(model, data.params)
            except ValueError as exc:
                return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, str(exc))
        model.train()
        assert self._optimizer is not None
        optimizer = self._optimizer
        # Each round starts from the global model: momentum from the last one does not apply.
        optimizer.state.clear()
        steps = 0
        loss_sum = 0.0
        acc: float | None = None
        for _ in range(self.epochs):
            for xb, yb in self._batches(x_train, y_train):
                if abort_signal.triggered or self._abort.is_set():
                    return FLModel.error(ReturnCode.TASK_ABORTED, "train aborted")
                optimizer.zero_grad(set_to_none=True)
                loss = F.cross_entropy(model(xb), yb)
                loss.backward()
                optimizer.step()
                # The one host sync per step: this value is what gets logged.
                loss_value = loss.item()
                if self.writer is not None:
                    self.writer.add_scalar("train_loss", loss_value, global_step=self.global_step)
                self.global_step += 1
                steps += 1
                loss_sum += loss_value
            acc = self._held_out_accuracy(model, abort_signal)
            if acc is None:
                return FLModel.error(ReturnCode.TASK_ABORTED, "train aborted")
            if self.writer is not None:
                self.writer.add_scalar("validation_accuracy", acc, global_step=self.global_epoch)
            self.global_epoch += 1
        assert acc is not None
        return FLModel(
            params=params_to_numpy(model),
            params_type="FULL",
            meta={"NUM_STEPS_CURRENT_ROUND": steps},
            metrics={"train_loss": loss_sum / steps, "validation_accuracy": acc},
        )

    def validate(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Held-out accuracy of ``data.params``; the local model is left as it is."""
        self._ready()
        assert self._eval_model is not None
        self._abort.clear()
        if not data.params:
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, "validate got no params")
        try:
            load_params(self._eval_model, data.params)
        except ValueError as exc:
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, str(exc))
        acc = self._held_out_accuracy(self._eval_model, abort_signal)
        if acc is None:
            return FLModel.error(ReturnCode.TASK_ABORTED, "validate aborted")
        # LearnerExecutor copies "initial_metrics" into the train result's meta.
        return FLModel(metrics={"accuracy": acc}, meta={"initial_metrics": acc})

    def get_model_for_validation(self, model_name: str, ctx: RunContext) -> FLModel:
        """This site's latest local model, full params."""
        model, _ = self._ready()
        return FLModel(
            params=params_to_numpy(model),
            params_type="FULL",
            meta={"model_name": model_name, "site": ctx.site_name},
        )

    # -- helpers --------------------------------------------------------------------

    def _ready(
        self,
    ) -> tuple[nn.Module, tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]]:
        if self._model is None or self._tensors is None or self.data is None:
            raise RuntimeError("DigitsLearner.initialize(parts, ctx) must run before its tasks")
        return self._model, self._tensors

    def _batches(
        self, x: torch.Tensor, y: torch.Tensor
    ) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
        assert self.data is not None
        order = torch.randperm(len(y), generator=self._generator).to(self._device)
        for count, start in enumerate(range(0, len(y), self.batch_size)):
            if self.max_train_batches is not None and count >= self.max_train_batches:
                return
            idx = order[start : start + self.batch_size]
            yield x[idx].float().mul_(self.data.scale), y[idx]

    def _held_out_accuracy(self, model: nn.Module, abort_signal: Signal) -> float | None:
        assert self._tensors is not None and self.data is not None
        _, _, x_test, y_test = self._tensors
        return _accuracy(model, x_test, y_test, self.data.scale, abort_signal, self._abort)
