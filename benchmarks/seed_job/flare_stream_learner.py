"""A learner for NVIDIA FLARE (its Learner API) that only streams: ``scalars`` calls of
``add_scalar`` in one round, then the global model back unchanged."""

import time

from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.learner_spec import Learner


class StreamLearner(Learner):
    def __init__(self, analytic_sender_id: str = "analytic_sender", scalars: int = 10_000):
        super().__init__()
        self.analytic_sender_id = analytic_sender_id
        self.scalars = scalars

    def initialize(self, parts: dict, fl_ctx: FLContext):
        self.writer = parts.get(self.analytic_sender_id)

    def train(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        dxo = from_shareable(data)
        start = time.perf_counter()
        for step in range(self.scalars):
            self.writer.add_scalar("stream", float(step), step)
        self.log_info(fl_ctx, f"logged {self.scalars} scalars in {time.perf_counter() - start:.2f} s")
        return DXO(DataKind.WEIGHTS, data=dxo.data, meta={MetaKey.NUM_STEPS_CURRENT_ROUND: 1}).to_shareable()

    def get_model_for_validation(self, model_name: str, fl_ctx: FLContext) -> Shareable:
        return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def validate(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return make_reply(ReturnCode.OK)

    def finalize(self, fl_ctx: FLContext):
        pass
