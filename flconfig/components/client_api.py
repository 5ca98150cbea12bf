"""FLARE's Client API executors, in process: a site runs the job's own training script.

The script is a plain program written against ``nvflare.client``
(``flare.init()``, ``while flare.is_running(): model = flare.receive() ...
flare.send(model)``). The executor starts it once, on a thread of the site's
process, when the run starts, and hands it each task routed to the executor;
``execute`` returns what the script sends back.

- The script is looked up in the app's ``custom/`` folder as FLARE does (a file
  whose path ends with ``task_script_path``) and runs as ``__main__`` with
  ``sys.argv = [script, *task_script_args.split()]`` (the process's, while it
  runs). It may import the other modules of ``custom/``; what it prints goes to
  the site's log; ``import nvflare`` is served by :mod:`flconfig.compat`, FLARE
  installed or not.
- ``params_exchange_format`` is what the script gets (``pytorch``: torch tensors,
  ``numpy``: numpy arrays, ``raw``: the task's params as they came), and
  ``server_expected_format`` what its results are sent as (``numpy`` by default, or
  ``pytorch``); with ``raw`` on either side, or the two the same, nothing is converted, as
  in FLARE 2.9. Tensors stay tensors on the wire, so with ``pytorch`` on both sides (and
  the server's ``PTFileModelPersistor`` with ``allow_numpy_conversion = false``) the
  job's filters, the server's aggregator and persistor all get torch tensors.
- ``params_transfer_type = "DIFF"``: a FULL result is sent as the trained
  weights minus the received ones (what the server's aggregator expects with
  ``expected_data_kind = "WEIGHT_DIFF"``).
- A result with params and metrics is a trained model and the validation of
  the received one: the metrics go in ``meta["initial_metrics"]``, where
  IntimeModelSelector reads them; a metrics-only result is a validation.
- What the script logs with ``nvflare.client.tracking`` (``SummaryWriter`` ...)
  goes through the executor's own AnalyticsSender as the local event
  ``analytix_log_stats``: with ``ConvertToFedEvent`` in the config, as FLARE's
  jobs have it, every record reaches the server's receivers, none lost.
- A script that raises fails the task it was on (and every later one) with its
  error; the traceback is in the site's log.

This module holds the executors; the script's runs are in
:mod:`~flconfig.components.client_api_scripts`, the conversion of params and models to and
from the script in :mod:`~flconfig.components.client_api_exchange`. Standard library and
flconfig's light modules only at import time (the registry reads this file).
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path
from typing import Any, ClassVar

from ..compat import client_session, install
from ..errors import JobError
from ..files import find_script, python_command
from ..tracking.flare_log import log_flare_record
from ..tracking.senders import AnalyticsSender
from ..types import Event, EventType, FLModel, ReturnCode, RunContext, Signal
from .base import Executor
from .client_api_exchange import from_script, params_diff, to_script
from .client_api_scripts import ScriptRun, end_runs, start_process, start_thread

#: The local event the script's records are fired as (FLARE's ``ANALYTIC_EVENT_TYPE``).
ANALYTIC_EVENT_TYPE = "analytix_log_stats"
_POLL_SECONDS = 0.2


class ClientAPIExecutor(Executor):
    """FLARE 2.9's ``ClientAPIExecutor``: runs a Client API training script.

    ``execution_mode = "in_process"`` runs ``task_script_path`` in the site's process
    (see the module docstring); ``"external_process"`` runs ``command`` (a Python script
    of custom/: ``python3 -u custom/train.py ...``) in a child process, in the site's run
    folder, its ``nvflare.client`` calls answered by the site over an authenticated local
    channel (:mod:`flconfig.compat.remote`), once per run (``launch_once``) or once per
    task. ``attach`` is not supported yet (``flconfig validate`` says so at the line).
    The arguments only the other modes use are accepted, as FLARE's configs write them.
    """

    REFERENCES: ClassVar[dict[str, str]] = {"attach_id": ""}  # an attach session's name, not an id
    #: Constant event names this class fires (the event checker follows them).
    EMITS: ClassVar[str] = "analytix_log_stats"
    #: Fed events it sends to the server itself, by argument value (then EMITS is not fired).
    FED_EMITS_IF: ClassVar[dict[str, Any]] = {
        "execution_mode": {"external_process": "fed.analytix_log_stats"},
    }
    #: The argument naming a script that must lie in the app's custom/ folder.
    SCRIPT_ARG: ClassVar[str] = "task_script_path"
    #: The argument holding a command that must run a Python script of custom/.
    COMMAND_ARG: ClassVar[str] = "command"
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "execution_mode": {
            "attach": "flconfig starts the script itself, for now: use execution_mode "
                      "\"in_process\" or \"external_process\"",
        },
    }
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "execution_mode": {"enum": ["in_process", "external_process", "attach"]},
        "task_script_path": {
            "anyOf": [{"type": "null"}, {"type": "string", "pattern": r"\.py$"}],
            "patternErrorMessage": "the path of a Python script (.py) in the app's custom/ folder",
        },
        "params_exchange_format": {"enum": ["raw", "numpy", "pytorch"]},
        "server_expected_format": {"enum": ["raw", "numpy", "pytorch"]},
        "params_transfer_type": {"enum": ["FULL", "DIFF"]},
        "train_task_name": {"minLength": 1},
        "evaluate_task_name": {"minLength": 1},
        "submit_model_task_name": {"minLength": 1},
        "memory_gc_rounds": {"minimum": 0},
    }

    def __init__(
        self,
        execution_mode: str,
        command: str | list[str] | None = None,
        task_script_path: str | None = None,
        task_script_args: str = "",
        launch_once: bool = True,
        launch_timeout: float | None = 300.0,
        shutdown_timeout: float | None = None,
        stop_grace_period: float = 30.0,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 30.0,
        task_wait_timeout: float | None = None,
        result_wait_timeout: float | None = None,
        train_task_name: str = "train",
        evaluate_task_name: str = "validate",
        submit_model_task_name: str = "submit_model",
        train_with_evaluation: bool = False,
        params_exchange_format: str = "raw",
        server_expected_format: str = "numpy",
        params_transfer_type: str = "FULL",
        memory_gc_rounds: int = 0,
        cuda_empty_cache: bool = False,
        attach_id: str | None = None,
        attach_timeout: float | None = None,
        allow_reconnect: bool = False,
        allow_insecure_attach: bool = False,
    ) -> None:
        """
        Args:
            execution_mode: ``in_process`` (``external_process`` and ``attach`` are not
                supported yet).
            command: external_process: the command that starts the script,
                ``python3 -u custom/<script>.py [args]``.
            task_script_path: the script, a path inside the app's custom/ folder.
            task_script_args: its command-line arguments, split on spaces.
            launch_once: external_process: start the script once for the run (else once per task).
            launch_timeout: external_process only.
            shutdown_timeout: external_process only.
            stop_grace_period: external_process only.
            heartbeat_interval: external_process and attach only.
            heartbeat_timeout: external_process and attach only.
            task_wait_timeout: accepted; the site waits for tasks as its server says.
            result_wait_timeout: seconds a task waits for the script's result (None: as
                long as it takes).
            train_task_name: the task ``flare.is_train()`` is true for.
            evaluate_task_name: the task ``flare.is_evaluate()`` is true for.
            submit_model_task_name: the task ``flare.is_submit_model()`` is true for.
            train_with_evaluation: told to the script (``get_config()``): it validates the
                received model before training and sends the metrics with its result.
            params_exchange_format: what the script gets: ``pytorch`` (torch tensors),
                ``numpy`` (numpy arrays) or ``raw`` (the params as the task brought them).
            server_expected_format: what results are sent as: ``numpy`` arrays, ``pytorch``
                tensors, or ``raw`` (as the script sent them); nothing is converted when
                either format is ``raw`` or both are the same.
            params_transfer_type: ``FULL`` or ``DIFF`` (results sent as trained minus received).
            memory_gc_rounds: run the garbage collector after every this many tasks (0: never).
            cuda_empty_cache: empty torch's CUDA cache after each task.
            attach_id: attach only.
            attach_timeout: attach only.
            allow_reconnect: attach only.
            allow_insecure_attach: attach only.
        """
        if execution_mode == "in_process":
            if not task_script_path:
                raise ValueError("execution_mode 'in_process' needs task_script_path")
            if command:
                raise ValueError("command is for execution_mode 'external_process', not 'in_process'")
        self.execution_mode = execution_mode
        self.command = command
        # accepted as FLARE's configs write them; only the external and attach modes use them
        self.launch_once = launch_once
        self.launch_timeout = launch_timeout
        self.shutdown_timeout = shutdown_timeout
        self.stop_grace_period = stop_grace_period
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.task_wait_timeout = task_wait_timeout
        self.attach_id = attach_id
        self.attach_timeout = attach_timeout
        self.allow_reconnect = allow_reconnect
        self.allow_insecure_attach = allow_insecure_attach
        self.task_script_path = task_script_path
        self.task_script_args = task_script_args or ""
        self.result_wait_timeout = result_wait_timeout
        self.train_task_name = train_task_name
        self.evaluate_task_name = evaluate_task_name
        self.submit_model_task_name = submit_model_task_name
        self.train_with_evaluation = train_with_evaluation
        self.params_exchange_format = params_exchange_format
        self.server_expected_format = server_expected_format
        self.params_transfer_type = params_transfer_type
        self.memory_gc_rounds = memory_gc_rounds
        self.cuda_empty_cache = cuda_empty_cache
        self._sender: Any = None
        self._script: ScriptRun | None = None  # the script the next task goes to
        self._scripts: list[ScriptRun] = []  # every start of it, for END_RUN
        self._start_lock = threading.Lock()
        self._tasks_done = 0

    # -- lifecycle ---------------------------------------------------------------------

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """START_RUN starts the script (unless it starts once per task); END_RUN tells it the
        run is over and waits for it; ABORT_TASK makes its next Client API call raise."""
        if event.scope != "local":
            return
        if event.type == EventType.START_RUN and (self.execution_mode == "in_process"
                                                  or self._launch_once(ctx)):
            self._start(ctx)
        elif event.type == EventType.ABORT_TASK and self._script is not None:
            self._script.session.abort("ABORT_TASK received")
        elif event.type == EventType.END_RUN:
            self._end(ctx)  # first: what the script logs on its way out is still sent
        if self._sender is not None:
            self._sender.handle_event(event, ctx)  # its own records: started, flushed, stopped

    def _start(self, ctx: RunContext, fresh: bool = False) -> ScriptRun:
        """The script the next task goes to: the one started for the run, started now if it
        is not yet; with ``fresh``, a new start of it (``launch_once`` false: one per task)."""
        with self._start_lock:
            if self._sender is None:
                self._open_sender(ctx)
            if self._script is None or fresh:
                self._script = (self._start_thread(ctx) if self.execution_mode == "in_process"
                                else self._start_process(ctx))
                # a process that has exited (its output read, its channel closed) is done with
                self._scripts = [r for r in self._scripts if r.process is None or not r.done.is_set()]
                self._scripts.append(self._script)
            return self._script

    def _open_sender(self, ctx: RunContext) -> None:
        install(force=True)  # the script's 'import nvflare.client' is this site's Client API
        event_type, fed = self._records_event(ctx)
        self._sender = sender = AnalyticsSender(event_type=event_type)
        sender.fed_events = fed
        sender.id = f"{self.id or 'executor'}.script"
        sender.handle_event(Event(EventType.START_RUN, None, "local", ctx.site_name), ctx)

    def _new_session(self, ctx: RunContext) -> Any:
        return client_session.ClientAPISession(
            ctx.site_name, ctx.job_id, self._client_config(), self._log_record, params_diff)

    def _records_event(self, ctx: RunContext) -> tuple[str, bool]:
        """The event the script's records are fired as, and whether it goes to the server as is:
        in process, the local ``analytix_log_stats`` (a ConvertToFedEvent sends it on); from a
        process of its own, ``fed.analytix_log_stats`` straight to the server, as FLARE 2.9
        does, unless a ConvertToFedEvent on the site is there to convert the local event."""
        if self.execution_mode == "in_process":
            return ANALYTIC_EVENT_TYPE, False
        for component in ctx.components.values():
            converts = getattr(component, "events_to_convert", None)
            if isinstance(converts, (list, tuple)) and ANALYTIC_EVENT_TYPE in converts:
                return ANALYTIC_EVENT_TYPE, False
        return "fed." + ANALYTIC_EVENT_TYPE, True

    def _start_thread(self, ctx: RunContext) -> ScriptRun:
        return start_thread(self._new_session(ctx), self._find_script(ctx),
                            self.task_script_args.split(), ctx)

    # -- external process ---------------------------------------------------------------

    def _command(self, ctx: RunContext) -> str | list[str]:
        """The command that starts the script (``command``)."""
        return self.command or ""

    def _launch_once(self, ctx: RunContext) -> bool:
        return self.launch_once

    def _start_process(self, ctx: RunContext) -> ScriptRun:
        """Start the script's process: the command's Python script, run by this Python with
        ``nvflare.client`` served by this site over an authenticated local channel of its
        own (a session and a token per start)."""
        custom = getattr(ctx, "custom_dir", None)
        if custom is None:
            raise JobError("the Client API command's script must be in the app's custom/ folder, "
                           "and the app has none", ctx.site_name)
        try:
            options, script, args = python_command(self._command(ctx), Path(custom))
        except ValueError as exc:
            raise JobError(str(exc), ctx.site_name) from None
        return start_process(self._new_session(ctx), script, options, args, ctx)

    def _find_script(self, ctx: RunContext) -> Path:
        """The script: a file of the app's custom/ folder whose path ends with task_script_path."""
        custom = getattr(ctx, "custom_dir", None)
        wanted = Path(str(self.task_script_path))
        if custom is not None:
            found = find_script(Path(custom), wanted)
            if found is not None:
                return found
        raise JobError(
            f"task_script_path '{self.task_script_path}' is not in the app's custom/ folder"
            + (f" ({custom})" if custom else " (the app has none)"),
            ctx.site_name,
        )

    def _client_config(self) -> dict[str, Any]:
        """What ``flare.get_config()`` returns: FLARE's ``TASK_EXCHANGE`` section."""
        return {"TASK_EXCHANGE": {
            "train_with_eval": self.train_with_evaluation,
            "exchange_format": self.params_exchange_format,
            "transfer_type": self.params_transfer_type,
            "train_task_name": self.train_task_name,
            "eval_task_name": self.evaluate_task_name,
            "submit_model_task_name": self.submit_model_task_name,
        }}

    def _end(self, ctx: RunContext) -> None:
        end_runs(self._scripts, ctx)

    # -- tasks -------------------------------------------------------------------------

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """Give the task to the script and return what it sends. With ``launch_once`` false
        the script is started for this task, and its session ends with it: the script's
        ``flare.is_running()`` turns False once its result is taken, as in FLARE."""
        if self.execution_mode == "attach":
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION,
                                 "execution_mode 'attach' is not supported yet")
        per_task = self.execution_mode == "external_process" and not self._launch_once(ctx)
        run = self._start(ctx, fresh=per_task)
        try:
            return self._run_task(run, task_name, data, ctx, abort_signal)
        finally:
            if per_task:
                run.session.stop(f"its task '{task_name}' is done (launch_once is false)")

    def _run_task(self, run: ScriptRun, task_name: str, data: FLModel, ctx: RunContext,
                  abort_signal: Signal) -> FLModel:
        session = run.session
        if run.error or run.done.is_set():
            return self._script_gone(run, task_name)
        session.give(task_name, to_script(data, ctx, self.params_exchange_format))
        waited = 0.0
        while True:
            result = session.wait_result(_POLL_SECONDS)
            if result is not None:
                break
            if abort_signal.triggered:
                session.abort("the task was aborted")
                return FLModel.error(ReturnCode.TASK_ABORTED, f"task '{task_name}' aborted")
            if run.done.is_set():
                result = session.wait_result(0)
                if result is None:
                    return self._script_gone(run, task_name)
                break
            waited += _POLL_SECONDS
            if self.result_wait_timeout and waited >= self.result_wait_timeout:
                session.abort("no result in time")
                return FLModel.error(ReturnCode.EXECUTION_EXCEPTION,
                                     f"the script sent no result for task '{task_name}' within "
                                     f"{self.result_wait_timeout:g} s (result_wait_timeout)")
        try:
            return from_script(result, data, self.params_exchange_format,
                               self.server_expected_format)
        except (TypeError, ValueError) as exc:
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION,
                                 f"the script's result for task '{task_name}' cannot be sent: {exc}")
        finally:
            self._after_task()

    def _script_gone(self, run: ScriptRun, task_name: str) -> FLModel:
        reason = run.error or (
            f"the training script returned before taking task '{task_name}' "
            "(it should loop while flare.is_running())")
        return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, reason)

    def _after_task(self) -> None:
        self._tasks_done += 1
        if self.memory_gc_rounds and self._tasks_done % self.memory_gc_rounds == 0:
            import gc

            gc.collect()
        if self.cuda_empty_cache and "torch" in sys.modules:
            torch = sys.modules["torch"]
            if torch.cuda.is_available():
                torch.cuda.empty_cache()

    # -- records -----------------------------------------------------------------------

    def _log_record(self, key: str, value: Any, data_type: Any, **kwargs: Any) -> None:
        """One ``flare.log`` call as records of the executor's AnalyticsSender."""

        log_flare_record(self._sender, key, value, data_type, **kwargs)


