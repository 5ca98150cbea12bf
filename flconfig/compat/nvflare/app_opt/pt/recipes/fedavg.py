"""FLARE's ``nvflare.app_opt.pt.recipes.fedavg``: the FedAvg recipe for PyTorch."""

from __future__ import annotations

from typing import Any

from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.fedavg import FedAvgRecipe as _FedAvgRecipe


class FedAvgRecipe(_FedAvgRecipe):
    """FLARE's unified FedAvgRecipe with the PyTorch framework (``model`` an ``nn.Module``
    or a ``{"class_path"|"path", "args"}`` dict)."""

    def __init__(self, **kwargs: Any) -> None:
        if "framework" in kwargs:
            raise TypeError("FedAvgRecipe() got an unexpected keyword argument 'framework'")
        super().__init__(framework=FrameworkType.PYTORCH, **kwargs)
