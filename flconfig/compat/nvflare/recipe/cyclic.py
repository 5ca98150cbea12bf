"""FLARE's ``nvflare.recipe.cyclic``: ``CyclicRecipe``, the model passed from site to site."""

from __future__ import annotations

from typing import Any

from ...jobapi.standins import make
from ..client.config import ExchangeFormat, TransferType
from ..fuel.utils.constants import FrameworkType
from ..job_config.api import FedJob
from ..job_config.script_runner import ScriptRunner
from .spec import Recipe


class CyclicRecipe(Recipe):
    """The server's ``CyclicController`` sends the model to each site in turn, ``num_rounds``
    times round; the base recipe takes a model wrapper (an object with ``add_to_fed_job``,
    e.g. ``PTModel``); the PyTorch one an ``nn.Module``."""

    def __init__(self, *, name: str = "cyclic", model: Any = None, initial_ckpt: str | None = None,
                 num_rounds: int = 2, min_clients: int = 2, train_script: str, train_args: str = "",
                 launch_external_process: bool = False, command: str = "python3 -u",
                 framework: FrameworkType = FrameworkType.NUMPY,
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY,
                 params_transfer_type: TransferType = TransferType.FULL, server_memory_gc_rounds: int = 1,
                 client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False, task_assignment_timeout: int = 10,
                 shutdown_timeout: float = 0.0, server_config_overrides: dict[str, Any] | None = None,
                 client_config_overrides: dict[str, Any] | None = None) -> None:
        self.framework = FrameworkType(framework)
        job = FedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        wrapper = self.wrap_model(model, initial_ckpt)
        if wrapper is None or not callable(getattr(wrapper, "add_to_fed_job", None)):
            raise ValueError(f"Unsupported framework {self.framework.value} for base CyclicRecipe: give a model "
                             "wrapper (PTModel), or use the PyTorch CyclicRecipe")
        ids = job.to_server(wrapper)
        job.comp_ids.update(ids or {})
        args: dict[str, Any] = {"num_rounds": num_rounds, "task_assignment_timeout": task_assignment_timeout,
                                "persistor_id": job.comp_ids.get("persistor_id", "persistor"),
                                "shareable_generator_id": "shareable_generator",
                                "memory_gc_rounds": server_memory_gc_rounds, **(server_config_overrides or {})}
        job.to_server(make("nvflare.app_common.workflows.cyclic_ctl.CyclicController", kind="workflow", **args),
                      id="controller")
        job.to_server(make("nvflare.app_common.shareablegenerators.full_model_shareable_generator."
                           "FullModelShareableGenerator", kind="shareable_generator"), id="shareable_generator")
        runner_args: dict[str, Any] = {
            "script": train_script, "script_args": train_args, "launch_external_process": launch_external_process,
            "command": command, "framework": self.framework, "server_expected_format": server_expected_format,
            "params_transfer_type": params_transfer_type, "shutdown_timeout": shutdown_timeout,
            "memory_gc_rounds": client_memory_gc_rounds, "cuda_empty_cache": cuda_empty_cache,
            **(client_config_overrides or {})}
        self._runner = ScriptRunner(**runner_args)

    def wrap_model(self, model: Any, initial_ckpt: str | None) -> Any:
        """The model as a wrapper that adds its persistor (the base recipe: given as one)."""
        return model

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target)
