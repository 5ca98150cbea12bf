"""FLARE's ``nvflare.client.api``: the Client API's functions (also served as ``nvflare.client``)."""

from __future__ import annotations

from . import (
    clear,
    get_config,
    get_job_id,
    get_site_name,
    get_task_name,
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

__all__ = ["clear", "get_config", "get_job_id", "get_site_name", "get_task_name", "init", "is_evaluate",
           "is_running", "is_submit_model", "is_train", "log", "receive", "send", "shutdown", "system_info"]
