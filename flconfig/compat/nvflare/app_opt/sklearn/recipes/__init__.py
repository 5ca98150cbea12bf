"""FLARE's ``nvflare.app_opt.sklearn.recipes``: the scikit-learn recipes."""

from __future__ import annotations

from .fedavg import SklearnFedAvgRecipe
from .kmeans import KMeansFedAvgRecipe
from .svm import SVMFedAvgRecipe

__all__ = ["KMeansFedAvgRecipe", "SVMFedAvgRecipe", "SklearnFedAvgRecipe"]
