"""FLARE's ``nvflare.recipe.fedavg``: ``FedAvgRecipe``, federated averaging of a training script.

The server runs FLARE 2.9's ``FedAvg`` on a model persistor (PyTorch: a
``PTFileModelPersistor`` of ``model``; NumPy and raw: an ``NPModelPersistor`` or the
``model_persistor`` given); every site (or each site of ``set_per_site_config``) runs
``train_script`` through one ``ClientAPIExecutor``. The PyTorch, NumPy and scikit-learn
recipes are this one with their framework.
"""

from __future__ import annotations

import re
import warnings
from typing import Any

from ...jobapi.standins import make
from ..apis.dxo import DataKind
from ..app_opt.pt.job_config.model import PTModel, checkpoint_arg
from ..client.config import ExchangeFormat, TransferType
from ..fuel.utils.constants import FrameworkType
from ..job_config.base_fed_job import BaseFedJob
from ..job_config.script_runner import ScriptRunner
from .spec import Recipe

FEDAVG = "nvflare.app_common.workflows.fedavg.FedAvg"
NP_PERSISTOR = "nvflare.app_common.np.np_model_persistor.NPModelPersistor"
#: What a per-site configuration may override.
PER_SITE_KEYS = ("train_script", "train_args", "launch_external_process", "command", "framework",
                 "server_expected_format", "params_transfer_type", "launch_once", "launch_timeout",
                 "shutdown_timeout")
_STOP_COND = re.compile(r"^\s*(\w+)\s*(<=|>=|<|>)\s*(-?[\d.eE+-]+)\s*$")


def key_metric_mode_of(key_metric: str, key_metric_mode: str | None, stop_cond: str | None) -> str:
    """``min`` or ``max`` for ``key_metric``: as given, else from a ``stop_cond`` on the same
    metric (``<``/``<=``: min), else max; a mode that contradicts the condition is refused."""
    implied = None
    match = _STOP_COND.match(stop_cond or "")
    if match and match.group(1) == key_metric:
        implied = "min" if match.group(2).startswith("<") else "max"
    if key_metric_mode is not None:
        if key_metric_mode not in ("min", "max"):
            raise ValueError(f"key_metric_mode must be 'min' or 'max', not {key_metric_mode!r}")
        if implied and implied != key_metric_mode:
            raise ValueError(f"key_metric_mode {key_metric_mode!r} contradicts stop_cond {stop_cond!r}")
        return key_metric_mode
    return implied or "max"


