"""FLARE's hello-numpy jobs (hello-numpy-sag and cross-validation, by FLARE's class paths), written
into a folder."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

DEFAULT = np.array([[1, 2, 3], [4, 5, 6], [7, 8, 9]], dtype=np.float32)


# The configs of FLARE's hello-numpy-sag and cross-validation jobs, by FLARE's class paths.
SERVER = {
    "format_version": 2,
    "server": {"heart_beat_timeout": 600},
    "task_data_filters": [],
    "task_result_filters": [],
    "components": [
        {"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor", "args": {}},
        {"id": "shareable_generator",
         "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator.FullModelShareableGenerator",
         "args": {}},
        {"id": "aggregator",
         "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator.InTimeAccumulateWeightedAggregator",
         "args": {"expected_data_kind": "WEIGHTS"}},
        {"id": "model_locator", "path": "nvflare.app_common.np.np_model_locator.NPModelLocator", "args": {}},
        {"id": "formatter", "path": "nvflare.app_common.np.np_formatter.NPFormatter", "args": {}},
    ],
    "workflows": [
        {"id": "scatter_and_gather", "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
         "args": {"min_clients": 2, "num_rounds": 3, "start_round": 0, "wait_time_after_min_received": 0,
                  "aggregator_id": "aggregator", "persistor_id": "persistor",
                  "shareable_generator_id": "shareable_generator", "train_task_name": "train",
                  "train_timeout": 6000}},
        {"id": "cross_site_model_eval", "path": "nvflare.app_common.workflows.cross_site_model_eval.CrossSiteModelEval",
         "args": {"model_locator_id": "model_locator", "formatter_id": "formatter",
                  "submit_model_timeout": 600, "validation_timeout": 6000, "cleanup_models": False}},
    ],
}


CLIENT = {
    "format_version": 2,
    "executors": [
        {"tasks": ["train", "submit_model"],
         "executor": {"path": "nvflare.app_common.np.np_trainer.NPTrainer", "args": {}}},
        {"tasks": ["validate"], "executor": {"path": "nvflare.app_common.np.np_validator.NPValidator"}},
    ],
    "task_result_filters": [],
    "task_data_filters": [],
    "components": [],
}


META = {"name": "hello-numpy-cross-val", "resource_spec": {}, "min_clients": 2,
        "deploy_map": {"app": ["@ALL"]}}


def write_job(root: Path) -> Path:
    config = root / "job" / "app" / "config"
    config.mkdir(parents=True)
    (config / "config_fed_server.json").write_text(json.dumps(SERVER, indent=2))
    (config / "config_fed_client.json").write_text(json.dumps(CLIENT, indent=2))
    (root / "job" / "meta.json").write_text(json.dumps(META))
    return root / "job"
