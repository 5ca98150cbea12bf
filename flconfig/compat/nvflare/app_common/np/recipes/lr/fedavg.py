"""FLARE's ``nvflare.app_common.np.recipes.lr.fedavg``: ``FedAvgLrRecipe``, federated
Newton-Raphson logistic regression (``FedAvgLR`` on the server)."""

from __future__ import annotations

from typing import Any

from ......jobapi.standins import make
from ......nvflare.client.config import ExchangeFormat, TransferType
from ......nvflare.fuel.utils.constants import FrameworkType
from ......nvflare.job_config.api import FedJob
from ......nvflare.job_config.script_runner import ScriptRunner
from ......nvflare.recipe.spec import Recipe


class FedAvgLrRecipe(Recipe):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, *, name: str = "lr_fedavg", min_clients: int, num_rounds: int = 2,
                 damping_factor: float = 0.8, num_features: int = 13, initial_ckpt: str | None = None,
                 train_script: str, train_args: str = "", launch_external_process: bool = False,
                 command: str = "python3 -u", client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False) -> None:
        self.framework = FrameworkType.RAW
        job = FedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        persistor_args: dict[str, Any] = {"n_features": num_features}
        if initial_ckpt:
            persistor_args["source_ckpt_file_full_name"] = initial_ckpt
        job.to_server(make("nvflare.app_common.workflows.lr.np_persistor.LRModelPersistor", kind="persistor",
                           **persistor_args), id="lr_persistor")
        job.to_server(make("nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter",
                           kind="widget"), id="metrics_artifact_writer")
        job.to_server(make("nvflare.app_common.workflows.lr.fedavg.FedAvgLR", kind="workflow",
                           num_clients=min_clients, damping_factor=damping_factor, n_features=num_features,
                           num_rounds=num_rounds, persistor_id="lr_persistor"), id="controller")
        self._runner = ScriptRunner(script=train_script, script_args=train_args,
                                    launch_external_process=launch_external_process, command=command,
                                    framework=FrameworkType.RAW, server_expected_format=ExchangeFormat.RAW,
                                    params_transfer_type=TransferType.FULL, memory_gc_rounds=client_memory_gc_rounds,
                                    cuda_empty_cache=cuda_empty_cache)

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target)
