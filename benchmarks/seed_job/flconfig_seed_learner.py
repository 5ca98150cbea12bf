"""The seed job's learner for flconfig (its Learner API)."""

from __future__ import annotations

import numpy as np
import torch
from seed_task import LeNet, site_data, train_round

from flconfig.components.base import Learner
from flconfig.types import FLModel, ReturnCode


class SeedLearner(Learner):
    def __init__(self, analytic_sender_id: str = "analytic_sender") -> None:
        self.analytic_sender_id = analytic_sender_id
        self.step = 0

    def initialize(self, parts, ctx) -> None:
        self.model = LeNet()
        self.data = site_data(ctx.site_name)
        self.writer = parts.get(self.analytic_sender_id)

    def train(self, data: FLModel, ctx, abort_signal) -> FLModel:
        self.model.load_state_dict({k: torch.as_tensor(np.asarray(v)) for k, v in data.params.items()})
        loss, steps = train_round(self.model, self.data, self.writer, self.step)
        self.step += steps
        params = {k: v.detach().cpu().numpy() for k, v in self.model.state_dict().items()}
        return FLModel(params=params, params_type="FULL", meta={"NUM_STEPS_CURRENT_ROUND": steps},
                       metrics={"train_loss": loss})

    def validate(self, data: FLModel, ctx, abort_signal) -> FLModel:
        return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, "the seed job does not validate")
