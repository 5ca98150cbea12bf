"""FLARE's ``nvflare.client.lightning``: the Client API with ``patch(trainer)`` for PyTorch
Lightning (``pytorch_lightning`` must be installed, as for FLARE)."""

from __future__ import annotations

from ...apis.analytix import AnalyticsDataType
from ...app_common.abstract.fl_model import FLModel, ParamsType
from ...app_opt.lightning import FLCallback, patch
from .. import (
    get_config,
    get_job_id,
    get_site_name,
    init,
    is_evaluate,
    is_running,
    is_submit_model,
    is_train,
    log,
    receive,
    send,
    shutdown,
    system_info,
)

__all__ = [
    "AnalyticsDataType", "FLCallback", "FLModel", "ParamsType", "get_config", "get_job_id", "get_site_name",
    "init", "is_evaluate", "is_running", "is_submit_model", "is_train", "log", "patch", "receive", "send",
    "shutdown", "system_info",
]
