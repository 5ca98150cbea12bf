"""FLARE's ``nvflare.app_opt.pt.recipes.cyclic``: the cyclic recipe for PyTorch."""

from __future__ import annotations

from typing import Any

from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.cyclic import CyclicRecipe as _CyclicRecipe
from ..job_config.model import PTModel


class CyclicRecipe(_CyclicRecipe):
    """FLARE's CyclicRecipe with an ``nn.Module`` (or ``{"path", "args"}``) model."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("framework", FrameworkType.PYTORCH)
        super().__init__(**kwargs)

    def wrap_model(self, model: Any, initial_ckpt: str | None) -> Any:
        if model is None:
            raise ValueError("CyclicRecipe needs the model")
        if callable(getattr(model, "add_to_fed_job", None)):
            return model
        return PTModel(model, initial_ckpt=initial_ckpt)
