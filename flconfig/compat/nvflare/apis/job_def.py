"""FLARE's ``nvflare.apis.job_def``: names of a job's meta (the keys a recipe may set)."""

from __future__ import annotations

from enum import Enum

ALL_SITES = "@ALL"
SERVER_SITE_NAME = "server"


class JobMetaKey(str, Enum):
    """Keys of a job's ``meta.json``."""

    JOB_NAME = "name"
    RESOURCE_SPEC = "resource_spec"
    DEPLOY_MAP = "deploy_map"
    MIN_CLIENTS = "min_clients"
    MANDATORY_CLIENTS = "mandatory_clients"
    JOB_LAUNCHER_SPEC = "launcher_spec"
    SCOPE = "scope"
    CUSTOM_PROPS = "custom_props"
    STUDY = "study"

    def __str__(self) -> str:
        return self.value
