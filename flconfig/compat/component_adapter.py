"""Components of the job's code written against FLARE's API, behind flconfig's interfaces.

A job's ``ModelLocator``, ``ModelPersistor``/``LearnablePersistor``, ``Aggregator``,
``ShareableGenerator``, ``Filter`` or ``Executor`` (subclasses of flconfig's stand-ins for
FLARE's base classes) is built as written, then wrapped here so that flconfig's
workflows and sites call it: each call gets an FLContext of its site, FLModels become
Shareables, ModelLearnables or DXOs on the way in and come back on the way out. The
site keeps the object itself for its events (``handle_event(event_type, fl_ctx)``) and
hands it, not the wrapper, to FLARE-API code asking ``engine.get_component``.
"""

from __future__ import annotations

from typing import Any

from ..errors import JobError
from ..interfaces import (
    GLOBAL_MODEL_PROP,
    Aggregator,
    Controller,
    Filter,
    ModelLocator,
    ModelPersistor,
    ShareableGenerator,
)
from ..types import FLModel, RunContext
from .learner_adapter import flare_executor
from .nvflare.apis.dxo import DXO, DataKind
from .nvflare.apis.executor import Executor
from .nvflare.apis.filter import Filter as FlareFilterBase
from .nvflare.apis.fl_constant import ReservedKey
from .nvflare.apis.fl_context import show_components_with
from .nvflare.apis.impl.controller import Controller as FlareControllerBase
from .nvflare.app_common.abstract.aggregator import Aggregator as FlareAggregatorBase
from .nvflare.app_common.abstract.learnable_persistor import LearnablePersistor
from .nvflare.app_common.abstract.model_locator import ModelLocator as FlareLocatorBase
from .nvflare.app_common.abstract.shareable_generator import (
    ShareableGenerator as FlareGeneratorBase,
)
from .nvflare.app_common.app_constant import AppConstants
from .shareables import (
    flare_context,
    from_shareable,
    is_flare_component,
    learnable_of,
    model_of,
    to_shareable,
)
from .views import VIEWS


class _Wrapper:
    """What every wrapper has: the FLARE object (``flare_component``) and its id."""

    def __init__(self, component: Any) -> None:
        #: The job's FLARE-API object this wrapper calls.
        self.flare_component = component
        self.id = getattr(component, "id", "")

    def _what(self, method: str) -> str:
        return f"{type(self.flare_component).__name__}.{method}"


def _dxo_model(dxo: Any, what: str) -> FLModel | None:
    if dxo is None:
        return None
    if not isinstance(dxo, DXO):
        raise JobError(f"{what} returned a {type(dxo).__name__}, not a DXO")
    params_type = "DIFF" if dxo.data_kind == DataKind.WEIGHT_DIFF else "FULL"
    return FLModel(params=dict(dxo.data or {}), meta=dict(dxo.meta or {}), params_type=params_type)


class FlareModelLocator(_Wrapper, ModelLocator):
    """A FLARE ``ModelLocator`` as CrossSiteModelEval's model locator."""

    def get_model_names(self, ctx: RunContext) -> list[str]:
        return list(self.flare_component.get_model_names(flare_context(ctx)) or [])

    def locate_model(self, name: str, ctx: RunContext) -> FLModel | None:
        return _dxo_model(self.flare_component.locate_model(name, flare_context(ctx)), self._what("locate_model"))


class FlarePersistor(_Wrapper, ModelPersistor):
    """A FLARE ``LearnablePersistor``/``ModelPersistor`` as a workflow's persistor."""

    def load(self, ctx: RunContext) -> FLModel:
        return model_of(self.flare_component.load(flare_context(ctx)), self._what("load"))

    def save(self, model: FLModel, ctx: RunContext) -> None:
        self.flare_component.save(learnable_of(model), flare_context(ctx))

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        get = getattr(self.flare_component, "get_model", None)
        learnable = get(name, flare_context(ctx)) if callable(get) else None
        return None if learnable is None else model_of(learnable, self._what("get_model"))

    def model_names(self, ctx: RunContext) -> list[str]:
        inventory = getattr(self.flare_component, "get_model_inventory", None)
        return list(inventory(flare_context(ctx)) or {}) if callable(inventory) else []


