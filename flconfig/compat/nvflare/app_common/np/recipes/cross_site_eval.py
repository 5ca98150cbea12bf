"""FLARE's ``nvflare.app_common.np.recipes.cross_site_eval``: cross-site evaluation of NumPy models."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.job_config.api import FedJob
from .....nvflare.job_config.script_runner import ScriptRunner
from .....nvflare.recipe.spec import Recipe


class NumpyCrossSiteEvalRecipe(Recipe):
    """The server's models (``model_dir``/``model_name``, or ``initial_ckpt``) and the sites'
    validated by every site: by ``eval_script``, else by an ``NPValidator``."""

    def __init__(self, name: str = "numpy_cross_site_eval", min_clients: int = 2, eval_script: str | None = None,
                 eval_args: str = "", launch_external_process: bool = False, command: str = "python3 -u",
                 initial_ckpt: str | None = None, model_dir: str | None = None,
                 model_name: dict[str, str] | None = None, submit_model_timeout: int = 600,
                 validation_timeout: int = 6000, client_memory_gc_rounds: int = 0,
                 cuda_empty_cache: bool = False) -> None:
        self.framework = FrameworkType.RAW
        job = FedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        locator_args: dict[str, Any] = {}
        if initial_ckpt:
            model_name = {"server": initial_ckpt}
        if model_dir is not None:
            locator_args["model_dir"] = model_dir
        if model_name is not None:
            locator_args["model_name"] = model_name
        locator_id = job.to_server(make("nvflare.app_common.np.np_model_locator.NPModelLocator",
                                        kind="model_locator", **locator_args))
        job.to_server(make("nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval", kind="workflow",
                           model_locator_id=locator_id, submit_model_timeout=submit_model_timeout,
                           validation_timeout=validation_timeout))
        job.to_server(make("nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
                           kind="widget"))
        if eval_script:
            self._executor: Any = ScriptRunner(script=eval_script, script_args=eval_args,
                                               launch_external_process=launch_external_process, command=command,
                                               framework=FrameworkType.RAW, memory_gc_rounds=client_memory_gc_rounds,
                                               cuda_empty_cache=cuda_empty_cache)
        else:
            self._executor = make("nvflare.app_common.np.np_validator.NPValidator", kind="executor")

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._executor, target, tasks=["validate", "submit_model"])
