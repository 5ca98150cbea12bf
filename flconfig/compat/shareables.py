"""flconfig's models as FLARE's Shareables and back, and the FLContext a FLARE component gets.

What flconfig sends a site (:class:`flconfig.types.FLModel`) becomes the Shareable FLARE code
expects (a DXO of ``WEIGHTS`` or ``WEIGHT_DIFF`` with FLARE's headers: ``current_round``,
``num_rounds``, ``_validate_type``, ``_model_owner_``, ``submit_model_name``), and a reply
(its return code, a DXO of weights or metrics, its meta) becomes a result. Used by the
adapters (:mod:`.learner_adapter`, :mod:`.component_adapter`) and by FLARE's own workflow
classes in the stand-in package, which sit below the adapters: nothing here imports them.
"""

from __future__ import annotations

from typing import Any

from ..errors import JobError
from ..types import FLModel, ReturnCode
from .client_session import plain_number, plain_value
from .nvflare.apis.dxo import DXO, DataKind
from .nvflare.apis.dxo import from_shareable as dxo_of
from .nvflare.apis.fl_constant import ReservedKey
from .nvflare.apis.fl_context import FLContext
from .nvflare.apis.shareable import Shareable, make_reply
from .nvflare.app_common.abstract.model import make_model_learnable
from .nvflare.app_common.app_constant import AppConstants


def is_flare_component(obj: object) -> bool:
    """Whether ``obj`` is written against FLARE's API (flconfig's FLComponent stand-in)."""
    return bool(getattr(type(obj), "_flare_component", False))


def flare_context(site: Any, **props: Any) -> Any:
    """A FLContext for ``site`` with ``props`` set."""

    fl_ctx = FLContext(site)
    for key, value in props.items():  # this call's: not carried on to the site's next contexts
        fl_ctx.set_prop(key, value, sticky=False)
    return fl_ctx


def to_shareable(model: FLModel) -> Any:
    """flconfig's task data as FLARE's Shareable."""

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

    shareable = to_shareable(result) if result.rc == ReturnCode.OK else _reply(result.rc)
    shareable.set_peer_props({ReservedKey.IDENTITY_NAME: site})
    return shareable


def _reply(rc: str) -> Any:
    return make_reply(rc)


def peer_context(data: FLModel) -> Any:
    """The peer context of a task: the server's identity, its round, and the public
    properties its workflow set (``__peer_props__``)."""

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


def has_dxo(shareable: Any) -> bool:
    """Whether ``shareable`` carries a DXO."""
    try:
        dxo_of(shareable)
    except ValueError:
        return False
    return True


def model_of(learnable: Any, what: str) -> FLModel:
    """A ModelLearnable (``{"weights", "meta"}``) as flconfig's FULL model."""
    if learnable is None:
        return FLModel(params_type="FULL")
    if not isinstance(learnable, dict) or "weights" not in learnable:
        raise JobError(f"{what} returned a {type(learnable).__name__}, not a ModelLearnable")
    return FLModel(params=dict(learnable.get("weights") or {}), meta=dict(learnable.get("meta") or {}),
                   params_type="FULL")


def learnable_of(model: FLModel | None) -> Any:
    """flconfig's model as a ModelLearnable (``{"weights", "meta"}``)."""
    if model is None:
        return make_model_learnable({}, {})
    return make_model_learnable(dict(model.params), dict(model.meta))
