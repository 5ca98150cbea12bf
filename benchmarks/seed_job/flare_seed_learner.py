"""The seed job's learner for NVIDIA FLARE (its Learner API)."""

import torch
from nvflare.apis.dxo import DXO, DataKind, MetaKey, from_shareable
from nvflare.apis.fl_constant import ReturnCode
from nvflare.apis.fl_context import FLContext
from nvflare.apis.shareable import Shareable, make_reply
from nvflare.apis.signal import Signal
from nvflare.app_common.abstract.learner_spec import Learner
from seed_task import LeNet, site_data, train_round


class SeedLearner(Learner):
    def __init__(self, analytic_sender_id: str = "analytic_sender"):
        super().__init__()
        self.analytic_sender_id = analytic_sender_id
        self.step = 0

    def initialize(self, parts: dict, fl_ctx: FLContext):
        torch.set_num_threads(1)
        self.model = LeNet()
        self.data = site_data(fl_ctx.get_identity_name())
        self.writer = parts.get(self.analytic_sender_id)

    def train(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        dxo = from_shareable(data)
        weights = {k: torch.as_tensor(v) for k, v in dxo.data.items()}
        self.model.load_state_dict(weights)
        loss, steps = train_round(self.model, self.data, self.writer, self.step)
        self.step += steps
        out = {k: v.cpu().numpy() for k, v in self.model.state_dict().items()}
        return DXO(DataKind.WEIGHTS, data=out,
                   meta={MetaKey.NUM_STEPS_CURRENT_ROUND: steps}).to_shareable()

    def get_model_for_validation(self, model_name: str, fl_ctx: FLContext) -> Shareable:
        return make_reply(ReturnCode.EXECUTION_EXCEPTION)

    def validate(self, data: Shareable, fl_ctx: FLContext, abort_signal: Signal) -> Shareable:
        return make_reply(ReturnCode.OK)

    def finalize(self, fl_ctx: FLContext):
        pass
