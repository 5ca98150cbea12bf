"""FLARE's external-process Client API: the training script in a process of its own.

FLARE 2.4–2.6 configs write it as a ``ClientAPILauncherExecutor`` (or the PyTorch
one) with a ``SubprocessLauncher`` whose ``script`` starts the training script
(``python3 -u custom/train.py ...``), pipes for the task data and the metrics
(``CellPipe``/``FilePipe``), a ``MetricRelay`` that fires the script's records as a
fed event and an ``ExternalConfigurator``. flconfig runs the same configs: the
script runs in a child process, by this Python, with ``nvflare.client`` served by
its site over an authenticated local channel (:mod:`flconfig.compat.remote`; no
pickle); the pipes and the configurator are accepted and have nothing to do, the
channel being flconfig's own. The command must run a Python script of the app's
``custom/`` folder: a config never starts a program of its choosing.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..errors import JobError
from ..types import RunContext
from .base import Component, Widget
from .client_api import ClientAPIExecutor


class SubprocessLauncher(Component):
    """FLARE's ``SubprocessLauncher``: the command that starts a Client API script.

    ``script`` must be ``python[3] [-u ...] custom/<file>.py [args]``; it runs in the
    site's run folder.
    """

    kind = "launcher"
    COMMAND_ARG: ClassVar[str] = "script"
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "clean_up_script": {"*": "flconfig runs no clean-up command (a config starts only the training script)"},
    }
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"script": {"minLength": 1}, "shutdown_timeout": {"minimum": 0}}

    def __init__(self, script: str, launch_once: bool = True, clean_up_script: str | None = None,
                 shutdown_timeout: float = 0.0) -> None:
        """
        Args:
            script: the command, e.g. ``python3 -u custom/train.py --epochs 2``.
            launch_once: start the script once for the run (else once per task).
            clean_up_script: not supported yet.
            shutdown_timeout: accepted.
        """
        self.script = script
        self.launch_once = launch_once
        self.clean_up_script = clean_up_script
        self.shutdown_timeout = shutdown_timeout


class ClientAPILauncherExecutor(ClientAPIExecutor):
    """FLARE's ``ClientAPILauncherExecutor``: the Client API with the script in its own
    process, started by the ``SubprocessLauncher`` ``launcher_id`` names. Records go out
    as the site's ``MetricRelay`` says (a fed event, as FLARE's relay fires them), or as
    the local ``analytix_log_stats`` without one."""

    REFERENCES: ClassVar[dict[str, str]] = {"launcher_id": "launcher", "pipe_id": "pipe"}
    SCRIPT_ARG: ClassVar[str] = ""
    EMITS: ClassVar[str] = ""
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "from_nvflare_converter_id": {"*": "flconfig has no ParamsConverter components yet; "
                                           "params_exchange_format converts numpy and torch"},
        "to_nvflare_converter_id": {"*": "flconfig has no ParamsConverter components yet; "
                                         "params_exchange_format converts numpy and torch"},
    }
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "pipe_id": {"minLength": 1},
        "launcher_id": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 1}]},
        "params_exchange_format": {"enum": ["raw", "numpy", "pytorch"]},
        "params_transfer_type": {"enum": ["FULL", "DIFF"]},
    }

    def __init__(
        self,
        pipe_id: str,
        launcher_id: str | None = None,
        launch_timeout: float | None = None,
        task_wait_timeout: float | None = None,
        last_result_transfer_timeout: float = 300.0,
        external_pre_init_timeout: float = 60.0,
        peer_read_timeout: float | None = 60.0,
        monitor_interval: float = 0.01,
        read_interval: float = 0.5,
        heartbeat_interval: float = 5.0,
        heartbeat_timeout: float = 60.0,
        workers: int = 4,
        train_with_evaluation: bool = True,
        train_task_name: str = "train",
        evaluate_task_name: str = "validate",
        submit_model_task_name: str = "submit_model",
        from_nvflare_converter_id: str | None = None,
        to_nvflare_converter_id: str | None = None,
        params_exchange_format: str = "numpy",
        params_transfer_type: str = "FULL",
        config_file_name: str = "client_api_config.json",
        server_expected_format: str = "numpy",
        memory_gc_rounds: int = 0,
        cuda_empty_cache: bool = False,
        submit_result_timeout: float = 300.0,
        max_resends: int | None = 3,
        download_complete_timeout: float = 1800.0,
    ) -> None:
        """
        Args:
            pipe_id: FLARE's task pipe (accepted: flconfig's own channel carries the tasks).
            launcher_id: the SubprocessLauncher that starts the script.
            launch_timeout: accepted.
            task_wait_timeout: seconds a task waits for the script's result (None: no limit).
            last_result_transfer_timeout: accepted.
            external_pre_init_timeout: accepted.
            peer_read_timeout: accepted.
            monitor_interval: accepted.
            read_interval: accepted.
            heartbeat_interval: accepted (a process that exits fails its task at once).
            heartbeat_timeout: accepted.
            workers: accepted.
            train_with_evaluation: told to the script (``get_config()``).
            train_task_name: the task ``flare.is_train()`` is true for.
            evaluate_task_name: the task ``flare.is_evaluate()`` is true for.
            submit_model_task_name: the task ``flare.is_submit_model()`` is true for.
            from_nvflare_converter_id: not supported yet.
            to_nvflare_converter_id: not supported yet.
            params_exchange_format: ``numpy``/``raw`` arrays or ``pytorch`` tensors for the script.
            params_transfer_type: ``FULL`` or ``DIFF``.
            config_file_name: accepted (the script gets its configuration over the channel).
            server_expected_format: what the server's side takes (FLARE 2.7+), as ClientAPIExecutor.
            memory_gc_rounds: as ClientAPIExecutor (FLARE 2.7+).
            cuda_empty_cache: as ClientAPIExecutor (FLARE 2.7+).
            submit_result_timeout: accepted (FLARE 2.8).
            max_resends: accepted (FLARE 2.8; flconfig's channel acknowledges every result).
            download_complete_timeout: accepted (FLARE 2.8).
        """
        super().__init__(
            "external_process", command="", result_wait_timeout=task_wait_timeout,
            train_task_name=train_task_name, evaluate_task_name=evaluate_task_name,
            submit_model_task_name=submit_model_task_name, train_with_evaluation=train_with_evaluation,
            params_exchange_format=params_exchange_format, params_transfer_type=params_transfer_type,
            server_expected_format=server_expected_format, memory_gc_rounds=memory_gc_rounds,
            cuda_empty_cache=cuda_empty_cache,
        )
        self.submit_result_timeout = submit_result_timeout
        self.max_resends = max_resends
        self.download_complete_timeout = download_complete_timeout
        self.pipe_id = pipe_id
        self.launcher_id = launcher_id
        self.launch_timeout = launch_timeout  # type: ignore[assignment]
        self.task_wait_timeout = task_wait_timeout
        self.last_result_transfer_timeout = last_result_transfer_timeout
        self.external_pre_init_timeout = external_pre_init_timeout
        self.peer_read_timeout = peer_read_timeout
        self.monitor_interval = monitor_interval
        self.read_interval = read_interval
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.workers = workers
        self.from_nvflare_converter_id = from_nvflare_converter_id
        self.to_nvflare_converter_id = to_nvflare_converter_id
        self.config_file_name = config_file_name

    def _launcher(self, ctx: RunContext) -> SubprocessLauncher:
        launcher = ctx.get_component(self.launcher_id) if self.launcher_id else None
        if not isinstance(launcher, SubprocessLauncher):
            raise JobError(f"launcher_id {self.launcher_id!r} names no SubprocessLauncher: nothing "
                           "starts the training script", ctx.site_name)
        return launcher

    def _command(self, ctx: RunContext) -> str | list[str]:
        return self._launcher(ctx).script

    def _launch_once(self, ctx: RunContext) -> bool:
        return self._launcher(ctx).launch_once

    def _records_event(self, ctx: RunContext) -> tuple[str, bool]:
        relays = [c for c in ctx.components.values() if isinstance(c, MetricRelay)]
        if relays:
            return relays[0].event_type, relays[0].fed_event
        return super()._records_event(ctx)


class PTClientAPILauncherExecutor(ClientAPILauncherExecutor):
    """FLARE's ``PTClientAPILauncherExecutor``: as ClientAPILauncherExecutor, torch tensors
    for the script (``params_exchange_format = "pytorch"``)."""

    def __init__(self, *args: Any, params_exchange_format: str = "pytorch", **kwargs: Any) -> None:
        """
        Args:
            params_exchange_format: ``pytorch`` tensors (default) or ``numpy`` arrays.

        The other arguments are ClientAPILauncherExecutor's, in its order.
        """
        kwargs["params_exchange_format"] = params_exchange_format
        super().__init__(*args, **kwargs)


class CellPipe(Component):
    """FLARE's ``CellPipe``, accepted as the configs write it: flconfig's own local channel
    carries the tasks and records between a site and its script."""

    kind = "pipe"

    def __init__(self, mode: str = "PASSIVE", site_name: str = "", token: str = "", root_url: str = "",
                 secure_mode: bool | str = True, workspace_dir: str = "") -> None:
        """
        Args:
            mode: accepted.
            site_name: accepted.
            token: accepted.
            root_url: accepted.
            secure_mode: accepted.
            workspace_dir: accepted.
        """
        self.mode = mode
        self.site_name = site_name
        self.token = token
        self.root_url = root_url
        self.secure_mode = secure_mode
        self.workspace_dir = workspace_dir


class FilePipe(Component):
    """FLARE's ``FilePipe``, accepted as the configs write it (see CellPipe)."""

    kind = "pipe"

    def __init__(self, mode: str = "PASSIVE", root_path: str = "", file_check_interval: float = 0.1) -> None:
        """
        Args:
            mode: accepted.
            root_path: accepted.
            file_check_interval: accepted.
        """
        self.mode = mode
        self.root_path = root_path
        self.file_check_interval = file_check_interval


class MetricRelay(Widget):
    """FLARE's ``MetricRelay``: the records of the site's external Client API script are
    fired as ``event_type`` (as a fed event, sent to the server, with ``fed_event``)."""

    REFERENCES: ClassVar[dict[str, str]] = {"pipe_id": "pipe"}
    FED_EMITS_ARG: ClassVar[str] = "event_type"
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"event_type": {"minLength": 1}}

    def __init__(self, pipe_id: str = "", read_interval: float = 0.1, heartbeat_interval: float = 5.0,
                 heartbeat_timeout: float = 60.0, pipe_channel_name: str = "metric",
                 event_type: str = "analytix_log_stats", fed_event: bool = True) -> None:
        """
        Args:
            pipe_id: FLARE's metrics pipe (accepted).
            read_interval: accepted (records are sent as they are logged).
            heartbeat_interval: accepted.
            heartbeat_timeout: accepted.
            pipe_channel_name: accepted.
            event_type: the event the records are fired as (FLARE's jobs: ``fed.analytix_log_stats``).
            fed_event: send them to the server as a fed event.
        """
        self.pipe_id = pipe_id
        self.read_interval = read_interval
        self.heartbeat_interval = heartbeat_interval
        self.heartbeat_timeout = heartbeat_timeout
        self.pipe_channel_name = pipe_channel_name
        self.event_type = event_type
        self.fed_event = fed_event


class ExternalConfigurator(Widget):
    """FLARE's ``ExternalConfigurator``, accepted: flconfig gives the script its
    configuration over the site's channel, no file is written."""

    def __init__(self, component_ids: list[str] | None = None,
                 config_file_name: str = "client_api_config.json") -> None:
        """
        Args:
            component_ids: accepted.
            config_file_name: accepted.
        """
        self.component_ids = list(component_ids or [])
        self.config_file_name = config_file_name
