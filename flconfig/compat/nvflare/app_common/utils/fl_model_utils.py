"""FLARE's ``FLModelUtils``: FLModel to and from Shareables, DXOs and ModelLearnables."""

from __future__ import annotations

from typing import Any

from ...apis.dxo import DXO, DataKind, from_shareable
from ...apis.shareable import Shareable
from ..abstract.fl_model import FLModel, FLModelConst, MetaKey, ParamsType
from ..abstract.model import ModelLearnable, ModelLearnableKey, make_model_learnable
from ..app_constant import AppConstants

_KIND_OF = {ParamsType.FULL.value: DataKind.WEIGHTS, ParamsType.DIFF.value: DataKind.WEIGHT_DIFF}
_TYPE_OF = {kind: params_type for params_type, kind in _KIND_OF.items()}
_MODEL_ATTRS = (FLModelConst.PARAMS_TYPE, FLModelConst.PARAMS, FLModelConst.METRICS,
                FLModelConst.OPTIMIZER_PARAMS, FLModelConst.CURRENT_ROUND, FLModelConst.TOTAL_ROUNDS,
                FLModelConst.META)


def _checked(model: Any) -> FLModel:
    if not isinstance(model, FLModel):
        raise TypeError(f"model must be an FLModel, got {type(model).__name__}")
    return model


