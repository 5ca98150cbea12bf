"""FLARE's Learner API on flconfig's runtime: Shareables and FLContexts at the executor's boundary.

LearnerExecutor drives a FLARE ``Learner`` through :class:`FlareLearner`, which turns
each task's :class:`flconfig.types.FLModel` into the Shareable FLARE's learners expect
(a DXO of ``WEIGHTS`` or ``WEIGHT_DIFF`` with FLARE's headers: ``current_round``,
``num_rounds``, ``_validate_type``, ``_model_owner_``, ``submit_model_name``) and their
reply back (its return code, a DXO of weights or metrics, its meta).
:func:`flare_context` makes the FLContext a FLARE component gets.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from ..interfaces import Executor, Learner
from ..types import FLModel, ReturnCode, RunContext, Signal
from .client_session import plain_number, plain_value


def is_flare_component(obj: object) -> bool:
    """Whether ``obj`` is written against FLARE's API (flconfig's FLComponent stand-in)."""
    return bool(getattr(type(obj), "_flare_component", False))


def flare_context(site: Any, **props: Any) -> Any:
    """A FLContext for ``site`` with ``props`` set."""
    from .nvflare.apis.fl_context import FLContext

    fl_ctx = FLContext(site)
    for key, value in props.items():  # this call's: not carried on to the site's next contexts
        fl_ctx.set_prop(key, value, sticky=False)
    return fl_ctx


def to_shareable(model: FLModel) -> Any:
    """flconfig's task data as FLARE's Shareable."""
    from .nvflare.apis.dxo import DXO, DataKind
    from .nvflare.app_common.app_constant import AppConstants

    kind = DataKind.WEIGHT_DIFF if model.params_type == "DIFF" else DataKind.WEIGHTS
    meta = {k: v for k, v in model.meta.items()
            if k not in ("current_round", "num_rounds", "_validate_type", "model_owner", "submit_model_name",
                         PEER_PROPS_KEY)}
    shareable = DXO(kind, data=dict(model.params), meta=meta).to_shareable()
    for ours, theirs in (("current_round", AppConstants.CURRENT_ROUND), ("num_rounds", AppConstants.NUM_ROUNDS),
                         ("_validate_type", AppConstants.VALIDATE_TYPE), ("model_owner", AppConstants.MODEL_OWNER),
                         ("submit_model_name", AppConstants.SUBMIT_MODEL_NAME)):
        if ours in model.meta:
            shareable.set_header(theirs, model.meta[ours])
    return shareable


#: Task meta key carrying the public FLContext properties a FLARE workflow set for the sites.
PEER_PROPS_KEY = "__peer_props__"


def model_of_task(shareable: Any) -> FLModel:
    """A FLARE workflow's task data (a Shareable: a DXO and headers, or headers only) as the
    model flconfig sends; its headers become the task's meta."""
    from .nvflare.apis.dxo import DataKind
    from .nvflare.apis.dxo import from_shareable as dxo_of
    from .nvflare.app_common.app_constant import AppConstants

    names = {"current_round": AppConstants.CURRENT_ROUND, "num_rounds": AppConstants.NUM_ROUNDS,
             "_validate_type": AppConstants.VALIDATE_TYPE, "model_owner": AppConstants.MODEL_OWNER,
             "submit_model_name": AppConstants.SUBMIT_MODEL_NAME}
    meta: dict[str, Any] = {}
    for ours, theirs in names.items():
        value = shareable.get_header(theirs)
        if value is not None:
            meta[ours] = value
    try:
        dxo = dxo_of(shareable)
    except ValueError:
        return FLModel(meta=meta)
    meta = {**plain_value(dxo.meta or {}, keep_arrays=True), **meta}
    params_type = "DIFF" if dxo.data_kind == DataKind.WEIGHT_DIFF else "FULL"
    if dxo.data_kind == DataKind.METRICS:
        return FLModel(metrics={str(k): plain_number(v) for k, v in dxo.data.items()}, meta=meta)
    return FLModel(params=dict(dxo.data or {}), meta=meta, params_type=params_type)


def result_shareable(result: FLModel, site: str) -> Any:
    """A site's result as a FLARE workflow gets it: a Shareable with its return code and
    the site as its peer identity."""
    from .nvflare.apis.fl_constant import ReservedKey

    shareable = to_shareable(result) if result.rc == ReturnCode.OK else _reply(result.rc)
    shareable.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    return shareable


