"""FLARE's ``nvflare.app_opt.sklearn`` (the part job code imports): ``from
nvflare.app_opt.sklearn import SklearnFedAvgRecipe`` as in FLARE, imported on first use."""

from __future__ import annotations

__all__ = ["KMeansFedAvgRecipe", "SVMFedAvgRecipe", "SklearnFedAvgRecipe"]


def __getattr__(name: str) -> object:
    """The recipes of :mod:`.recipes`, by name."""
    if name in __all__:
        from . import recipes

        return getattr(recipes, name)
    raise AttributeError(f"module 'nvflare.app_opt.sklearn' has no attribute {name!r}")
