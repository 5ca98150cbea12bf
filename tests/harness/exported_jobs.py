"""Job folders shaped like FLARE 2.9's exports (``python job.py --export``), written by the tests.

The JSON mirrors what FLARE 2.9's recipes write (its job API's ``BaseFedJob``: a
ValidationJsonGenerator, an IntimeModelSelector and a MetricsArtifactWriter on the server,
a ConvertToFedEvent on every client); the client scripts are small Client API scripts on
synthetic data.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

FEDAVG = "nvflare.app_common.workflows.fedavg.FedAvg"
CLIENT_API = "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor"
NP_PERSISTOR = "nvflare.app_common.np.np_model_persistor.NPModelPersistor"

#: What FLARE 2.9's BaseFedJob puts on the server of every recipe.
BASE_FED_JOB_SERVER = [
    {"id": "json_generator",
     "path": "nvflare.app_common.widgets.validation_json_generator.ValidationJsonGenerator", "args": {}},
    {"id": "model_selector", "path": "nvflare.app_common.widgets.intime_model_selector.IntimeModelSelector",
     "args": {"aggregation_weights": {}, "key_metric": "accuracy"}},
    {"id": "metrics_artifact_writer",
     "path": "nvflare.app_common.widgets.metrics_artifact_writer.MetricsArtifactWriter", "args": {}},
]
#: ... and on every client.
EVENT_TO_FED = {"id": "event_to_fed", "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
                "args": {"events_to_convert": ["analytix_log_stats"]}}


def in_process(script: str = "client.py", **args: Any) -> dict[str, Any]:
    """The executor entry FLARE's ScriptRunner exports for an in-process script."""
    return {"tasks": ["*"], "executor": {"path": CLIENT_API, "args": {
        "execution_mode": "in_process", "task_script_path": script, **args}}}


def server_config(workflows: list[dict[str, Any]], components: list[dict[str, Any]],
                  **top: Any) -> dict[str, Any]:
    return {"format_version": 2, "workflows": workflows, "components": components,
            "task_data_filters": [], "task_result_filters": [], **top}


def client_config(executors: list[dict[str, Any]], components: list[dict[str, Any]] | None = None,
                  **top: Any) -> dict[str, Any]:
    return {"format_version": 2, "executors": executors, "components": components or [],
            "task_data_filters": [], "task_result_filters": [], **top}


def write_job(root: Path, name: str, server: dict[str, Any], client: dict[str, Any] | None = None, *,
              scripts: dict[str, str] | None = None, min_clients: int = 2,
              per_site: dict[str, dict[str, Any]] | None = None,
              server_scripts: dict[str, str] | None = None) -> Path:
    """A job folder as FLARE exports it: one ``app`` for ``@ALL``, or (``per_site``) an
    ``app_server`` and an ``app_<site>`` per site, as ``set_per_site_config`` makes it."""
    job = root / name
    apps: dict[str, tuple[str, Any, Any, dict[str, str]]]
    if per_site is None:
        apps = {"app": ("@ALL", server, client, scripts or {})}
        deploy_map: dict[str, list[str]] = {"app": ["@ALL"]}
    else:
        apps = {"app_server": ("server", server, None, server_scripts or {})}
        apps.update({f"app_{site}": (site, None, config, scripts or {}) for site, config in per_site.items()})
        deploy_map = {app: [target] for app, (target, *_) in apps.items()}
    for app, (_, srv, cli, files) in apps.items():
        config = job / app / "config"
        config.mkdir(parents=True)
        if srv is not None:
            (config / "config_fed_server.json").write_text(json.dumps(srv, indent=4))
        if cli is not None:
            (config / "config_fed_client.json").write_text(json.dumps(cli, indent=4))
        if files:
            (job / app / "custom").mkdir()
            for file, text in files.items():
                (job / app / "custom" / file).write_text(text)
    meta = {"name": name, "resource_spec": {}, "min_clients": min_clients, "deploy_map": deploy_map}
    (job / "meta.json").write_text(json.dumps(meta, indent=4))
    return job


def errors(job: Path) -> list[str]:
    """The errors ``flconfig validate`` reports for ``job`` (warnings left out)."""
    from flconfig.validate.loader import inspect_job

    _, problems = inspect_job(job, environ={})
    return [str(p) for p in problems if p.is_error]


def problems(job: Path) -> list[str]:
    """Everything ``flconfig validate`` reports for ``job``."""
    from flconfig.validate.loader import inspect_job

    _, found = inspect_job(job, environ={})
    return [str(p) for p in found]


def run_dir(ws: Path, site: str = "server") -> Path:
    return ws / site / "simulate_job"
