"""What a deployed server's calls and its scheduler share: the runs, the sites, one lock.

:class:`Board` is the state the site calls (:mod:`.site_calls`), the admin calls
(:mod:`.admin_calls`), the gate (:mod:`.gate`) and the scheduler (:mod:`.scheduler`)
read and change, all under its one condition; :class:`Run` is one job the scheduler
is taking through waiting, deploying and running. The files of a job on the server
are ``WORKSPACE/JOB_ID/`` (:func:`job_folder`).
"""

from __future__ import annotations

import subprocess
import threading
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..errors import FlconfigError, Problem
from ..validate.loader import inspect_job
from . import store as st
from . import wire

JOB_FOLDER = "job"  # WORKSPACE/JOB_ID/job: the job as submitted
CONTROL = ".control"  # WORKSPACE/JOB_ID/.control: spec (tokens inside), plan; never downloaded
SITE_LOGS = "sites"
#: A site counts as connected while it polled within this many seconds.
SITE_TIMEOUT_S = 2 * wire.POLL_S + 10


class ServiceError(FlconfigError):
    """The service cannot start (its port, its workspace), or a job's server did not."""


@dataclass(eq=False)
class Run:
    """A job the scheduler is taking through waiting, deploying and running."""

    record: st.JobRecord
    folder: Path
    job: Any  # the checked Job
    #: Seconds of silence after which the job's server counts a site lost.
    heartbeat: float = 60.0
    state: str = st.WAITING
    since: float = field(default_factory=time.monotonic)
    first_site_at: float | None = None
    sites: list[str] = field(default_factory=list)  # chosen
    need: int = 1
    answers: dict[str, str] = field(default_factory=dict)  # site -> "" (accepted) or why refused
    tokens: dict[str, str] = field(default_factory=dict)  # of every chosen site
    accepted: list[str] = field(default_factory=list)  # the sites the job runs on
    port: int | None = None  # the job's server's, chosen when it deploys
    proc: subprocess.Popen[bytes] | None = None
    abort: str = ""  # why it is to be aborted (an admin, a shutdown)
    site_reports: dict[str, str] = field(default_factory=dict)  # site -> final state/reason
    #: (state, why) once the job ended; it stays among the runs until the store records it.
    ended: tuple[str, str] | None = None
    #: Why the store could not record the end yet ("" once said, or when it could).
    unrecorded: str = ""


class Board:
    """The server's shared state; every field is read and changed under :attr:`cond`."""

    def __init__(self, workspace: Path, say: Callable[[str], None]) -> None:
        #: The server's workspace (resolved).
        self.workspace = workspace
        #: Says a line to the server's operator (and its log).
        self.say = say
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.sites: dict[str, float] = {}  # site -> last poll (monotonic)
        self.polling: dict[str, int] = {}  # site -> polls open now
        self.runs: dict[str, Run] = {}
        #: Set when the server stops (an admin's shutdown, SIGTERM, Ctrl-C).
        self.stop = threading.Event()
        #: The server asks its sites to shut down.
        self.stop_sites = False

    def notify(self) -> None:
        """Wake every poll and the scheduler: something changed."""
        with self.cond:
            self.cond.notify_all()

    def connected(self) -> list[str]:
        """The sites connected now: polling, or polled within :data:`SITE_TIMEOUT_S`."""
        now = time.monotonic()
        with self.lock:
            return sorted(s for s, seen in self.sites.items()
                          if self.polling.get(s) or now - seen < SITE_TIMEOUT_S)


def job_folder(workspace: Path, job_id: str) -> Path | None:
    """The folder of job ``job_id`` in ``workspace``; None if that is not a job's id or
    there is no such folder."""
    try:
        uuid.UUID(job_id)
    except ValueError:
        return None
    folder = workspace / job_id
    return folder if folder.is_dir() else None


def inspect_submitted(folder: Path, allow_custom_code: bool) -> tuple[Any, list[Problem]]:
    """The submitted job at ``folder`` checked as the server runs it: no environment, and
    no custom code unless its kit allows it (the job's server app then holding custom code,
    or naming a class of the job folder, is an error of validate's report)."""
    return inspect_job(folder, participant="server", allow_custom_code=allow_custom_code)
