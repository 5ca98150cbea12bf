"""FLARE's ``ModelLearnable``: weights and meta, and their DXO."""

from __future__ import annotations

from typing import Any

from ...apis.dxo import DXO, DataKind


class ModelLearnableKey:
    WEIGHTS = "weights"
    META = "meta"


class ModelLearnable(dict):  # type: ignore[type-arg]
    """``{"weights": ..., "meta": ...}``."""

    def is_empty(self) -> bool:
        return not self.get(ModelLearnableKey.WEIGHTS)


def make_model_learnable(weights: dict[str, Any], meta_props: dict[str, Any] | None) -> ModelLearnable:
    learnable = ModelLearnable()
    learnable[ModelLearnableKey.WEIGHTS] = weights
    learnable[ModelLearnableKey.META] = meta_props
    return learnable


def validate_model_learnable(model_learnable: ModelLearnable) -> str:
    """What is wrong with ``model_learnable`` ("" when nothing), as FLARE checks it."""
    if not isinstance(model_learnable, ModelLearnable):
        return f"invalid model learnable: expect ModelLearnable but got {type(model_learnable)}"
    if ModelLearnableKey.WEIGHTS not in model_learnable:
        return f"invalid model learnable: missing {ModelLearnableKey.WEIGHTS}"
    weights = model_learnable[ModelLearnableKey.WEIGHTS]
    if weights is not None and not isinstance(weights, dict):
        return f"invalid model learnable: expect weights to be dict but got {type(weights)}"
    if ModelLearnableKey.META not in model_learnable:
        return f"invalid model learnable: missing {ModelLearnableKey.META}"
    meta = model_learnable[ModelLearnableKey.META]
    if meta is not None and not isinstance(meta, dict):
        return f"invalid model learnable: expect meta to be dict but got {type(meta)}"
    return ""


def model_learnable_to_dxo(ml: ModelLearnable) -> DXO:
    return DXO(DataKind.WEIGHTS, data=ml[ModelLearnableKey.WEIGHTS], meta=ml.get(ModelLearnableKey.META))
