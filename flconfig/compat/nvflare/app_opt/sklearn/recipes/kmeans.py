"""FLARE's ``nvflare.app_opt.sklearn.recipes.kmeans``: federated k-means."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.client.config import ExchangeFormat
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.recipe.fedavg import FedAvgRecipe
from .fedavg import joblib_persistor

AGGREGATOR = ("nvflare.app_common.aggregators.collect_and_assemble_model_aggregator."
              "CollectAndAssembleModelAggregator")


class KMeansFedAvgRecipe(FedAvgRecipe):
    """Each round the sites' cluster centers are collected and assembled by a ``KMeansAssembler``."""

    def __init__(self, *, name: str = "kmeans_fedavg", num_rounds: int = 5, n_clusters: int = 3,
                 model_path: str | None = None, key_metric: str = "metrics",
                 key_metric_mode: str = "max", **kwargs: Any) -> None:
        super().__init__(name=name, num_rounds=num_rounds,
                         framework=FrameworkType.RAW, server_expected_format=ExchangeFormat.RAW,
                         model_persistor=joblib_persistor({"n_clusters": n_clusters}, model_path),
                         aggregator=make(AGGREGATOR, kind="aggregator", assembler_id="kmeans_assembler"),
                         key_metric=key_metric, key_metric_mode=key_metric_mode, **kwargs)
        self._job.to_server(make("nvflare.app_opt.sklearn.kmeans_assembler.KMeansAssembler"), id="kmeans_assembler")
