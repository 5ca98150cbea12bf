"""The seam to the worker processes: what a job's server or a group of sites is started with.

Whoever starts a job's processes (the launcher, a deployed server, a deployed site) builds
one :class:`WorkerSpec`, writes it once as ``spec.json`` beside the run plan (owner-only:
the sites' tokens are inside) and starts ``python -m flconfig.runtime.worker server|clients
--spec FILE`` (:func:`worker_command`). The worker reads it back with
:meth:`WorkerSpec.load`, which refuses a file that is not one. Defaults live here, once.

The job's server writes the port it listens on to ``port_file`` when it is ready;
:func:`wait_for_port` is the one wait for it.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, fields, replace
from pathlib import Path
from types import MappingProxyType

from ..errors import JobError
from ..files import write_atomic

#: The start of the server's last line on stdout: its final status as JSON, for whoever
#: started it (the launcher reads it and does not print it); the server's ``status.json``
#: holds the same, unless the disk is full.
STATUS_MARKER = "@@flconfig-status "
#: The server's final status, as JSON, in its run folder.
STATUS_FILE = "status.json"
#: Seconds a site waits to connect, and a server for its sites, unless the starter says.
STARTUP_TIMEOUT = 120.0
#: Seconds a server waits for its sites' Byes once the run is over.
END_TIMEOUT = 60.0
#: Seconds a site's link keeps retrying a call the network failed.
RETRY_TIMEOUT = 60.0


def heartbeat_interval_for(heartbeat_timeout: float) -> float:
    """How often a site beats so that a server waiting ``heartbeat_timeout`` hears it: a
    quarter of it, between 0.2 and 5 seconds."""
    return max(0.2, min(5.0, heartbeat_timeout / 4))


@dataclass(frozen=True)
class WorkerSpec:
    """What a worker process runs: the plan, the run, its sites and their tokens, how long
    to wait, where the server listens (see the module docstring)."""

    #: The run plan file (:func:`flconfig.runtime.plan.load_plan`).
    plan: str
    #: The workspace: each site's files in ``WORKSPACE/SITE/JOB_ID`` unless ``run_dir``.
    workspace: str
    job_id: str
    #: Every client site of the run, in launch order.
    sites: tuple[str, ...]
    #: Each site's token; a site's process gets its own only.
    credentials: Mapping[str, str]
    heartbeat_timeout: float
    #: Seconds between a site's heartbeats (default: :func:`heartbeat_interval_for`).
    heartbeat_interval: float = 0.0
    #: Torch threads in each process.
    threads: int = 1
    #: The device every site trains on (``flconfig launch --device``), else each config's.
    device: str | None = None
    #: Sites the server needs to start and to go on (None: every site).
    min_clients: int | None = None
    #: Where the server writes its port once it listens (None: the port is given).
    port_file: str | None = None
    #: Seconds between the server's live metric lines (0: none).
    live_metrics_interval: float = 0.0
    startup_timeout: float = STARTUP_TIMEOUT
    end_timeout: float = END_TIMEOUT
    retry_timeout: float = RETRY_TIMEOUT
    #: Where the server listens, and on which port (0: any free one, written to ``port_file``).
    host: str = "127.0.0.1"
    port: int = 0
    #: Where the sites reach the server (None: 127.0.0.1 and the port in ``port_file``).
    address: str | None = None
    #: This participant's folder for the run (a deployed job's), instead of the workspace's.
    run_dir: str | None = None
    #: The participant's certificate files (``ca``, ``cert``, ``key``, ``crl``): mutual TLS.
    tls: Mapping[str, str] | None = None
    #: Whether the server reads on its stdin which site processes died (the launcher says).
    process_events: bool = False

    def __post_init__(self) -> None:
        self._check()
        object.__setattr__(self, "sites", tuple(self.sites))
        object.__setattr__(self, "credentials", MappingProxyType(dict(self.credentials)))
        if self.tls is not None:
            object.__setattr__(self, "tls", MappingProxyType(dict(self.tls)))
        if not self.heartbeat_interval:
            object.__setattr__(self, "heartbeat_interval", heartbeat_interval_for(self.heartbeat_timeout))

    def run_dir_of(self, site: str) -> Path:
        """Where ``site`` keeps this run's files."""
        return Path(self.run_dir) if self.run_dir else Path(self.workspace) / site / self.job_id

    def with_address(self, address: str) -> WorkerSpec:
        """This spec with the server's address known."""
        return replace(self, address=address)

    def to_json(self) -> str:
        data: dict[str, object] = {f.name: getattr(self, f.name) for f in fields(self)}
        data["sites"] = list(self.sites)
        data["credentials"] = dict(self.credentials)
        data["tls"] = dict(self.tls) if self.tls is not None else None
        return json.dumps(data)

    def write(self, path: Path) -> Path:
        """Write the spec to ``path``, whole and readable by its owner only."""
        write_atomic(path, self.to_json().encode(), mode=0o600)
        return path

    @classmethod
    def load(cls, path: str | Path) -> WorkerSpec:
        """The spec in ``path``; :class:`JobError` saying what is wrong with a file that is
        not one (a missing key, an unknown one, a value of the wrong type)."""
        try:
            text = Path(path).read_text()
        except OSError as exc:
            raise JobError(f"cannot read the worker spec {path}: {exc}") from None
        return cls.from_json(text, str(path))

    @classmethod
    def from_json(cls, text: str, path: str = "(text)") -> WorkerSpec:
        """The spec :meth:`to_json` wrote (``path`` names where it came from in errors);
        :class:`JobError` as :meth:`load`."""
        try:
            data = json.loads(text)
        except ValueError as exc:
            raise JobError(f"cannot read the worker spec {path}: {exc}") from None
        if not isinstance(data, dict):
            raise JobError(f"the worker spec {path} is not a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise JobError(f"the worker spec {path} has unknown keys: {', '.join(unknown)}")
        try:
            return cls(**data)
        except (TypeError, ValueError) as exc:
            raise JobError(f"the worker spec {path}: {exc}") from None

    def _check(self) -> None:
        """ValueError naming the fields whose values are of the wrong kind."""
        problems = [name for name, ok in (
            ("plan", isinstance(self.plan, str)), ("workspace", isinstance(self.workspace, str)),
            ("job_id", isinstance(self.job_id, str)),
            ("sites", isinstance(self.sites, (list, tuple)) and all(isinstance(s, str) for s in self.sites)),
            ("credentials", isinstance(self.credentials, Mapping)
             and all(isinstance(k, str) and isinstance(v, str) for k, v in self.credentials.items())),
            ("heartbeat_timeout", _is_number(self.heartbeat_timeout) and self.heartbeat_timeout > 0),
            ("threads", isinstance(self.threads, int) and self.threads >= 1),
            ("port", isinstance(self.port, int) and 0 <= self.port <= 65535),
        ) if not ok]
        if problems:
            raise ValueError(f"a wrong value for {', '.join(problems)}")


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def worker_command(role: str, spec_file: Path, sites: list[str] | None = None) -> list[str]:
    """The command line of a worker process: the job's server (``role="server"``) or the
    client sites ``sites`` (``role="clients"``), each started with ``spec_file``."""
    argv = [role, "--spec", str(spec_file)]
    if sites is not None:
        argv += ["--sites", ",".join(sites)]
    return [sys.executable, "-P", "-m", "flconfig.runtime.worker", *argv]


def wait_for_port(port_file: Path, timeout: float, alive: Callable[[], bool] = lambda: True) -> int | None:
    """The port the job's server wrote to ``port_file`` once it listens; None if it did not
    within ``timeout`` seconds, or if ``alive()`` says the server is gone."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            text = port_file.read_text().strip()
        except OSError:
            text = ""
        if text.isdigit():
            return int(text)
        if not alive():
            return None
        time.sleep(0.05)
    return None
