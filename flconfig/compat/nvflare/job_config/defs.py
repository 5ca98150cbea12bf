"""FLARE's ``nvflare.job_config.defs``: what a filter filters, and the two kinds of target."""

from __future__ import annotations

from enum import Enum

#: The target that means every client site, and the server's.
ALL_SITES = "@ALL"
SERVER_SITE_NAME = "server"


class FilterType(str, Enum):
    """Which way a filter works: on task data going to the executor (``TASK_DATA``: a
    client's input, the server's output) or on results coming back (``TASK_RESULT``)."""

    TASK_RESULT = "TASK_RESULT"
    TASK_DATA = "TASK_DATA"


class JobTargetType:
    """The two kinds of place a component goes: the server, or a client site."""

    SERVER = "server"
    CLIENT = "client"

    @staticmethod
    def get_target_type(target: str) -> str:
        return JobTargetType.SERVER if target == SERVER_SITE_NAME else JobTargetType.CLIENT
