"""FLARE's ``patch(trainer)``: a PyTorch Lightning Trainer that trains federated.

``flare.patch(trainer)`` adds :class:`FLCallback` (and :class:`RestoreState`): each
``trainer.validate(model)`` first receives the task's global model (loads it into the
module) and keeps the validation metrics; ``trainer.fit(model)`` trains from the global
model and sends the trained weights (``NUM_STEPS_CURRENT_ROUND``: the round's optimizer
steps), with those metrics when the executor trains with evaluation. An evaluate task's
``validate`` sends its metrics. The loop is FLARE's::

    flare.patch(trainer)
    while flare.is_running():
        input_model = flare.receive()
        trainer.validate(model, datamodule=dm)
        trainer.fit(model, datamodule=dm)

Not served: FLARE 2.9's automatic SCAFFOLD and FedProx inside ``patch``.
"""

from __future__ import annotations

import logging
from typing import Any

from pytorch_lightning.callbacks import Callback
from pytorch_lightning.trainer.states import TrainerFn

from ...app_common.abstract.fl_model import FLModel, MetaKey
from ...client import clear, get_config, init, is_evaluate, is_submit_model, is_train, receive, send
from .callbacks import RestoreState

#: A LightningModule attribute whose dict goes with the sent model's meta.
FL_META_KEY = "__fl_meta__"


def patch(trainer: Any, restore_state: bool = True, load_state_dict_strict: bool = True,
          update_fit_loop: bool = True) -> None:
    """Make ``trainer`` federated (see the module).

    Args:
        trainer: the PyTorch Lightning trainer.
        restore_state: keep the optimizer and scheduler states from round to round.
        load_state_dict_strict: ``strict`` of ``load_state_dict`` for the received model.
        update_fit_loop: raise ``max_epochs``/``max_steps`` each round, so each ``fit``
            trains as long as the first did.
    """
    callbacks = trainer.callbacks
    if isinstance(callbacks, Callback):
        callbacks = [callbacks]
    elif not isinstance(callbacks, list):
        callbacks = []
    if not any(isinstance(cb, FLCallback) for cb in callbacks):
        callbacks.append(FLCallback(rank=trainer.global_rank, load_state_dict_strict=load_state_dict_strict,
                                    update_fit_loop=update_fit_loop))
    if restore_state and not any(isinstance(cb, RestoreState) for cb in callbacks):
        callbacks.append(RestoreState())
    trainer.callbacks = callbacks


