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


def model_learnable_to_dxo(ml: ModelLearnable) -> DXO:
    return DXO(DataKind.WEIGHTS, data=ml[ModelLearnableKey.WEIGHTS], meta=ml.get(ModelLearnableKey.META))
