"""FLARE's ``nvflare.app_opt.pt.job_config.fed_avg``: ``FedAvgJob``, a PyTorch FedAvg job."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .base_fed_job import BaseFedJob

FEDAVG = "nvflare.app_common.workflows.fedavg.FedAvg"


class FedAvgJob(BaseFedJob):
    """BaseFedJob with ``initial_model`` and a ``FedAvg`` of ``n_clients`` sites and
    ``num_rounds`` rounds on the server; add the sites' executors (``ScriptRunner``)."""

    def __init__(self, initial_model: Any, n_clients: int, num_rounds: int, name: str = "fed_job",
                 min_clients: int = 1, mandatory_clients: list[str] | None = None, key_metric: str = "accuracy",
                 key_metric_mode: str = "max") -> None:
        super().__init__(initial_model=initial_model, name=name, min_clients=min_clients,
                         mandatory_clients=mandatory_clients, key_metric=key_metric, key_metric_mode=key_metric_mode)
        self.to_server(make(FEDAVG, kind="workflow", num_clients=n_clients, num_rounds=num_rounds,
                            persistor_id=self.comp_ids.get("persistor_id", "persistor")), id="controller")
