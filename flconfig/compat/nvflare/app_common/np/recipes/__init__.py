"""FLARE's ``nvflare.app_common.np.recipes``: the NumPy recipes."""

from __future__ import annotations

from .cross_site_eval import NumpyCrossSiteEvalRecipe
from .fedavg import NumpyFedAvgRecipe

__all__ = ["NumpyCrossSiteEvalRecipe", "NumpyFedAvgRecipe"]
