"""FLARE's ``RestoreState``: a site's optimizer and scheduler states kept across rounds."""

from __future__ import annotations

import logging
from copy import deepcopy
from typing import Any

from pytorch_lightning.callbacks import Callback


class RestoreState(Callback):  # type: ignore[misc]
    """Restores the optimizer, AMP scaler and learning-rate scheduler states at the start
    of each round's ``fit`` as they were at the end of the last one."""

    def __init__(self) -> None:
        super().__init__()
        self.logger = logging.getLogger(type(self).__name__)
        self.optimizer_states: list[Any] = []
        self.scaler_states: list[Any] = []
        self.lr_scheduler_states: list[Any] = []

    def on_fit_start(self, trainer: Any, pl_module: Any) -> None:
        if not self.optimizer_states:
            return
        trainer.strategy.load_optimizer_state_dict({"optimizer_states": self.optimizer_states})
        self.logger.info("optimizer states restored.")
        if self.scaler_states and getattr(trainer, "scaler", None) is not None:
            trainer.scaler.load_state_dict(self.scaler_states[0])
        for config, state in zip(trainer.lr_scheduler_configs, self.lr_scheduler_states, strict=False):
            config.scheduler.load_state_dict(state)

    def on_fit_end(self, trainer: Any, pl_module: Any) -> None:
        self.optimizer_states = [deepcopy(opt.state_dict()) for opt in trainer.optimizers]
        scaler = getattr(trainer, "scaler", None)
        if scaler:
            self.scaler_states = [deepcopy(scaler.state_dict())]
        self.lr_scheduler_states = [deepcopy(config.scheduler.state_dict()) for config in trainer.lr_scheduler_configs]
