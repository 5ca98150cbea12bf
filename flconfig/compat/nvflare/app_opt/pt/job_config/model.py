"""FLARE's ``nvflare.app_opt.pt.job_config.model``: a PyTorch model for the server.

``job.to_server(PTModel(Net()))`` adds a ``PTFileModelPersistor`` of the model (id
``persistor``) and a ``PTFileModelLocator`` of it (id ``locator``); the model becomes its
class path and the constructor arguments it keeps (:mod:`flconfig.compat.jobapi.export`).
"""

from __future__ import annotations

import os
from typing import Any

from .....jobapi.standins import make

PERSISTOR = "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor"
LOCATOR = "nvflare.app_opt.pt.file_model_locator.PTFileModelLocator"


def model_arg(model: Any) -> Any:
    """A model as a persistor's ``model`` argument: a module instance as it is (exported by
    its class), a ``{"class_path"|"path": ..., "args": ...}`` dict as ``{"path", "args"}``."""
    if isinstance(model, dict):
        path = model.get("path") or model.get("class_path")
        if not isinstance(path, str) or not path:
            raise ValueError("a model given as a dict needs 'path' (or 'class_path') naming its class")
        return {"path": path, "args": dict(model.get("args") or {})}
    return model


class PTModel:
    """A PyTorch model (an ``nn.Module`` or a ``{"path", "args"}`` dict) for the server."""

    def __init__(self, model: Any, persistor: Any = None, locator: Any = None, allow_numpy_conversion: bool = True,
                 initial_ckpt: str | None = None, best_model_filename: str | None = None) -> None:
        self.model = model
        self.persistor = persistor
        self.locator = locator
        self.allow_numpy_conversion = allow_numpy_conversion
        self.initial_ckpt = initial_ckpt
        self.best_model_filename = best_model_filename

    def add_to_fed_job(self, job: Any, ctx: Any) -> dict[str, str]:
        """Add the persistor and the locator; ``{"persistor_id", "locator_id"}``."""
        persistor = self.persistor
        if persistor is None:
            args: dict[str, Any] = {"model": model_arg(self.model)}
            if not self.allow_numpy_conversion:
                args["allow_numpy_conversion"] = False
            if self.initial_ckpt:
                args["source_ckpt_file_full_name"] = checkpoint_arg(job, self.initial_ckpt)
            if self.best_model_filename:
                args["best_global_model_file_name"] = self.best_model_filename
            persistor = make(PERSISTOR, kind="persistor", **args)
        persistor_id = job.add_component("persistor", persistor, ctx)
        locator = self.locator if self.locator is not None else make(LOCATOR, kind="model_locator",
                                                                      pt_persistor_id=persistor_id)
        locator_id = job.add_component("locator", locator, ctx)
        return {"persistor_id": persistor_id, "locator_id": locator_id}


def checkpoint_arg(job: Any, path: str) -> str:
    """An initial checkpoint: an absolute path is the server's file, as it is; a relative
    one must exist here and goes into the server app's ``custom/`` (the name it is read by)."""
    if os.path.isabs(path):
        return path
    if not os.path.isfile(path):
        raise ValueError(f"initial checkpoint {path} does not exist (a relative path is read here and "
                         "copied into the job)")
    job.to(path, "server")
    return os.path.basename(path)
