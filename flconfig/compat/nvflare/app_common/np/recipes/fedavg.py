"""FLARE's ``nvflare.app_common.np.recipes.fedavg``: the FedAvg recipe for NumPy."""

from __future__ import annotations

import warnings
from typing import Any

from .....jobapi.standins import make
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.fedavg import FedAvgRecipe


class NumpyFedAvgRecipe(FedAvgRecipe):
    """FLARE's unified FedAvgRecipe with the NumPy framework: ``model`` a list or an array
    (the NPModelPersistor's initial model); with cross-site evaluation, an ``NPValidator``
    validates on the sites."""

    def __init__(self, *, model: Any = None, initial_model: Any = None, **kwargs: Any) -> None:
        if initial_model is not None:
            warnings.warn("initial_model is deprecated: use model", FutureWarning, stacklevel=2)
            model = model if model is not None else initial_model
        kwargs.pop("framework", None)
        super().__init__(model=model, framework=FrameworkType.NUMPY, **kwargs)
        self.framework = FrameworkType.RAW  # cross-site evaluation locates NumPy models

    def add_cse_validator_if_needed(self) -> None:
        validator = make("nvflare.app_common.np.np_validator.NPValidator", kind="executor")
        self._add_to_client_apps(validator, tasks=["validate"])
