"""FLARE's ``nvflare.recipe.sim_env``: ``SimEnv``, a recipe's job simulated on this machine.

flconfig's launcher runs it (``flconfig launch``): the server and the sites as processes on
this machine, in ``<workspace_root>/<job name>/`` (``NVFLARE_SIMULATOR_WORKSPACE_ROOT``
overrides ``workspace_root``), the server's files in ``server/simulate_job/`` as FLARE's
simulator has them. ``deploy`` returns once the run has ended; the job's status says how.
"""

from __future__ import annotations

import os
import warnings
from pathlib import Path
from typing import Any

from ...jobapi.running import CHECKED, JobFailed, checking_only, simulate
from ...jobapi.writer import staged
from .spec import ExecEnv

WORKSPACE_ENV = "NVFLARE_SIMULATOR_WORKSPACE_ROOT"


class SimEnv(ExecEnv):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, *, num_clients: int = 0, clients: list[str] | None = None, num_threads: int | None = None,
                 gpu_config: str | None = None, log_config: str | None = None,
                 workspace_root: str = "/tmp/nvflare/simulation", extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        if clients is not None and not clients:
            raise ValueError("clients must not be empty")
        if not num_clients and not clients:
            raise ValueError("give num_clients > 0 or the list of clients")
        if num_clients and clients and num_clients != len(clients):
            raise ValueError(f"num_clients ({num_clients}) and the clients given ({len(clients)}) disagree")
        self.num_clients = num_clients or len(clients or [])
        self.clients = list(clients) if clients else None
        self.num_threads = num_threads or self.num_clients
        self.gpu_config = gpu_config
        self.log_config = log_config
        root = os.environ.get(WORKSPACE_ENV)
        if root and root != workspace_root:
            warnings.warn(f"{WORKSPACE_ENV}={root} overrides workspace_root={workspace_root}", RuntimeWarning,
                          stacklevel=2)
        self.workspace_root = root or workspace_root
        self._codes: dict[str, int] = {}

    def deploy(self, job: Any) -> str:
        workspace = Path(self.workspace_root) / job.name
        named = [t for t in job.clients if t != "@ALL"]
        clients = self.clients or (named or None)
        with staged(job) as (folder, provenance, problems):
            code = simulate(folder, provenance, problems, workspace, clients=clients,
                            num_clients=None if clients else self.num_clients, threads=self.num_threads,
                            gpu=self.gpu_config)
        self._codes[job.name] = code
        if code != 0:
            raise JobFailed(f"the job {job.name} failed (exit code {code}); see above")
        return str(job.name)

    def get_job_status(self, job_id: str) -> str | None:
        if checking_only():
            return CHECKED
        code = self._codes.get(job_id)
        if code is None:
            return None
        return {0: "FINISHED:COMPLETED", 130: "FINISHED:ABORTED"}.get(code, "FINISHED:EXECUTION_EXCEPTION")

    def abort_job(self, job_id: str) -> None:
        print("flconfig: a simulated job has ended when its run returns; there is nothing to abort")

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        return os.path.join(self.workspace_root, job_id)