def _reply(rc: str) -> Any:
    from .nvflare.apis.shareable import make_reply

    return make_reply(rc)


def peer_context(data: FLModel) -> Any:
    """The peer context of a task: the server's identity, its round, and the public
    properties its workflow set (``__peer_props__``)."""
    from .nvflare.apis.fl_constant import ReservedKey
    from .nvflare.apis.fl_context import FLContext
    from .nvflare.app_common.app_constant import AppConstants

    peer = FLContext()
    peer.set_prop(ReservedKey.IDENTITY_NAME, "server", private=False)
    for ours, theirs in (("current_round", AppConstants.CURRENT_ROUND), ("num_rounds", AppConstants.NUM_ROUNDS)):
        if ours in data.meta:
            peer.set_prop(theirs, data.meta[ours], private=False)
    props = data.meta.get(PEER_PROPS_KEY)
    if isinstance(props, dict):
        for key, value in props.items():
            peer.set_prop(str(key), value, private=False)
    return peer


def from_shareable(reply: Any, what: str) -> FLModel:
    """A FLARE learner's reply as flconfig's result (an error result for a bad one)."""
    from .nvflare.apis.dxo import DataKind
    from .nvflare.apis.dxo import from_shareable as dxo_of
    from .nvflare.apis.shareable import Shareable

    if not isinstance(reply, Shareable):
        return FLModel.error(ReturnCode.EMPTY_RESULT, f"{what} returned a {type(reply).__name__}, not a Shareable")
    rc = reply.get_return_code()
    if rc != ReturnCode.OK:
        return FLModel.error(str(rc), f"{what} replied {rc}")
    try:
        dxo = dxo_of(reply)
    except ValueError as exc:
        return FLModel.error(ReturnCode.EMPTY_RESULT, f"{what}: {exc}")
    meta = plain_value(dxo.meta, keep_arrays=True)
    if dxo.data_kind == DataKind.METRICS:
        return FLModel(metrics={str(k): plain_number(v) for k, v in dxo.data.items()}, meta=meta)
    if dxo.data_kind in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
        return FLModel(params=dict(dxo.data), meta=meta,
                       params_type="DIFF" if dxo.data_kind == DataKind.WEIGHT_DIFF else "FULL")
    return FLModel.error(ReturnCode.EXECUTION_EXCEPTION,
                         f"{what} replied a DXO of kind {dxo.data_kind}, which flconfig cannot send yet")


class FlareLearner(Learner):
    """A FLARE ``Learner`` behind flconfig's Learner interface (what LearnerExecutor calls)."""

    def __init__(self, learner: Any) -> None:
        self.learner = learner
        self.id = getattr(learner, "id", "")

    def _ctx(self, ctx: RunContext, data: FLModel | None = None, shareable: Any = None) -> Any:
        from .nvflare.apis.fl_constant import FLContextKey, ReservedKey
        from .nvflare.app_common.app_constant import AppConstants

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
        from .nvflare.apis.fl_constant import FLContextKey, ReservedKey
        from .nvflare.apis.shareable import Shareable
        from .nvflare.app_common.app_constant import AppConstants

        shareable = to_shareable(data)
        props = {FLContextKey.TASK_NAME: task_name, FLContextKey.TASK_DATA: shareable,
                 ReservedKey.PEER_CTX: peer_context(data)}
        if "current_round" in data.meta:
            props[AppConstants.CURRENT_ROUND] = data.meta["current_round"]
        what = f"{type(self.executor).__name__}.execute"
        reply = self.executor.execute(task_name, shareable, flare_context(ctx, **props), abort_signal)
        if isinstance(reply, Shareable) and reply.get_return_code() == ReturnCode.OK and not _has_dxo(reply):
            return FLModel()
        return from_shareable(reply, what)


def _has_dxo(shareable: Any) -> bool:
    from .nvflare.apis.dxo import from_shareable as dxo_of

    try:
        dxo_of(shareable)
    except ValueError:
        return False
    return True


def flare_executor(executor: Any) -> Any:
    """``executor`` as flconfig's site calls executors: a FLARE-API one behind :class:`FlareExecutor`."""
    if isinstance(executor, Executor) or not is_flare_component(executor):
        return executor
    return FlareExecutor(executor)
