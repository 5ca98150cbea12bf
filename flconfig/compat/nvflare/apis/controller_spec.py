"""FLARE's task objects for workflows written on its ``Controller`` API."""

from __future__ import annotations

import time
import uuid
from collections.abc import Callable
from enum import Enum
from typing import Any

from .client import Client
from .shareable import Shareable


class TaskCompletionStatus(Enum):
    OK = "ok"
    TIMEOUT = "timeout"
    ERROR = "error"
    CANCELLED = "cancelled"
    ABORTED = "aborted"
    IGNORED = "ignored"
    CLIENT_DEAD = "client_dead"


class SendOrder(Enum):
    ANY = "any"
    SEQUENTIAL = "sequential"


class Task:
    """A task to send: its name, its data (a Shareable), props, a timeout (0: none) and the
    callbacks FLARE calls around each site's part (``before_task_sent_cb(client_task, fl_ctx)``,
    ``after_task_sent_cb``, ``result_received_cb``) and at the end (``task_done_cb(task, fl_ctx)``)."""

    def __init__(self, name: str, data: Shareable, props: dict[str, Any] | None = None, timeout: int = 0,
                 before_task_sent_cb: Callable[..., Any] | None = None,
                 after_task_sent_cb: Callable[..., Any] | None = None,
                 result_received_cb: Callable[..., Any] | None = None,
                 task_done_cb: Callable[..., Any] | None = None, operator: Any = None, secure: bool = False) -> None:
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty str")
        if not isinstance(data, Shareable):
            raise TypeError(f"data must be a Shareable, but got {type(data)}.")
        if props is not None and not isinstance(props, dict):
            raise TypeError(f"props must be None or dict, but got {type(props)}.")
        if not isinstance(timeout, int) or timeout < 0:
            raise ValueError(f"timeout must be an int >= 0, but got {timeout!r}.")
        for what, cb in (("before_task_sent_cb", before_task_sent_cb), ("after_task_sent_cb", after_task_sent_cb),
                         ("result_received_cb", result_received_cb), ("task_done_cb", task_done_cb)):
            if cb is not None and not callable(cb):
                raise TypeError(f"{what} must be a callable function, but got {type(cb)}.")
        self.name = name
        self.data = data
        self.props = props if props is not None else {}
        self.timeout = timeout
        self.before_task_sent_cb = before_task_sent_cb
        self.after_task_sent_cb = after_task_sent_cb
        self.result_received_cb = result_received_cb
        self.task_done_cb = task_done_cb
        self.operator = operator
        self.secure = secure
        self.targets: list[str] | None = None
        self.client_tasks: list[ClientTask] = []
        self.last_client_task_map: dict[str, ClientTask] = {}
        self.completion_status: TaskCompletionStatus | None = None
        self.is_standing = False
        self.schedule_time: float | None = None
        self.create_time = time.time()
        self.msg_root_id = str(uuid.uuid4())

    def set_prop(self, key: str, value: Any) -> None:
        if key.startswith("__"):
            raise ValueError(f"Keys start with __ is reserved. Please use other key instead of {key}.")
        self.props[key] = value

    def get_prop(self, key: str) -> Any:
        return self.props.get(key)


class ClientTask:
    """One site's part of a task: ``result`` is its reply once it came."""

    def __init__(self, client: Client, task: Task) -> None:
        self.client = client
        self.task = task
        self.id = str(uuid.uuid4())
        self.task_send_count = 0
        self.task_sent_time: float | None = None
        self.result_received_time: float | None = None
        self.result: Shareable | None = None
        self.props: dict[str, Any] = {}
