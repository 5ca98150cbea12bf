"""FLARE's Client API (``import nvflare.client as flare``), run by flconfig's executors.

A training script written for FLARE runs unchanged::

    flare.init()
    while flare.is_running():
        model = flare.receive()
        ...  # train on model.params
        flare.send(flare.FLModel(params=weights, metrics={"accuracy": acc},
                                 meta={"NUM_STEPS_CURRENT_ROUND": steps}))

Each call goes to the session of the site whose script is calling
(:mod:`flconfig.compat.client_session`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable
from typing import Any

from ...client_session import current
from ..apis.analytix import AnalyticsDataType
from ..app_common.abstract.fl_model import FLModel, ParamsType

__all__ = [
    "FLModel", "ParamsType", "init", "receive", "send", "is_running", "is_train", "is_evaluate",
    "is_submit_model", "get_site_name", "get_job_id", "get_task_name", "get_config",
    "system_info", "log", "clear", "shutdown", "train", "evaluate",
]


def init(rank: str | int | None = None, config: dict[str, Any] | None = None) -> None:
    """Start using the Client API (``rank``: this process's rank when several train together)."""
    current().init(rank, config)


def receive(timeout: float | None = None) -> FLModel | None:
    """The model of the current task; waits for the next task. None once the run has ended."""
    return current().receive(timeout)


def send(model: FLModel, clear_cache: bool = True) -> None:
    """Send ``model`` back as the current task's result (a DIFF is computed when configured)."""
    current().send(model, clear_cache)


def is_running() -> bool:
    """Wait for the next task: True when one came, False once the run has ended."""
    return current().is_running()


def is_train() -> bool:
    """Whether the current task is the training task."""
    return current().is_train()


def is_evaluate() -> bool:
    """Whether the current task is the evaluation task."""
    return current().is_evaluate()


def is_submit_model() -> bool:
    """Whether the current task asks for the site's model (cross-site evaluation)."""
    return current().is_submit_model()


def get_site_name() -> str:
    """This site's name."""
    return current().get_site_name()


def get_job_id() -> str:
    """The job's id."""
    return current().get_job_id()


def get_task_name() -> str:
    """The current task's name."""
    return current().get_task_name()


def get_config() -> dict[str, Any]:
    """The Client API configuration (``TASK_EXCHANGE``: task names, exchange format ...)."""
    return current().get_config()


def system_info() -> dict[str, Any]:
    """``{"site_name": ..., "job_id": ...}``."""
    return current().system_info()


def log(key: str, value: Any, data_type: AnalyticsDataType, **kwargs: Any) -> None:
    """Log one record for the server's experiment tracking (what the writers in
    :mod:`nvflare.client.tracking` call)."""
    current().log(key, value, data_type, **kwargs)


def clear() -> None:
    """Forget the received model."""
    current().clear()


def shutdown() -> None:
    """Nothing to release in process (FLARE's external-process API closes its pipe here)."""


class _Held:
    metrics: Any = None


_held = _Held()


def _call_with_model(fn: Callable[..., Any], model: FLModel | None, kwargs: dict[str, Any]) -> Any:
    first = next(iter(inspect.signature(fn).parameters.values()))
    kwargs[first.name] = model
    return fn(**kwargs)


def train(_func: Callable[..., Any] | None = None, **_root_kwargs: Any) -> Any:
    """Decorator: the function gets the received model as its first argument and returns the
    trained FLModel, which is sent (with the metrics an ``@evaluate`` function returned)."""

    def decorator(train_fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(train_fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            result = _call_with_model(train_fn, receive(), kwargs)
            if not isinstance(result, FLModel):
                raise RuntimeError("the @flare.train function must return an FLModel, "
                                   f"got {type(result).__name__}")
            if _held.metrics is not None:
                result.metrics, _held.metrics = _held.metrics, None
            send(result)
            return result

        return wrapper

    return decorator if _func is None else decorator(_func)


def evaluate(_func: Callable[..., Any] | None = None, **_root_kwargs: Any) -> Any:
    """Decorator: the function gets the received model and returns its metrics; in a training
    task they go with the trained model, otherwise they are sent at once."""

    def decorator(eval_fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(eval_fn)
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            metrics = _call_with_model(eval_fn, receive(), kwargs)
            if metrics is None:
                raise RuntimeError("the @flare.evaluate function returned None")
            if is_train():
                _held.metrics = metrics
            else:
                send(FLModel(metrics=metrics))
            return metrics

        return wrapper

    return decorator if _func is None else decorator(_func)