class InProcessClientAPIExecutor(ClientAPIExecutor):
    """FLARE 2.4–2.6's ``InProcessClientAPIExecutor``: the script in process, numpy params
    by default, training with evaluation by default."""

    SCRIPT_ARG: ClassVar[str] = "task_script_path"
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "from_nvflare_converter_id": {"*": "flconfig has no ParamsConverter components yet; "
                                           "params_exchange_format converts numpy and torch"},
        "to_nvflare_converter_id": {"*": "flconfig has no ParamsConverter components yet; "
                                         "params_exchange_format converts numpy and torch"},
    }
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "task_script_path": {"type": "string", "pattern": r"\.py$",
                             "patternErrorMessage": "the path of a Python script (.py) in the "
                                                    "app's custom/ folder"},
        "result_pull_interval": {"exclusiveMinimum": 0},
    }

    def __init__(
        self,
        task_script_path: str,
        task_script_args: str = "",
        task_wait_time: float | None = None,
        result_pull_interval: float = 0.5,
        log_pull_interval: float | None = None,
        params_exchange_format: str = "numpy",
        params_transfer_type: str = "FULL",
        from_nvflare_converter_id: str | None = None,
        to_nvflare_converter_id: str | None = None,
        train_with_evaluation: bool = True,
        train_task_name: str = "train",
        evaluate_task_name: str = "validate",
        submit_model_task_name: str = "submit_model",
    ) -> None:
        """
        Args:
            task_script_path: the script, a path inside the app's custom/ folder.
            task_script_args: its command-line arguments, split on spaces.
            task_wait_time: seconds a task waits for the script's result (None: no limit).
            result_pull_interval: accepted (flconfig is told of a result at once).
            log_pull_interval: accepted (records are sent as they are logged, none lost).
            params_exchange_format: ``numpy`` or ``pytorch`` (what the script gets).
            params_transfer_type: ``FULL`` or ``DIFF``.
            from_nvflare_converter_id: not supported yet (must be left out).
            to_nvflare_converter_id: not supported yet (must be left out).
            train_with_evaluation: told to the script (``get_config()``).
            train_task_name: the task ``flare.is_train()`` is true for.
            evaluate_task_name: the task ``flare.is_evaluate()`` is true for.
            submit_model_task_name: the task ``flare.is_submit_model()`` is true for.
        """
        super().__init__(
            "in_process", task_script_path=task_script_path, task_script_args=task_script_args,
            result_wait_timeout=task_wait_time, train_task_name=train_task_name,
            evaluate_task_name=evaluate_task_name, submit_model_task_name=submit_model_task_name,
            train_with_evaluation=train_with_evaluation,
            params_exchange_format=params_exchange_format, params_transfer_type=params_transfer_type,
        )
        self.task_wait_time = task_wait_time
        self.result_pull_interval = result_pull_interval
        self.log_pull_interval = log_pull_interval
        self.from_nvflare_converter_id = from_nvflare_converter_id
        self.to_nvflare_converter_id = to_nvflare_converter_id