class FlareAggregator(_Wrapper, Aggregator):
    """A FLARE ``Aggregator`` as a workflow's aggregator: each result a Shareable with the
    site as its peer identity and its round as its contribution round."""

    def _ctx(self, ctx: RunContext) -> Any:
        return flare_context(ctx, **{AppConstants.CURRENT_ROUND: getattr(ctx, "props", {}).get("current_round")})

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        shareable = to_shareable(result)
        shareable.set_peer_props({ReservedKey.IDENTITY_NAME: site})
        shareable.add_cookie(AppConstants.CONTRIBUTION_ROUND,
                             result.meta.get("current_round", getattr(ctx, "props", {}).get("current_round")))
        if result.rc != "OK":
            shareable.set_return_code(result.rc)
        return bool(self.flare_component.accept(shareable, self._ctx(ctx)))

    def aggregate(self, ctx: RunContext) -> FLModel:
        reply = self.flare_component.aggregate(self._ctx(ctx))
        model = from_shareable(reply, self._what("aggregate"))
        if model.rc != "OK":
            raise JobError(f"aggregator: {model.meta.get('error', model.rc)}")
        return model

    def reset(self, ctx: RunContext | None = None) -> None:
        reset = getattr(self.flare_component, "reset", None)
        if callable(reset) and ctx is not None:
            reset(self._ctx(ctx))


class FlareShareableGenerator(_Wrapper, ShareableGenerator):
    """A FLARE ``ShareableGenerator``: ``fl_ctx``'s GLOBAL_MODEL is the current global model."""

    def _ctx(self, ctx: RunContext) -> Any:
        current = getattr(ctx, "props", {}).get(GLOBAL_MODEL_PROP)
        return flare_context(ctx, **{AppConstants.GLOBAL_MODEL: learnable_of(current if isinstance(
            current, FLModel) else None), AppConstants.CURRENT_ROUND: getattr(ctx, "props", {}).get("current_round")})

    def learnable_to_shareable(self, model: FLModel, ctx: RunContext) -> FLModel:
        reply = self.flare_component.learnable_to_shareable(learnable_of(model), self._ctx(ctx))
        data = from_shareable(reply, self._what("learnable_to_shareable"))
        if data.rc != "OK":
            raise JobError(f"shareable generator: {data.meta.get('error', data.rc)}")
        return data

    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        learnable = self.flare_component.shareable_to_learnable(to_shareable(aggregated), self._ctx(ctx))
        return model_of(learnable, self._what("shareable_to_learnable"))


class FlareFilter(_Wrapper, Filter):
    """A FLARE ``Filter``/``DXOFilter`` in a filter chain (or a persistor's ``filter_id``)."""

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        shareable = to_shareable(data)
        if data.rc != "OK":
            shareable.set_return_code(data.rc)
        return from_shareable(self.flare_component.process(shareable, flare_context(ctx)), self._what("process"))


class FlareController(_Wrapper, Controller):
    """A workflow of the job's code on FLARE's ``Controller`` API (``nvflare.apis.impl.
    controller``): its ``start_controller``/``control_flow``/``stop_controller`` get an
    FLContext, ``self._engine`` is the server's engine, and a ``system_panic`` stops the job."""

    def start_controller(self, ctx: RunContext) -> None:
        controller = self.flare_component
        controller._site_ctx = ctx
        fl_ctx = flare_context(ctx)
        controller._engine = fl_ctx.get_engine()
        controller.start_controller(fl_ctx)
        self._check(ctx)

    def control_flow(self, abort_signal: Any, ctx: RunContext) -> None:
        self.flare_component.control_flow(abort_signal, flare_context(ctx))
        self._check(ctx)

    def stop_controller(self, ctx: RunContext) -> None:
        self.flare_component.stop_controller(flare_context(ctx))

    def _check(self, ctx: RunContext) -> None:
        failures = getattr(ctx, "failures", None)
        if failures:
            raise JobError(f"workflow {self.id or type(self.flare_component).__name__}: {failures[0]}")


def flare_view(component: Any, site: Any) -> Any:
    """What FLARE-API code gets from ``engine.get_component``: the job's own object behind a
    wrapper; a built-in persistor, shareable generator or aggregator behind FLARE's
    interface; anything else as it is."""
    component = unwrap(component)
    if component is None or is_flare_component(component):
        return component

    for base, view in VIEWS.items():
        if isinstance(component, base):
            return view(component, site)
    return component


def adapt(component: Any) -> Any:
    """``component`` as flconfig calls it: a FLARE-API one wrapped by what it is (a model
    locator, persistor, aggregator, shareable generator, filter or executor); anything
    else as it is."""
    if component is None or not is_flare_component(component):
        return component

    for base, wrapper in ((FlareControllerBase, FlareController),
                          (FlareLocatorBase, FlareModelLocator), (LearnablePersistor, FlarePersistor),
                          (FlareAggregatorBase, FlareAggregator), (FlareGeneratorBase, FlareShareableGenerator),
                          (FlareFilterBase, FlareFilter)):
        if isinstance(component, base):
            return wrapper(component)
    if isinstance(component, Executor):
        return flare_executor(component)
    return component


def unwrap(component: Any) -> Any:
    """The job's own object behind a wrapper (what FLARE-API code gets from ``get_component``)."""
    return getattr(component, "flare_component", component)


# FLARE code's engine shows a site's components through the views above.
show_components_with(flare_view)
