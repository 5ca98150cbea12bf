"""FLARE's ``nvflare.app_opt.pt.recipes.fedeval``: one round of evaluation of a checkpoint."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.client.config import ExchangeFormat
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.job_config.base_fed_job import BaseFedJob
from .....nvflare.job_config.script_runner import ScriptRunner
from .....nvflare.recipe.spec import Recipe
from ..job_config.model import PTModel

EVAL_CONTROLLER = "nvflare.app_opt.pt.recipes.fedeval.EvalController"


class FedEvalRecipe(Recipe):
    """The server sends the model of ``eval_ckpt`` once, task ``validate``, to every site,
    whose ``eval_script`` validates it; the metrics are logged and written."""

    def __init__(self, *, name: str = "eval", model: Any, eval_ckpt: str, min_clients: int, eval_script: str,
                 eval_args: str = "", launch_external_process: bool = False, command: str = "python3 -u",
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY, validation_timeout: int = 6000,
                 per_site_config: dict[str, dict[str, Any]] | None = None, client_memory_gc_rounds: int = 0,
                 cuda_empty_cache: bool = False) -> None:
        self.framework = FrameworkType.PYTORCH
        job = BaseFedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        job.comp_ids.update(job.to_server(PTModel(model, initial_ckpt=eval_ckpt,
                                                  allow_numpy_conversion=server_expected_format != "pytorch")))
        job.to_server(make(EVAL_CONTROLLER, kind="workflow", persistor_id=job.comp_ids["persistor_id"],
                           timeout=validation_timeout), id="controller")
        self._runner = ScriptRunner(script=eval_script, script_args=eval_args,
                                    launch_external_process=launch_external_process, command=command,
                                    framework=FrameworkType.PYTORCH, server_expected_format=server_expected_format,
                                    memory_gc_rounds=client_memory_gc_rounds, cuda_empty_cache=cuda_empty_cache)
        if per_site_config:
            self.set_per_site_config(per_site_config)

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target)


def EvalController(persistor_id: str, timeout: int) -> Any:  # noqa: N802 - FLARE's class name
    """FLARE's EvalController, as a job script names it."""
    return make(EVAL_CONTROLLER, kind="workflow", persistor_id=persistor_id, timeout=timeout)