class PTInProcessClientAPIExecutor(InProcessClientAPIExecutor):
    """FLARE 2.4–2.6's ``PTInProcessClientAPIExecutor``: as InProcessClientAPIExecutor, the
    script gets torch tensors (``params_exchange_format = "pytorch"``)."""

    def __init__(
        self,
        task_script_path: str,
        task_script_args: str = "",
        task_wait_time: float | None = None,
        result_pull_interval: float = 0.5,
        log_pull_interval: float | None = None,
        params_transfer_type: str = "FULL",
        from_nvflare_converter_id: str | None = None,
        to_nvflare_converter_id: str | None = None,
        train_with_evaluation: bool = True,
        train_task_name: str = "train",
        evaluate_task_name: str = "validate",
        submit_model_task_name: str = "submit_model",
        params_exchange_format: str = "pytorch",
    ) -> None:
        """
        Args:
            task_script_path: the script, a path inside the app's custom/ folder.
            task_script_args: its command-line arguments, split on spaces.
            task_wait_time: seconds a task waits for the script's result (None: no limit).
            result_pull_interval: accepted (flconfig is told of a result at once).
            log_pull_interval: accepted (records are sent as they are logged, none lost).
            params_transfer_type: ``FULL`` or ``DIFF``.
            from_nvflare_converter_id: not supported yet (must be left out).
            to_nvflare_converter_id: not supported yet (must be left out).
            train_with_evaluation: told to the script (``get_config()``).
            train_task_name: the task ``flare.is_train()`` is true for.
            evaluate_task_name: the task ``flare.is_evaluate()`` is true for.
            submit_model_task_name: the task ``flare.is_submit_model()`` is true for.
            params_exchange_format: ``pytorch`` (torch tensors) or ``numpy``.
        """
        super().__init__(
            task_script_path, task_script_args, task_wait_time, result_pull_interval,
            log_pull_interval, params_exchange_format, params_transfer_type,
            from_nvflare_converter_id, to_nvflare_converter_id, train_with_evaluation,
            train_task_name, evaluate_task_name, submit_model_task_name,
        )
