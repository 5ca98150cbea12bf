"""FLARE's ``ModelPersistor``: a LearnablePersistor of ModelLearnables, with an inventory."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any

from ...apis.dxo import from_shareable
from ...apis.fl_context import FLContext
from .learnable_persistor import LearnablePersistor
from .model import ModelLearnable, make_model_learnable, model_learnable_to_dxo


class ModelPersistor(LearnablePersistor, ABC):
    """A model persistor of the job's code: ``load_model``/``save_model`` (and optionally
    ``get_model_inventory``/``get_model`` for cross-site evaluation). ``filter_id`` names a
    FLARE filter the model passes through when loaded and saved."""

    def __init__(self, filter_id: str | None = None) -> None:
        super().__init__()
        self.filter_id = filter_id

    def load(self, fl_ctx: FLContext) -> ModelLearnable:
        learnable = self.load_model(fl_ctx)
        return self._filtered(learnable, fl_ctx)

    def save(self, learnable: ModelLearnable, fl_ctx: FLContext) -> None:
        self.save_model(self._filtered(learnable, fl_ctx), fl_ctx)

    def _filtered(self, learnable: ModelLearnable, fl_ctx: FLContext) -> ModelLearnable:
        if not self.filter_id:
            return learnable

        engine = fl_ctx.get_engine()
        flt = engine.get_component(self.filter_id) if engine is not None else None
        if flt is None:
            raise ValueError(f"filter_id '{self.filter_id}' names no component")
        shareable = flt.process(model_learnable_to_dxo(learnable).to_shareable(), fl_ctx)

        dxo = from_shareable(shareable)
        return make_model_learnable(dxo.data, dxo.meta)

    @abstractmethod
    def load_model(self, fl_ctx: FLContext) -> ModelLearnable:
        """The initial model."""

    @abstractmethod
    def save_model(self, model_learnable: ModelLearnable, fl_ctx: FLContext) -> None:
        """Persist the model."""

    def get_model_inventory(self, fl_ctx: FLContext) -> dict[str, Any]:
        """The saved models by name (none by default)."""
        return {}

    def get_model(self, model_file: str, fl_ctx: FLContext) -> ModelLearnable | None:
        """A saved model by name (none by default)."""
        return None
