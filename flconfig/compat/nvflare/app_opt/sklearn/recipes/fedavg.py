"""FLARE's ``nvflare.app_opt.sklearn.recipes.fedavg``: FedAvg of a scikit-learn model's parameters."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.client.config import ExchangeFormat
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.fedavg import FedAvgRecipe

PERSISTOR = "nvflare.app_opt.sklearn.joblib_model_param_persistor.JoblibModelParamPersistor"


def joblib_persistor(initial_params: dict[str, Any], model_path: str | None) -> Any:
    args: dict[str, Any] = {"initial_params": initial_params}
    if model_path is not None:
        args["model_path"] = model_path
    return make(PERSISTOR, kind="persistor", **args)


class SklearnFedAvgRecipe(FedAvgRecipe):
    """FLARE's unified FedAvgRecipe with raw parameters kept by a ``JoblibModelParamPersistor``."""

    def __init__(self, *, name: str = "sklearn_fedavg", num_rounds: int = 2,
                 model_params: dict[str, Any] | None = None, model_path: str | None = None,
                 key_metric_mode: str = "max", **kwargs: Any) -> None:
        super().__init__(name=name, num_rounds=num_rounds,
                         framework=FrameworkType.RAW, server_expected_format=ExchangeFormat.RAW,
                         model_persistor=joblib_persistor(model_params or {}, model_path),
                         key_metric_mode=key_metric_mode, **kwargs)
