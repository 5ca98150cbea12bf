"""FLARE's ``nvflare.app_opt.pt.recipes.fedopt``: FedOpt (a server-side optimizer) for PyTorch."""

from __future__ import annotations

from typing import Any

from .....jobapi.standins import make
from .....nvflare.apis.dxo import DataKind
from .....nvflare.client.config import ExchangeFormat, TransferType
from .....nvflare.fuel.utils.constants import FrameworkType
from .....nvflare.job_config.base_fed_job import BaseFedJob
from .....nvflare.job_config.script_runner import ScriptRunner
from .....nvflare.recipe.spec import Recipe
from ..job_config.model import checkpoint_arg, model_arg


def _optimizer_spec(spec: dict[str, Any] | None, num_rounds: int) -> dict[str, Any] | None:
    """An optimizer or scheduler spec as FLARE writes it: ``path`` beside ``class_path``,
    ``config_type: dict`` (passed as it is), ``"{num_rounds}"`` replaced by the number."""
    if spec is None:
        return None
    path = spec.get("path") or spec.get("class_path")
    if not isinstance(path, str) or not path:
        raise ValueError("an optimizer or scheduler spec needs 'class_path' (or 'path')")
    args = {k: (num_rounds if v == "{num_rounds}" else v) for k, v in dict(spec.get("args") or {}).items()}
    return {**spec, "args": args, "path": path, "config_type": "dict"}


class FedOptRecipe(Recipe):
    """ScatterAndGather with FedOpt's shareable generator: the server applies ``optimizer_args``
    (and ``lr_scheduler_args``) to the averaged differences the sites send."""

    def __init__(self, *, name: str = "fedopt", model: Any = None, initial_ckpt: str | None = None,
                 min_clients: int, num_rounds: int = 2, train_script: str, train_args: str = "",
                 aggregator: Any = None, launch_external_process: bool = False, command: str = "python3 -u",
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY, device: str | None = None,
                 source_model: str = "model", optimizer_args: dict[str, Any] | None = None,
                 lr_scheduler_args: dict[str, Any] | None = None, server_memory_gc_rounds: int = 1,
                 client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False,
                 enable_tensor_disk_offload: bool = False) -> None:
        if model is None:
            raise ValueError("FedOptRecipe needs the model")
        self.framework = FrameworkType.PYTORCH
        job = BaseFedJob(name=name, min_clients=min_clients)
        super().__init__(job)
        model_id = job.to_server(model_arg(model) if not isinstance(model, dict) else
                                 make(model_arg(model)["path"], **model_arg(model)["args"]), id=source_model)
        persistor_args: dict[str, Any] = {"model": model_id}
        if initial_ckpt:
            persistor_args["source_ckpt_file_full_name"] = checkpoint_arg(job, initial_ckpt)
        if server_expected_format == ExchangeFormat.PYTORCH:
            persistor_args["allow_numpy_conversion"] = False
        persistor = job.to_server(make("nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
                                       kind="persistor", **persistor_args), id="persistor")
        locator = job.to_server(make("nvflare.app_opt.pt.file_model_locator.PTFileModelLocator",
                                     kind="model_locator", pt_persistor_id=persistor), id="locator")
        job.comp_ids.update(persistor_id=persistor, locator_id=locator)
        generator_args: dict[str, Any] = {"source_model": source_model} if source_model != "model" else {}
        for key, spec in (("optimizer_args", optimizer_args), ("lr_scheduler_args", lr_scheduler_args)):
            written = _optimizer_spec(spec, num_rounds)
            if written is not None:
                generator_args[key] = written
        if device is not None:
            generator_args["device"] = device
        generator = job.to_server(make("nvflare.app_opt.pt.fedopt.PTFedOptModelShareableGenerator",
                                       kind="shareable_generator", **generator_args), id="shareable_generator")
        aggregator = aggregator or make(
            "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator",
            kind="aggregator", expected_data_kind=DataKind.WEIGHT_DIFF)
        aggregator_id = job.to_server(aggregator, id="aggregator")
        args: dict[str, Any] = {"min_clients": min_clients, "num_rounds": num_rounds,
                                "wait_time_after_min_received": 0, "aggregator_id": aggregator_id,
                                "persistor_id": persistor, "shareable_generator_id": generator,
                                "memory_gc_rounds": server_memory_gc_rounds}
        if enable_tensor_disk_offload:
            args["enable_tensor_disk_offload"] = True
        job.to_server(make("nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather", kind="workflow",
                           **args), id="controller")
        self._runner = ScriptRunner(script=train_script, script_args=train_args,
                                    launch_external_process=launch_external_process, command=command,
                                    framework=FrameworkType.PYTORCH, server_expected_format=server_expected_format,
                                    params_transfer_type=TransferType.DIFF, memory_gc_rounds=client_memory_gc_rounds,
                                    cuda_empty_cache=cuda_empty_cache)

    def prepare_client_apps(self) -> None:
        for target in self._client_targets():
            self._job.to(self._runner, target)
