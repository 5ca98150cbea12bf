"""The engine behind ``nvflare.client``: one :class:`ClientAPISession` per site running a script.

An in-process Client API executor (:mod:`flconfig.components.client_api`) starts
the site's training script on a thread bound to its session. The script's calls
(``flare.receive()``, ``flare.send(model)``, ``SummaryWriter().add_scalar(...)``)
reach that session; the executor hands it each task and waits for the result.

Records the script logs go to the executor's own
:class:`~flconfig.tracking.senders.AnalyticsSender`, so they take the same
lossless path to the server as any learner's: checked at the call, queued,
acknowledged once written.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Mapping
from typing import Any

from .nvflare.apis.analytix import AnalyticsDataType
from .nvflare.apis.fl_constant import FLMetaKey
from .nvflare.app_common.abstract.fl_model import FLModel, ParamsType

#: Keys of ``get_config()["TASK_EXCHANGE"]`` (FLARE's ``ConfigKey`` names).
TASK_EXCHANGE = "TASK_EXCHANGE"
SYS_ATTRS = (FLMetaKey.JOB_ID, FLMetaKey.SITE_NAME)

_bound = threading.local()
_sessions: list[ClientAPISession] = []
_sessions_lock = threading.Lock()


class ScriptStopped(Exception):
    """Raised in a script that calls the Client API after its task was aborted."""


class ClientAPISession:
    """What one site's script talks to through ``nvflare.client``.

    ``config`` is what ``get_config()`` returns (FLARE's ``TASK_EXCHANGE`` section
    and the site's name and job id); ``log_record(key, value, data_type, **kwargs)``
    takes what ``flare.log`` and the tracking writers log; ``diff`` computes a DIFF
    result from ``(received, trained)`` params.
    """

    def __init__(self, site_name: str, job_id: str, config: Mapping[str, Any],
                 log_record: Callable[..., None],
                 diff: Callable[[Mapping[str, Any], Mapping[str, Any]], dict[str, Any]]) -> None:
        self.site_name = site_name
        self.job_id = job_id
        self.config: dict[str, Any] = {**config, FLMetaKey.SITE_NAME: site_name,
                                       FLMetaKey.JOB_ID: job_id}
        self._log_record = log_record
        self._diff = diff
        self._cond = threading.Condition()
        self._task_name: str | None = None
        self._model: FLModel | None = None
        self._received: Any = None  # params of the task as given, for DIFF results
        self._result: FLModel | None = None
        self._receive_called = False
        self._stop_reason = ""
        self._abort_reason = ""
        self.rank = "0"

    # -- the executor's side ---------------------------------------------------------------

    def give(self, task_name: str, model: FLModel) -> None:
        """Hand the script its next task (it is waiting in ``receive`` or ``is_running``)."""
        with self._cond:
            self._task_name = task_name
            self._model = model
            self._received = model.params
            self._result = None
            self._abort_reason = ""
            self._cond.notify_all()

    def wait_result(self, timeout: float) -> FLModel | None:
        """The result the script sent for the current task, waiting up to ``timeout`` s."""
        with self._cond:
            if self._result is None:
                self._cond.wait(timeout)
            result, self._result = self._result, None
            return result

    def stop(self, reason: str) -> None:
        """The run ends: ``is_running()`` turns False and ``receive()`` returns None."""
        with self._cond:
            self._stop_reason = reason or "the run ended"
            self._model = None
            self._cond.notify_all()

    def abort(self, reason: str) -> None:
        """The current task is aborted: the script's next Client API call raises."""
        with self._cond:
            self._abort_reason = reason or "the task was aborted"
            self._model = None
            self._cond.notify_all()

    # -- the script's side (nvflare.client) ------------------------------------------------

    def init(self, rank: str | int | None = None, config: Mapping[str, Any] | None = None) -> None:
        if rank is not None:
            self.rank = str(rank)
        if config:
            self.config.update(config)

    def receive(self, timeout: float | None = None) -> FLModel | None:
        """The current task's model; waits for one (None when the run has ended)."""
        model = self._wait_for_task(timeout)
        self._receive_called = True
        return model

    def is_running(self) -> bool:
        """Waits for the next task: True when there is one, False once the run has ended."""
        return self._wait_for_task(None) is not None

    def _wait_for_task(self, timeout: float | None) -> FLModel | None:
        with self._cond:
            while True:
                self._check_abort()
                if self._stop_reason:
                    return None
                if self._model is not None:
                    return self._model
                if not self._cond.wait(timeout) and timeout is not None:
                    return None

    def _check_abort(self) -> None:
        if self._abort_reason:
            reason, self._abort_reason = self._abort_reason, ""
            raise ScriptStopped(f"the task was aborted: {reason}")

    def send(self, model: FLModel, clear_cache: bool = True) -> None:
        """Send ``model`` as the current task's result."""
        if not isinstance(model, FLModel):
            raise TypeError(f"flare.send() takes an FLModel, got {type(model).__name__}")
        with self._cond:
            self._check_abort()
            if not self._receive_called or self._task_name is None:
                raise RuntimeError('"receive" needs to be called before sending model!')
            if model.params is None and model.metrics is None:
                raise RuntimeError("the model to send does not have either params or metrics")
            if (self.config.get(TASK_EXCHANGE, {}).get("transfer_type") == "DIFF"
                    and model.params is not None and model.params_type == ParamsType.FULL
                    and self._received):
                model.params = self._diff(self._received, model.params)
                model.params_type = ParamsType.DIFF
            self._result = model
            if clear_cache:
                self._model = None
                self._receive_called = False
            self._cond.notify_all()

    def clear(self) -> None:
        with self._cond:
            self._model = None

    def system_info(self) -> dict[str, Any]:
        return {k: self.config[k] for k in SYS_ATTRS}

    def get_config(self) -> dict[str, Any]:
        return self.config

    def get_job_id(self) -> str:
        return self.job_id

    def get_site_name(self) -> str:
        return self.site_name

    def _rank0(self, what: str) -> None:
        if self.rank != "0":
            raise RuntimeError(f"only rank 0 can call {what}!")

    def get_task_name(self) -> str:
        self._rank0("get_task_name")
        return self._task_name or ""

    def _is(self, key: str) -> bool:
        return self._task_name is not None and self._task_name == self.config.get(TASK_EXCHANGE, {}).get(key)

    def is_train(self) -> bool:
        self._rank0("is_train")
        return self._is("train_task_name")

    def is_evaluate(self) -> bool:
        self._rank0("is_evaluate")
        return self._is("eval_task_name")

    def is_submit_model(self) -> bool:
        self._rank0("is_submit_model")
        return self._is("submit_model_task_name")

    def log(self, key: str, value: Any, data_type: AnalyticsDataType, **kwargs: Any) -> None:
        self._rank0("log")
        self._log_record(key, value, data_type, **kwargs)


# --------------------------------------------------------------------------- binding


def bind(session: ClientAPISession | None) -> None:
    """Make ``session`` the current thread's (the script's thread); None unbinds it."""
    _bound.session = session


def register(session: ClientAPISession) -> None:
    with _sessions_lock:
        _sessions.append(session)


def unregister(session: ClientAPISession) -> None:
    with _sessions_lock:
        if session in _sessions:
            _sessions.remove(session)


def current() -> ClientAPISession:
    """The session of the script calling: its thread's, or the process's only one (for a
    thread the script started itself)."""
    session = getattr(_bound, "session", None)
    if session is not None:
        return session
    with _sessions_lock:
        if len(_sessions) == 1:
            return _sessions[0]
        many = len(_sessions)
    raise RuntimeError(
        "nvflare.client is called outside a Client API script run by flconfig"
        if not many else
        f"nvflare.client is called from a thread no script owns, with {many} sites in this "
        "process: call it from the script's own thread"
    )


# --------------------------------------------------------------------------- helpers


def plain_number(value: Any) -> Any:
    """A numpy scalar or one-element tensor as a Python number; anything else unchanged."""
    if isinstance(value, (bool, int, float, str)) or value is None:
        return value
    item = getattr(value, "item", None)
    if callable(item):
        try:
            return item()
        except (ValueError, RuntimeError):  # more than one element: left for the caller to refuse
            return value
    return value


def plain_value(value: Any, keep_arrays: bool = False) -> Any:
    """``value`` ready for JSON: numbers in dicts and lists made plain (:func:`plain_number`),
    other arrays as lists; with ``keep_arrays`` arrays and tensors stay as they are (a
    model's meta carries them in its frame's blob: SCAFFOLD's control terms)."""
    if isinstance(value, dict):
        return {str(k): plain_value(v, keep_arrays) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain_value(v, keep_arrays) for v in value]
    if keep_arrays and (type(value).__name__ == "ndarray" or (type(value).__module__.startswith("torch")
                                                              and hasattr(value, "detach"))):
        return value
    value = plain_number(value)
    return value.tolist() if hasattr(value, "tolist") else value
