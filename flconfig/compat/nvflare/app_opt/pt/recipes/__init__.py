"""FLARE's ``nvflare.app_opt.pt.recipes``: the PyTorch recipes."""

from __future__ import annotations

from .cyclic import CyclicRecipe
from .fedavg import FedAvgRecipe
from .fedeval import FedEvalRecipe
from .fedopt import FedOptRecipe
from .fedprox import FedProxRecipe
from .scaffold import ScaffoldRecipe

__all__ = ["CyclicRecipe", "FedAvgRecipe", "FedEvalRecipe", "FedOptRecipe", "FedProxRecipe", "ScaffoldRecipe"]