class FLModelUtils:
    """Conversions between FLARE's FLModel and its older containers, as FLARE does them."""

    @staticmethod
    def to_shareable(fl_model: FLModel) -> Shareable:
        """A Shareable holding a DXO: WEIGHTS/WEIGHT_DIFF for params (their metrics as the
        meta ``initial_metrics``), else METRICS; the rounds and validate type as headers."""
        if fl_model.params is None and fl_model.metrics is None:
            raise ValueError("FLModel without params and metrics is NOT supported.")
        if fl_model.params is not None:
            if fl_model.params_type is None:
                fl_model.params_type = ParamsType.FULL
            kind = _KIND_OF[ParamsType(fl_model.params_type).value]
            meta = {} if fl_model.metrics is None else {MetaKey.INITIAL_METRICS: fl_model.metrics}
            dxo = DXO(kind, data=fl_model.params, meta=meta)
        else:
            dxo = DXO(DataKind.METRICS, data=fl_model.metrics, meta={})
        meta = fl_model.meta if fl_model.meta is not None else {}
        dxo.meta.update(meta)
        shareable = dxo.to_shareable()
        for value, header in ((fl_model.start_round, AppConstants.START_ROUND),
                              (fl_model.current_round, AppConstants.CURRENT_ROUND),
                              (fl_model.total_rounds, AppConstants.NUM_ROUNDS)):
            if value is not None:
                shareable.set_header(header, value)
        if MetaKey.VALIDATE_TYPE in meta:
            shareable.set_header(AppConstants.VALIDATE_TYPE, meta[MetaKey.VALIDATE_TYPE])
        return shareable

    @staticmethod
    def from_shareable(shareable: Shareable, fl_ctx: Any = None) -> FLModel:
        """The FLModel in a Shareable (raises ValueError when it holds no DXO)."""
        metrics = params = params_type = None
        meta: dict[str, Any] = {}
        submit_model_name = shareable.get_header(AppConstants.SUBMIT_MODEL_NAME)
        if submit_model_name:
            meta[MetaKey.SUBMIT_MODEL_NAME] = submit_model_name
        else:
            dxo = from_shareable(shareable)
            meta = dict(dxo.meta)
            if dxo.data_kind == DataKind.METRICS:
                metrics = dxo.data
            else:
                params = dxo.data
                params_type = ParamsType(_TYPE_OF.get(dxo.data_kind, ParamsType.FULL.value))
                if MetaKey.INITIAL_METRICS in meta:
                    metrics = meta[MetaKey.INITIAL_METRICS]
        validate_type = shareable.get_header(AppConstants.VALIDATE_TYPE, None)
        if validate_type is not None:
            meta[MetaKey.VALIDATE_TYPE] = validate_type
        for key in (MetaKey.JOB_ID, MetaKey.SITE_NAME):
            value = shareable.get_header(key, None)
            if value is not None:
                meta[key] = value
        return FLModel(params_type=params_type, params=params, metrics=metrics,
                       start_round=shareable.get_header(AppConstants.START_ROUND, None),
                       current_round=shareable.get_header(AppConstants.CURRENT_ROUND, None),
                       total_rounds=shareable.get_header(AppConstants.NUM_ROUNDS, None), meta=meta)

    @staticmethod
    def to_dxo(fl_model: FLModel) -> DXO:
        """A DXO of kind FL_MODEL holding the model's fields."""
        data = {attr: getattr(fl_model, attr) for attr in _MODEL_ATTRS if getattr(fl_model, attr, None) is not None}
        return DXO(data_kind=DataKind.FL_MODEL, data=data)

    @staticmethod
    def from_dxo(dxo: DXO) -> FLModel:
        """The FLModel in an FL_MODEL DXO."""
        if dxo.data_kind != DataKind.FL_MODEL:
            raise ValueError(f"Invalid dxo with data_kind: {dxo.data_kind}")
        if not isinstance(dxo.data, dict):
            raise ValueError(f"Invalid dxo with data of type: {type(dxo.data)}")
        get = dxo.data.get
        return FLModel(params=get(FLModelConst.PARAMS), params_type=get(FLModelConst.PARAMS_TYPE),
                       metrics=get(FLModelConst.METRICS), optimizer_params=get(FLModelConst.OPTIMIZER_PARAMS),
                       start_round=get(FLModelConst.START_ROUND), current_round=get(FLModelConst.CURRENT_ROUND),
                       total_rounds=get(FLModelConst.TOTAL_ROUNDS), meta=get(FLModelConst.META))

    @staticmethod
    def to_model_learnable(fl_model: FLModel) -> ModelLearnable:
        return make_model_learnable(weights=fl_model.params, meta_props=fl_model.meta)

    @staticmethod
    def from_model_learnable(model_learnable: ModelLearnable) -> FLModel:
        return FLModel(params_type=ParamsType.FULL, params=model_learnable[ModelLearnableKey.WEIGHTS],
                       meta=model_learnable[ModelLearnableKey.META])

    @staticmethod
    def get_meta_prop(model: FLModel, key: str, default: Any = None) -> Any:
        """``model.meta[key]``, or ``default``."""
        return _checked(model).meta.get(key, default) if model.meta else default

    @staticmethod
    def set_meta_prop(model: FLModel, key: str, value: Any) -> None:
        """Set ``model.meta[key]``."""
        _checked(model).meta[key] = value

    @staticmethod
    def update_model(model: FLModel, model_update: FLModel, replace_meta: bool = True) -> FLModel:
        """``model`` (FULL) updated by ``model_update``: its FULL params replace, its DIFF
        params are added; its metrics and meta taken (meta merged when not ``replace_meta``)."""
        if model.params_type != ParamsType.FULL:
            raise RuntimeError(f"params_type {model.params_type} of `model` not supported! Expected `ParamsType.FULL`.")
        if replace_meta:
            model.meta = model_update.meta
        else:
            model.meta.update(model_update.meta)
        model.metrics = model_update.metrics
        if model_update.params_type == ParamsType.FULL:
            model.params = model_update.params
        elif model_update.params_type == ParamsType.DIFF:
            for name, value in model_update.params.items():
                model.params[name] = model.params[name] + value
        else:
            raise RuntimeError(f"params_type {model_update.params_type} of `model_update` not supported!")
        return model

    @staticmethod
    def get_configs(model: FLModel) -> Any:
        """The task's configuration in ``model.meta["configs"]``."""
        return FLModelUtils.get_meta_prop(model, MetaKey.CONFIGS)
