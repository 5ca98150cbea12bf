"""FLARE's ``PTModelPersistenceFormatManager``: a PyTorch checkpoint dict as a ModelLearnable.

``data`` is a state dict, or FLARE's checkpoint ``{"model": state_dict, "train_conf": ...,
"meta_props": ...}`` (other keys are kept): what ``torch.load(path, weights_only=True)``
returns for FLARE's and flconfig's ``FL_global_model.pt`` alike.
"""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ...apis.dxo import MetaKey
from ...app_common.abstract.model import (
    ModelLearnable,
    ModelLearnableKey,
    make_model_learnable,
    validate_model_learnable,
)
from ...app_common.app_constant import ModelFormat


class PTModelPersistenceFormatManager:
    """Converts between a PyTorch checkpoint dict and a ModelLearnable (FLARE's semantics)."""

    PERSISTENCE_KEY_MODEL = "model"
    PERSISTENCE_KEY_TRAIN_CONF = "train_conf"
    PERSISTENCE_KEY_META_PROPS = "meta_props"

    def __init__(self, data: dict, default_train_conf: Any = None) -> None:  # type: ignore[type-arg]
        """
        Args:
            data: a state dict, or a checkpoint dict holding one under ``"model"``.
            default_train_conf: the training configuration when ``data`` has none.
        """
        if not isinstance(data, dict):
            raise TypeError(f"data must be a dict but got {type(data)}")
        self.meta: Any = None
        self.train_conf: Any = None
        self.other_props: dict[str, Any] = {}
        if self.PERSISTENCE_KEY_MODEL not in data:
            self.var_dict = data
        else:
            self.var_dict = data[self.PERSISTENCE_KEY_MODEL]
            self.meta = data.get(self.PERSISTENCE_KEY_META_PROPS)
            self.train_conf = data.get(self.PERSISTENCE_KEY_TRAIN_CONF)
            keep = (self.PERSISTENCE_KEY_MODEL, self.PERSISTENCE_KEY_META_PROPS, self.PERSISTENCE_KEY_TRAIN_CONF)
            self.other_props = {k: v for k, v in data.items() if k not in keep}
        if not self.train_conf:
            self.train_conf = default_train_conf

    def _processed(self) -> dict[str, Any]:
        return self.meta.get(MetaKey.PROCESSED_KEYS, {}) if self.meta else {}

    def to_model_learnable(self, exclude_vars: Any) -> ModelLearnable:
        """The weights as numpy arrays (``exclude_vars``: a compiled regex, or None)."""
        processed = self._processed()
        weights = {}
        for name, value in self.var_dict.items():
            if exclude_vars and exclude_vars.search(name):
                continue
            weights[name] = value if processed.get(name, False) else value.cpu().numpy()
        return make_model_learnable(weights, self.meta)

    def to_persistence_dict(self) -> dict[str, Any]:
        """FLARE's checkpoint dict (``{"model": tensors, ...}``) of the current weights."""
        import torch

        processed = self._processed()
        weights: OrderedDict[str, Any] = OrderedDict()
        for name, value in self.var_dict.items():
            weights[name] = value if processed.get(name, False) else torch.as_tensor(value)
        out: OrderedDict[str, Any] = OrderedDict()
        out[self.PERSISTENCE_KEY_MODEL] = weights
        if self.meta:
            out[self.PERSISTENCE_KEY_META_PROPS] = self.meta
        if self.train_conf:
            out[self.PERSISTENCE_KEY_TRAIN_CONF] = self.train_conf
        out.update(self.other_props)
        return out

    def update(self, ml: ModelLearnable) -> None:
        """Take the learned weights (and meta) of ``ml``; weights it lacks are kept."""
        error = validate_model_learnable(ml)
        if error:
            raise ValueError(error)
        self.meta = ml.get(ModelLearnableKey.META)
        for name, value in (ml.get(ModelLearnableKey.WEIGHTS) or {}).items():
            self.var_dict[name] = value

    @staticmethod
    def get_persist_model_format() -> str:
        return ModelFormat.PT_CHECKPOINT