class FedAvgRecipe(Recipe):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, *, name: str = "fedavg", model: Any = None, initial_ckpt: str | None = None,
                 min_clients: int, num_rounds: int = 2, train_script: str, train_args: str = "",
                 aggregator: Any = None, aggregator_data_kind: str = DataKind.WEIGHTS,
                 launch_external_process: bool = False, command: str = "python3 -u",
                 framework: FrameworkType = FrameworkType.PYTORCH,
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY,
                 params_transfer_type: TransferType = TransferType.FULL, model_persistor: Any = None,
                 per_site_config: dict[str, dict[str, Any]] | None = None, launch_once: bool = True,
                 launch_timeout: float | None = 300.0, shutdown_timeout: float = 0.0, key_metric: str = "accuracy",
                 key_metric_mode: str | None = None, stop_cond: str | None = None, patience: int | None = None,
                 best_model_filename: str | None = None, save_filename: str | None = None,
                 exclude_vars: str | None = None, aggregation_weights: dict[str, float] | None = None,
                 server_memory_gc_rounds: int = 0, enable_tensor_disk_offload: bool = False,
                 client_memory_gc_rounds: int = 0, cuda_empty_cache: bool = False,
                 model_locator: Any = None) -> None:
        self.framework = FrameworkType(framework)
        if self.framework == FrameworkType.TENSORFLOW:
            raise ValueError("flconfig runs no TensorFlow jobs: use the PyTorch, NumPy or raw framework")
        if aggregator_data_kind not in (DataKind.WEIGHTS, DataKind.WEIGHT_DIFF):
            raise ValueError(f"aggregator_data_kind must be WEIGHTS or WEIGHT_DIFF, not {aggregator_data_kind!r}")
        if save_filename is not None:
            warnings.warn("save_filename is deprecated: use best_model_filename", FutureWarning, stacklevel=2)
            best_model_filename = best_model_filename or save_filename
        self.min_clients = min_clients
        self.num_rounds = num_rounds
        self.train_script = train_script
        self.train_args = train_args
        self.launch_external_process = launch_external_process
        self.command = command
        self.server_expected_format = ExchangeFormat(server_expected_format)
        self.params_transfer_type = TransferType(params_transfer_type)
        self.launch_once = launch_once
        self.launch_timeout = launch_timeout
        self.shutdown_timeout = shutdown_timeout
        self.client_memory_gc_rounds = client_memory_gc_rounds
        self.cuda_empty_cache = cuda_empty_cache
        mode = key_metric_mode_of(key_metric, key_metric_mode, stop_cond)
        job = BaseFedJob(name=name, min_clients=min_clients, key_metric=key_metric, key_metric_mode=mode)
        super().__init__(job)
        persistor_id = self._add_model(model, initial_ckpt, model_persistor, model_locator, best_model_filename)
        args: dict[str, Any] = {"num_clients": min_clients, "num_rounds": num_rounds, "persistor_id": persistor_id}
        if aggregator is not None:
            args["aggregator"] = aggregator
        for key, value in (("stop_cond", stop_cond), ("patience", patience), ("exclude_vars", exclude_vars),
                           ("aggregation_weights", aggregation_weights)):
            if value is not None:
                args[key] = value
        if server_memory_gc_rounds:
            args["memory_gc_rounds"] = server_memory_gc_rounds
        if enable_tensor_disk_offload:
            args["enable_tensor_disk_offload"] = True
        args.update(self.extra_fedavg_args())
        job.to_server(make(FEDAVG, kind="workflow", **args), id="controller")
        if per_site_config:
            warnings.warn("per_site_config= is deprecated: call set_per_site_config(recipe, ...)",
                          FutureWarning, stacklevel=2)
            self.set_per_site_config(per_site_config)

    def extra_fedavg_args(self) -> dict[str, Any]:
        """More arguments of the ``FedAvg`` (FedProx adds ``fedprox_mu``)."""
        return {}

    def _add_model(self, model: Any, initial_ckpt: str | None, model_persistor: Any, model_locator: Any,
                   best_model_filename: str | None) -> str:
        job = self._job
        if model_persistor is not None:
            persistor_id = job.to_server(model_persistor, id="persistor")
            job.comp_ids["persistor_id"] = persistor_id
            if model_locator is not None:
                job.comp_ids["locator_id"] = job.to_server(model_locator, id="locator")
            return str(persistor_id)
        if model is None and initial_ckpt is None:
            raise ValueError("the recipe needs a model, an initial_ckpt or a model_persistor")
        if self.framework == FrameworkType.PYTORCH:
            if model is None:
                raise ValueError("a PyTorch recipe needs the model (initial_ckpt only gives its weights)")
            ids = job.to_server(PTModel(model, locator=model_locator, initial_ckpt=initial_ckpt,
                                        allow_numpy_conversion=self.server_expected_format != ExchangeFormat.PYTORCH,
                                        best_model_filename=best_model_filename))
            job.comp_ids.update(ids)
            return str(ids["persistor_id"])
        args: dict[str, Any] = {}
        if model is not None:
            args["model"] = model.tolist() if hasattr(model, "tolist") else list(model)
        if initial_ckpt is not None:
            args["source_ckpt_file_full_name"] = checkpoint_arg(job, initial_ckpt)
        persistor_id = job.to_server(make(NP_PERSISTOR, kind="persistor", **args), id="persistor")
        job.comp_ids["persistor_id"] = persistor_id
        return str(persistor_id)

    def set_per_site_config(self, config: dict[str, dict[str, Any]]) -> None:
        for site, overrides in config.items():
            unknown = [k for k in overrides if k not in PER_SITE_KEYS]
            if unknown:
                raise ValueError(f"per-site config of {site}: unknown key(s) {', '.join(unknown)} "
                                 f"(known: {', '.join(PER_SITE_KEYS)})")
        if len(config) < self.min_clients:
            raise ValueError(f"the per-site config names {len(config)} site(s), fewer than min_clients "
                             f"({self.min_clients})")
        super().set_per_site_config(config)

    def runner_for(self, site: str | None) -> ScriptRunner:
        """The site's ScriptRunner: the recipe's settings with the site's overrides."""
        override = self._per_site.get(site or "", {})

        def pick(key: str, default: Any) -> Any:
            # None means "the recipe's", except for launch_timeout, where it means no timeout
            if key in override and (override[key] is not None or key == "launch_timeout"):
                return override[key]
            return default

        return ScriptRunner(
            script=pick("train_script", self.train_script), script_args=pick("train_args", self.train_args),
            launch_external_process=pick("launch_external_process", self.launch_external_process),
            command=pick("command", self.command), framework=pick("framework", self.framework),
            server_expected_format=pick("server_expected_format", self.server_expected_format),
            params_transfer_type=pick("params_transfer_type", self.params_transfer_type),
            launch_once=pick("launch_once", self.launch_once), launch_timeout=pick("launch_timeout", self.launch_timeout),
            shutdown_timeout=pick("shutdown_timeout", self.shutdown_timeout),
            memory_gc_rounds=self.client_memory_gc_rounds, cuda_empty_cache=self.cuda_empty_cache)

    def prepare_client_apps(self) -> None:
        if self._per_site:
            for site in self._per_site:
                self._job.to(self.runner_for(site), site)
        else:
            self._job.to_clients(self.runner_for(None))
