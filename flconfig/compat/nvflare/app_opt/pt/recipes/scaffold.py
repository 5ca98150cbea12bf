"""FLARE's ``nvflare.app_opt.pt.recipes.scaffold``: SCAFFOLD for PyTorch."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.client.config import ExchangeFormat, TransferType
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.job_config.base_fed_job import BaseFedJob
from .....nvflare.job_config.script_runner import ScriptRunner
from .....nvflare.recipe.spec import Recipe
from ..job_config.model import PTModel


class ScaffoldRecipe(Recipe):
    """The server runs ``Scaffold`` on a PTModel; the sites run ``train_script`` (which keeps
    the control variates with FLARE's ``PTScaffoldHelper``)."""

    def __init__(self, *, name: str = "scaffold", model: Any = None, initial_ckpt: str | None = None,
                 min_clients: int, num_rounds: int = 2, train_script: str, train_args: str = "",
                 launch_external_process: bool = False, command: str = "python3 -u",
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY,
                 params_transfer_type: TransferType = TransferType.FULL, server_memory_gc_rounds: int = 0,
                 client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False,
                 enable_tensor_disk_offload: bool = False) -> None:
        if model is None:
            raise ValueError("ScaffoldRecipe needs the model")
        self.framework = FrameworkType.PYTORCH
        job = BaseFedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        job.comp_ids.update(job.to_server(PTModel(model, initial_ckpt=initial_ckpt,
                                                  allow_numpy_conversion=server_expected_format != "pytorch")))
        args: dict[str, Any] = {"num_clients": min_clients, "num_rounds": num_rounds,
                                "persistor_id": job.comp_ids["persistor_id"]}
        if server_memory_gc_rounds:
            args["memory_gc_rounds"] = server_memory_gc_rounds
        if enable_tensor_disk_offload:
            args["enable_tensor_disk_offload"] = True
        job.to_server(make("nvflare.app_common.workflows.scaffold.Scaffold", kind="workflow", **args), id="controller")
        self._runner = ScriptRunner(script=train_script, script_args=train_args,
                                    launch_external_process=launch_external_process, command=command,
                                    framework=FrameworkType.PYTORCH, server_expected_format=server_expected_format,
                                    params_transfer_type=params_transfer_type,
                                    memory_gc_rounds=client_memory_gc_rounds, cuda_empty_cache=cuda_empty_cache)

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target)
