"""A learner for flconfig (its Learner API) that only streams: ``scalars`` calls of
``add_scalar`` in one round, then the global model back unchanged."""

from __future__ import annotations

import logging
import time

from flconfig.components.base import Learner
from flconfig.types import FLModel, ReturnCode

log = logging.getLogger(__name__)


class StreamLearner(Learner):
    def __init__(self, analytic_sender_id: str = "analytic_sender", scalars: int = 10_000) -> None:
        self.analytic_sender_id = analytic_sender_id
        self.scalars = scalars

    def initialize(self, parts, ctx) -> None:
        self.writer = parts.get(self.analytic_sender_id)

    def train(self, data: FLModel, ctx, abort_signal) -> FLModel:
        start = time.perf_counter()
        for step in range(self.scalars):
            self.writer.add_scalar("stream", float(step), step)
        log.info("logged %d scalars in %.2f s", self.scalars, time.perf_counter() - start)
        return FLModel(params=data.params, params_type="FULL", meta={"NUM_STEPS_CURRENT_ROUND": 1})

    def validate(self, data: FLModel, ctx, abort_signal) -> FLModel:
        return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, "this job does not validate")
