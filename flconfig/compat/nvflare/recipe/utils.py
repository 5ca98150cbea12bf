"""FLARE's ``nvflare.recipe.utils``: what a script adds to a recipe (tracking, cross-site
evaluation, per-site configuration, meta)."""

from __future__ import annotations

import copy
import importlib.util
import json
from typing import Any

from ...jobapi.standins import make
from ..apis.job_def import JobMetaKey
from ..fuel.utils.constants import FrameworkType

_RECEIVERS = {
    "tensorboard": ("nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver", "tensorboard"),
    "mlflow": ("nvflare.app_opt.tracking.mlflow.mlflow_receiver.MLflowReceiver", "mlflow"),
    "wandb": ("nvflare.app_opt.tracking.wandb.wandb_receiver.WandBReceiver", "wandb"),
}


def add_experiment_tracking(recipe: Any, tracking_type: str, tracking_config: dict[str, Any] | None = None,
                            client_side: bool = False, server_side: bool = True,
                            clients: list[str] | None = None) -> None:
    """A receiver of the sites' metrics: on the server (id ``receiver``) and/or on the
    clients (id ``client_receiver``, hearing the site's own ``analytix_log_stats``)."""
    if tracking_type not in _RECEIVERS:
        raise ValueError(f"tracking_type must be one of {', '.join(_RECEIVERS)}, not {tracking_type!r}")
    if not client_side and not server_side:
        raise ValueError("add the receiver to the server, the clients or both")
    if clients and not client_side:
        raise ValueError("clients= is for client_side=True")
    path, package = _RECEIVERS[tracking_type]
    if importlib.util.find_spec(package) is None:
        raise ValueError(f"{package} is not installed: experiment tracking with {tracking_type} needs it")
    config = copy.deepcopy(tracking_config or {})
    if tracking_type == "mlflow":
        kw = config.setdefault("kw_args", {})
        if not isinstance(kw, dict):
            raise ValueError("tracking_config['kw_args'] must be a dict")
        kw.setdefault("experiment_name", f"{recipe.name}-experiment")
    if server_side:
        server_config = copy.deepcopy(config)
        if tracking_type == "mlflow":
            server_config["kw_args"].setdefault("run_name", f"{recipe.name}-Server")
        recipe._job.to_server(make(path, kind="receiver", **server_config), id="receiver")
    if client_side:
        client_config = copy.deepcopy(config)
        client_config.setdefault("events", ["analytix_log_stats"])
        if tracking_type == "mlflow":
            client_config["kw_args"].setdefault("run_name", f"{recipe.name}-Client")
        recipe._add_to_client_apps(make(path, kind="receiver", **client_config), clients, id="client_receiver")


def _locator(recipe: Any) -> tuple[str, Any]:
    framework = getattr(recipe, "framework", FrameworkType.PYTORCH)
    framework = FrameworkType(framework) if not isinstance(framework, FrameworkType) else framework
    if framework == FrameworkType.PYTORCH:
        persistor = recipe._job.comp_ids.get("persistor_id")
        if not persistor:
            raise ValueError("cross-site evaluation of a PyTorch recipe needs its model persistor")
        return "pt", make("nvflare.app_opt.pt.file_model_locator.PTFileModelLocator", kind="model_locator",
                          pt_persistor_id=persistor)
    if framework in (FrameworkType.NUMPY, FrameworkType.RAW):
        return "np", make("nvflare.app_common.np.np_model_locator.NPModelLocator", kind="model_locator")
    raise ValueError(f"cross-site evaluation is not supported for the framework {framework.value!r}")


def add_cross_site_evaluation(recipe: Any, submit_model_timeout: int = 600, validation_timeout: int = 6000,
                              participating_clients: list[str] | None = None) -> None:
    """Every site's model, and the server's, validated by every site after training."""
    if recipe._cse_added:
        raise RuntimeError("cross-site evaluation is already in the recipe")
    _, locator = _locator(recipe)
    job = recipe._job
    locator_id = job.to_server(locator)
    job.to_server(make("nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
                       kind="widget"))
    args: dict[str, Any] = {"model_locator_id": locator_id, "submit_model_timeout": submit_model_timeout,
                            "validation_timeout": validation_timeout}
    if participating_clients:
        args["participating_clients"] = participating_clients
    job.to_server(make("nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval",
                       kind="workflow", **args))
    recipe._cse_added = True
    adder = getattr(recipe, "add_cse_validator_if_needed", None)
    if callable(adder):
        adder()


def add_final_global_evaluation(recipe: Any, participating_clients: list[str] | None = None,
                                validation_timeout: int = 6000) -> None:
    """The final global model validated by every site (PyTorch)."""
    job = recipe._job
    locator_id = job.comp_ids.get("locator_id")
    if not locator_id:
        _, locator = _locator(recipe)
        locator_id = job.to_server(locator, id="final_model_locator")
    job.to_server(make("nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator",
                       kind="widget"))
    args: dict[str, Any] = {"model_locator_id": locator_id, "submit_model_task_name": "",
                            "validation_timeout": validation_timeout}
    if participating_clients:
        args["participating_clients"] = participating_clients
    job.to_server(make("nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval",
                       kind="workflow", **args))


def set_per_site_config(recipe: Any, config: dict[str, dict[str, Any]]) -> None:
    """Per-site overrides of the recipe's client settings: one client app per listed site."""
    recipe.set_per_site_config(config)


_USER_KEYS = {JobMetaKey.RESOURCE_SPEC, JobMetaKey.JOB_LAUNCHER_SPEC, JobMetaKey.SCOPE, JobMetaKey.CUSTOM_PROPS}


def set_recipe_meta(recipe: Any, key: JobMetaKey, value: Any) -> None:
    """A key of the job's meta.json a recipe may set: resource_spec, launcher_spec, scope,
    custom_props."""
    if not isinstance(key, JobMetaKey):
        raise TypeError(f"key must be a JobMetaKey, not {type(key).__name__}")
    if key not in _USER_KEYS:
        raise ValueError(f"{key.value} is not a meta key a recipe may set "
                         f"({', '.join(sorted(k.value for k in _USER_KEYS))})")
    if key == JobMetaKey.SCOPE:
        if not isinstance(value, str):
            raise ValueError("scope must be a str")
    elif not isinstance(value, dict):
        raise ValueError(f"{key.value} must be a dict")
    else:
        value = json.loads(json.dumps(value, allow_nan=False))
    recipe._job.meta_props[key.value] = value