class FLCallback(Callback):  # type: ignore[misc]
    """Receives the global model before training or validating, sends the result after."""

    def __init__(self, rank: int = 0, load_state_dict_strict: bool = True, update_fit_loop: bool = True) -> None:
        super().__init__()
        init(rank=str(rank))
        self.train_with_evaluation = bool(get_config().get("TASK_EXCHANGE", {}).get("train_with_eval", False))
        self.rank = rank
        self.current_round: Any = None
        self.metrics: dict[str, float] | None = None
        self.max_epochs_per_round: int | None = None
        self.max_steps_per_round: int | None = None
        self._load_state_dict_strict = load_state_dict_strict
        self._update_fit_loop = update_fit_loop
        self._is_training = self._is_evaluation = self._is_submit_model = False
        self._pending: FLModel | None = None
        self._training_started = False
        self._start_step: int | None = None
        self.logger = logging.getLogger(type(self).__name__)

    def reset_state(self, trainer: Any) -> None:
        """Get ready for the next round (called after each round's result is sent)."""
        if self.current_round is not None:
            if self.max_epochs_per_round is None:
                if trainer.max_epochs and trainer.max_epochs > 0:
                    self.max_epochs_per_round = trainer.max_epochs
                if trainer.max_steps and trainer.max_steps > 0:
                    self.max_steps_per_round = trainer.max_steps
            trainer.num_sanity_val_steps = 0
            if self._update_fit_loop:
                if trainer.current_epoch and self.max_epochs_per_round is not None:
                    trainer.fit_loop.max_epochs = self.max_epochs_per_round + trainer.current_epoch
                if trainer.global_step and self.max_steps_per_round is not None:
                    trainer.fit_loop.epoch_loop.max_steps = self.max_steps_per_round + trainer.global_step
        self.metrics = None
        self._pending = None
        self._training_started = False
        self._start_step = None
        clear()

    # -- Lightning's hooks ---------------------------------------------------------------

    def on_train_start(self, trainer: Any, pl_module: Any) -> None:
        model, self._pending = self._pending, None
        if model is None:
            model = self._receive(trainer, pl_module)
        else:
            self._load(pl_module, model)
        if model is not None and self._is_training:
            self._start_step = trainer.global_step
            self._training_started = True

    def on_train_end(self, trainer: Any, pl_module: Any) -> None:
        meta = getattr(pl_module, FL_META_KEY, {})
        if not isinstance(meta, dict):
            raise RuntimeError(f"The {FL_META_KEY} needs to be a dictionary")
        meta = dict(meta)
        if not self._is_training:
            return
        if MetaKey.NUM_STEPS_CURRENT_ROUND not in meta:
            meta[MetaKey.NUM_STEPS_CURRENT_ROUND] = trainer.global_step - (self._start_step or 0)
        if self.train_with_evaluation and self.metrics is None:
            raise RuntimeError("train with evaluation requires validation metrics; call validate before fit.")
        model = FLModel(params=pl_module.cpu().state_dict(), meta=meta)
        if self.metrics is not None:
            model.metrics = self.metrics
        if trainer.global_rank == 0:
            send(model, clear_cache=False)
        self.reset_state(trainer)

    def on_validation_start(self, trainer: Any, pl_module: Any) -> None:
        if self._validating_for_the_task(trainer, pl_module):
            model = self._receive(trainer, pl_module)
            if model is not None and self._is_training:
                self._pending = model

    def on_validation_end(self, trainer: Any, pl_module: Any) -> None:
        if self._validating_for_the_task(trainer, pl_module):
            self.metrics = {key: float(value.item()) for key, value in trainer.callback_metrics.items()}
            if self._is_evaluation:
                if trainer.global_rank == 0:
                    send(FLModel(metrics=self.metrics), clear_cache=False)
                self.reset_state(trainer)

    # -- helpers -----------------------------------------------------------------------------

    def _validating_for_the_task(self, trainer: Any, pl_module: Any) -> bool:
        return (pl_module is not None and self.metrics is None and not self._training_started
                and trainer.state.fn == TrainerFn.VALIDATING)

    def _receive(self, trainer: Any, pl_module: Any) -> FLModel | None:
        model, training, evaluating, submitting = None, False, False, False
        if self.rank == 0:
            model = receive()
            training, evaluating, submitting = is_train(), is_evaluate(), is_submit_model()
        strategy = trainer.strategy
        model = strategy.broadcast(model, src=0)
        self._is_training = strategy.broadcast(training, src=0)
        self._is_evaluation = strategy.broadcast(evaluating, src=0)
        self._is_submit_model = strategy.broadcast(submitting, src=0)
        if model is not None:
            self._load(pl_module, model)
        return model

    def _load(self, pl_module: Any, model: FLModel) -> None:
        if model.params:
            local = pl_module.state_dict()
            wrong = [k for k, v in model.params.items() if k in local and tuple(v.shape) != tuple(local[k].shape)]
            if wrong:
                raise RuntimeError(f"Failed to load model state dict: shape mismatch for {wrong}")
            params = model.params
            unexpected = [k for k in params if k not in local]
            if unexpected:
                if self._load_state_dict_strict:
                    raise RuntimeError(f"Failed to load model state dict: unexpected keys {unexpected}")
                self.logger.warning("ignoring keys the module lacks: %s", unexpected)
                params = {k: v for k, v in params.items() if k in local}
            result = pl_module.load_state_dict(params, strict=self._load_state_dict_strict)
            if result is not None and result.missing_keys:
                self.logger.warning("missing keys when loading the global state_dict: %s", result.missing_keys)
        if model.current_round is not None:
            self.current_round = model.current_round
