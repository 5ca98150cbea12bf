"""FLARE's ``nvflare.app_opt.sklearn.recipes.svm``: federated SVM (train, then validate)."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.client.config import ExchangeFormat
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.fedavg import FedAvgRecipe
from .fedavg import joblib_persistor
from .kmeans import AGGREGATOR


class SVMFedAvgRecipe(FedAvgRecipe):
    """The sites' support vectors collected and assembled by an ``SVMAssembler``; two rounds."""

    def __init__(self, *, name: str = "svm_fedavg", kernel: str = "rbf", model_path: str | None = None,
                 key_metric: str = "AUC", key_metric_mode: str = "max", **kwargs: Any) -> None:
        if kernel not in ("linear", "poly", "rbf", "sigmoid"):
            raise ValueError(f"kernel must be linear, poly, rbf or sigmoid, not {kernel!r}")
        super().__init__(name=name, num_rounds=2,
                         framework=FrameworkType.RAW, server_expected_format=ExchangeFormat.RAW,
                         model_persistor=joblib_persistor({"kernel": kernel}, model_path),
                         aggregator=make(AGGREGATOR, kind="aggregator", assembler_id="svm_assembler"),
                         key_metric=key_metric, key_metric_mode=key_metric_mode, **kwargs)
        self._job.to_server(make("nvflare.app_opt.sklearn.svm_assembler.SVMAssembler", kernel=kernel),
                            id="svm_assembler")
