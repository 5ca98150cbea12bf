"""FLARE's ``nvflare.recipe.fed_task``: ``FedTaskRecipe``, one task run by a script on the sites."""

from __future__ import annotations

from typing import Any

from ...jobapi.standins import make
from ..client.config import ExchangeFormat, TransferType
from ..fuel.utils.constants import FrameworkType
from ..job_config.api import FedJob
from ..job_config.script_runner import ScriptRunner
from .spec import Recipe


class FedTaskRecipe(Recipe):
    """The server's ``CmdTaskController`` sends ``task_name`` (with ``task_data``) to the sites,
    where ``task_script`` handles it."""

    def __init__(self, *, name: str = "fed_task", task_name: str = "task", min_clients: int,
                 num_clients: int | None = None, min_responses: int | None = None, timeout: int = 0,
                 task_data: dict[str, Any] | None = None, task_meta: dict[str, Any] | None = None, task_script: str,
                 task_args: str = "", launch_external_process: bool = False, command: str = "python3 -u",
                 framework: FrameworkType = FrameworkType.RAW, server_expected_format: ExchangeFormat = ExchangeFormat.RAW,
                 params_transfer_type: TransferType = TransferType.FULL, launch_once: bool = True,
                 shutdown_timeout: float = 0.0, client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False) -> None:
        self.framework = FrameworkType(framework)
        self.task_name = task_name
        job = FedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        args: dict[str, Any] = {"task_name": task_name, "task_data": task_data or {},
                                "task_meta": task_meta or {"status": "request"}, "persistor_id": ""}
        for key, value in (("num_clients", num_clients), ("min_responses", min_responses)):
            if value is not None:
                args[key] = value
        if timeout:
            args["timeout"] = timeout
        job.to_server(make("nvflare.app_common.workflows.cmd_task_controller.CmdTaskController", kind="workflow",
                           **args), id="controller")
        self._runner = ScriptRunner(script=task_script, script_args=task_args,
                                    launch_external_process=launch_external_process, command=command,
                                    framework=self.framework, server_expected_format=server_expected_format,
                                    params_transfer_type=params_transfer_type, launch_once=launch_once,
                                    shutdown_timeout=shutdown_timeout, memory_gc_rounds=client_memory_gc_rounds,
                                    cuda_empty_cache=cuda_empty_cache)

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target, tasks=[self.task_name])
