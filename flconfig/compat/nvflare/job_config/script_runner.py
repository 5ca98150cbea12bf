"""FLARE's ``nvflare.job_config.script_runner``: a training script run on the client sites.

``ScriptRunner(script="client.py", ...)`` added to client targets becomes FLARE 2.9's one
``ClientAPIExecutor`` (in the site's process, or in a process of its own started with
``command``) and puts the script, with the job's modules it imports, into ``custom/``.
"""

from __future__ import annotations

import os
import shlex
from typing import Any

from ...jobapi.standins import make
from ..client.config import ExchangeFormat, TransferType
from ..fuel.utils.constants import FrameworkType

__all__ = ["ExchangeFormat", "FrameworkType", "ScriptRunner", "TransferType"]

EXECUTOR = "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor"
_EXCHANGE = {FrameworkType.PYTORCH: ExchangeFormat.PYTORCH, FrameworkType.TENSORFLOW: ExchangeFormat.KERAS_LAYER_WEIGHTS,
             FrameworkType.NUMPY: ExchangeFormat.NUMPY, FrameworkType.RAW: ExchangeFormat.RAW}


class ScriptRunner:
    """A Client API training script for the client sites (FLARE's signature)."""

    def __init__(self, script: str, script_args: str | list[str] = "", launch_external_process: bool = False,
                 command: str | list[str] = "python3 -u", framework: FrameworkType = FrameworkType.PYTORCH,
                 server_expected_format: ExchangeFormat = ExchangeFormat.NUMPY,
                 params_transfer_type: TransferType = TransferType.FULL, launch_once: bool = True,
                 launch_timeout: float | None = 300.0, shutdown_timeout: float = 0.0,
                 memory_gc_rounds: int = 0, cuda_empty_cache: bool = False,
                 execution_mode: str | None = None) -> None:
        if execution_mode is None:
            execution_mode = "external_process" if launch_external_process else "in_process"
        if execution_mode not in ("in_process", "external_process"):
            raise ValueError(f"execution_mode must be 'in_process' or 'external_process', not {execution_mode!r}")
        if launch_external_process and execution_mode == "in_process":
            raise ValueError("launch_external_process=True contradicts execution_mode='in_process'")
        framework = FrameworkType(framework)
        if framework not in _EXCHANGE:
            raise ValueError(f"unsupported framework {framework!r}")
        self._script = script
        self._script_args = script_args
        self._command = command
        self._execution_mode = execution_mode
        self._framework = framework
        self._server_expected_format = ExchangeFormat(server_expected_format)
        self._params_transfer_type = TransferType(params_transfer_type)
        self._launch_once = launch_once
        self._launch_timeout = launch_timeout
        self._shutdown_timeout = shutdown_timeout
        self._memory_gc_rounds = memory_gc_rounds
        self._cuda_empty_cache = cuda_empty_cache

    def executor_args(self) -> dict[str, Any]:
        """The ClientAPIExecutor's arguments this runner stands for."""
        common = {"params_exchange_format": _EXCHANGE[self._framework],
                  "server_expected_format": self._server_expected_format,
                  "params_transfer_type": self._params_transfer_type,
                  "memory_gc_rounds": self._memory_gc_rounds, "cuda_empty_cache": self._cuda_empty_cache}
        if self._execution_mode == "in_process":
            args: dict[str, Any] = {"execution_mode": "in_process", "task_script_path": self._script}
            if self._script_args:
                args["task_script_args"] = (self._script_args if isinstance(self._script_args, str)
                                            else shlex.join(self._script_args))
            return {**args, **common}
        command = self._command if isinstance(self._command, list) else shlex.split(self._command)
        script = os.path.basename(self._script) if os.path.isabs(self._script) else self._script
        extra = self._script_args if isinstance(self._script_args, list) else shlex.split(self._script_args or "")
        return {"execution_mode": "external_process", "command": [*command, f"custom/{script}", *extra],
                "launch_once": self._launch_once, "launch_timeout": self._launch_timeout,
                "shutdown_timeout": self._shutdown_timeout, **common}

    def add_to_fed_job(self, job: Any, ctx: Any, tasks: list[str] | None = None) -> None:
        """Add the executor for ``tasks`` (every task by default) and the script."""
        job.check_kwargs({} if tasks is None else {"tasks": tasks}, {"tasks": False})
        executor = make(EXECUTOR, kind="executor", **self.executor_args())
        job.add_executor(executor, tasks or ["*"], ctx)
        job.add_resources([self._script], ctx)
