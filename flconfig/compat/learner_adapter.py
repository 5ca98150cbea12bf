"""FLARE's Learner API on flconfig's runtime: Shareables and FLContexts at the executor's boundary.

LearnerExecutor drives a FLARE ``Learner`` through :class:`FlareLearner`, which turns
each task's :class:`flconfig.types.FLModel` into the Shareable FLARE's learners expect
(a DXO of ``WEIGHTS`` or ``WEIGHT_DIFF`` with FLARE's headers: ``current_round``,
``num_rounds``, ``_validate_type``, ``_model_owner_``, ``submit_model_name``) and their
reply back (its return code, a DXO of weights or metrics, its meta).
The conversions between flconfig's models and FLARE's Shareables, and the FLContext a FLARE
component gets, are :mod:`flconfig.compat.shareables` (FLARE's own classes use them too).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..interfaces import Executor, Learner
from ..types import FLModel, ReturnCode, RunContext, Signal
from .nvflare.apis.fl_constant import FLContextKey, ReservedKey
from .nvflare.apis.shareable import Shareable
from .nvflare.app_common.app_constant import AppConstants
from .shareables import (
    flare_context,
    from_shareable,
    has_dxo,
    is_flare_component,
    peer_context,
    to_shareable,
)


class FlareLearner(Learner):
    """A FLARE ``Learner`` behind flconfig's Learner interface (what LearnerExecutor calls)."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.id = getattr(learner, "id", "")

    def _ctx(self, ctx: RunContext, data: FLModel | None = None, shareable: Any = None) -> Any:
        props: dict[str, Any] = {}
        if shareable is not None:
            props[FLContextKey.TASK_DATA] = shareable
        if data is not None:
            props[ReservedKey.PEER_CTX] = peer_context(data)
        if data is not None and "current_round" in data.meta:
            props[AppConstants.CURRENT_ROUND] = data.meta["current_round"]
        return flare_context(ctx, **props)

    def initialize(self, parts: Mapping[str, Any], ctx: RunContext) -> None:
        self.learner.initialize(dict(parts), self._ctx(ctx))

    def train(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        shareable = to_shareable(data)
        reply = self.learner.train(shareable, self._ctx(ctx, data, shareable), abort_signal)
        return from_shareable(reply, f"{type(self.learner).__name__}.train")

    def validate(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        shareable = to_shareable(data)
        reply = self.learner.validate(shareable, self._ctx(ctx, data, shareable), abort_signal)
        # a before-train validation's metrics["initial_metrics"] is the global model's score,
        # as FLARE's LearnerExecutor reads it (flconfig's LearnerExecutor does the same)
        return from_shareable(reply, f"{type(self.learner).__name__}.validate")

    def get_model_for_validation(self, model_name: str, ctx: RunContext) -> FLModel:
        reply = self.learner.get_model_for_validation(model_name, self._ctx(ctx))
        return from_shareable(reply, f"{type(self.learner).__name__}.get_model_for_validation")

    def abort(self, ctx: RunContext) -> None:
        self.learner.abort(self._ctx(ctx))

    def finalize(self, ctx: RunContext) -> None:
        self.learner.finalize(self._ctx(ctx))


class FlareExecutor(Executor):
    """A FLARE ``Executor`` (``nvflare.apis.executor``) behind flconfig's Executor interface.

    Each task's data goes in as a Shareable (a DXO with FLARE's headers), with an FLContext
    holding ``TASK_NAME``, ``TASK_DATA`` and ``current_round``, and a peer context with the
    server's public properties (``current_round``, ``num_rounds``). The reply comes back
    as flconfig's result; a reply with only a return code is an empty result.
    """

    def __init__(self, executor: Any) -> None:
        self.executor = executor
        self.id = getattr(executor, "id", "")

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Run the FLARE executor's ``execute`` on ``data`` as FLARE would call it."""

        shareable = to_shareable(data)
        props = {FLContextKey.TASK_NAME: task_name, FLContextKey.TASK_DATA: shareable,
                 ReservedKey.PEER_CTX: peer_context(data)}
        if "current_round" in data.meta:
            props[AppConstants.CURRENT_ROUND] = data.meta["current_round"]
        what = f"{type(self.executor).__name__}.execute"
        reply = self.executor.execute(task_name, shareable, flare_context(ctx, **props), abort_signal)
        if isinstance(reply, Shareable) and reply.get_return_code() == ReturnCode.OK and not has_dxo(reply):
            return FLModel()
        return from_shareable(reply, what)


def flare_executor(executor: Any) -> Any:
    """``executor`` as flconfig's site calls executors: a FLARE-API one behind :class:`FlareExecutor`."""
    if isinstance(executor, Executor) or not is_flare_component(executor):
        return executor
    return FlareExecutor(executor)
