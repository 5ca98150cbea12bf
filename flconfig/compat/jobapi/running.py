"""Running a job a script wrote: checked first, then simulated, or submitted to a server.

The environments of FLARE's recipe API call these: ``SimEnv`` and ``FedJob.simulator_run``
→ :func:`simulate` (flconfig's launcher); ``PocEnv`` and ``ProdEnv`` → :func:`submit` and
:func:`wait_and_download` (an admin's calls to a POC's or a deployment's server).

The launcher, the admin's client and the POC live in layers above this one; ``flconfig
run`` hands them in as :class:`Services` (:func:`use_services`) before the script runs.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any, Protocol

from ...errors import FlconfigError, Problem, errors_only
from .checking import JobInvalid, check, outside_job, say_problems
from .export import Provenance


class JobFailed(FlconfigError, RuntimeError):
    """The job ran and failed (the run's output said why); a RuntimeError, as in FLARE."""


class AdminCalls(Protocol):
    """An admin's calls to a server (what :class:`flconfig.deploy.admin.Admin` answers)."""

    def submit(self, folder: Path, shown: str | None = None) -> dict[str, Any]: ...

    def jobs(self, job_id: str | None = None) -> dict[str, Any]: ...

    def download(self, job_id: str, dest: Path) -> Path: ...

    def abort(self, job_id: str) -> object: ...


class Services(Protocol):
    """What running a job needs from the layers above the job API."""

    def launch(self, folder: Path, workspace: Path, *, clients: list[str] | None,
               num_clients: int | None, job_id: str, processes: int | None,
               device: str | None) -> int:
        """Run the checked job at ``folder`` with flconfig's launcher; its exit code (2,
        with one line, if it could not start)."""
        ...

    def admin(self, kit: Path) -> AbstractContextManager[AdminCalls]:
        """An admin's connection to the server, with the admin kit at ``kit``."""
        ...

    def poc_admin_kit(self) -> Path:
        """The admin kit of this machine's POC (whether or not it is prepared yet)."""
        ...

    def poc_up(self, clients: list[str]) -> None:
        """Prepare this machine's POC for ``clients`` unless it is, and start it unless it
        runs; returns once every site is connected."""
        ...

    def poc_down(self) -> None:
        """Stop this machine's POC (its folder stays)."""
        ...


_SERVICES: list[Services] = []


def use_services(services: Services | None) -> None:
    """Hand in (or, with None, take back) what runs and submits jobs: ``flconfig run`` does,
    before the script runs."""
    _SERVICES[:] = [services] if services is not None else []


def services() -> Services:
    """The services handed in; :class:`FlconfigError` if none were (the job API used outside
    ``flconfig run``)."""
    if not _SERVICES:
        raise FlconfigError("a job script's jobs run under 'flconfig run job.py'")
    return _SERVICES[0]


#: ``flconfig run --check``: every job the script would run is checked and (where a folder
#: is given) kept there, and none runs. ``[]``: off; ``[None]``: on, nothing kept.
_CHECK_ONLY: list[Path | None] = []
#: What a job only checked reads as (its status, for ``Run.get_status``).
CHECKED = "CHECKED:NOT_RUN"


def check_only(keep: Path | None = None, *, on: bool = True) -> None:
    """Turn checking-only on (keeping the written jobs in ``keep``) or off."""
    _CHECK_ONLY[:] = [keep] if on else []


def checking_only() -> bool:
    """Whether jobs are only checked, never run (``flconfig run --check``)."""
    return bool(_CHECK_ONLY)


def _checked_only(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem],
                  where: str) -> None:
    """Check the job; keep a copy if asked; say that it was not run."""
    import shutil

    checked(folder, provenance, export_problems)
    keep = _CHECK_ONLY[0]
    kept = ""
    if keep is not None:
        target = keep / folder.name
        n = 1
        while target.exists():
            n += 1
            target = keep / f"{folder.name}-{n}"
        shutil.copytree(folder, target)
        kept = f", written to {target}"
    print(f"flconfig: job {folder.name} is valid{kept}; not {where} (--check)")


def checked(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem]) -> None:
    """Check the written job; print its problems; :class:`JobInvalid` if any is an error."""
    problems = check(folder, provenance, export_problems)
    say_problems(problems)
    if errors_only(problems):
        raise JobInvalid(problems, folder)


def simulate(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem],
             workspace: Path, *, clients: list[str] | None = None, num_clients: int | None = None,
             threads: int | None = None, gpu: str | None = None, job_id: str = "simulate_job") -> int:
    """Check the job at ``folder``, then run it with flconfig's launcher: the server's files
    in ``workspace/server/<job_id>/`` as FLARE's simulator has them; the exit code."""
    if checking_only():
        _checked_only(folder, provenance, export_problems, "run")
        return 0
    checked(folder, provenance, export_problems)
    sites = list(clients) if clients else None
    processes = max(1, min(threads, len(sites) if sites else (num_clients or threads))) if threads else None
    with outside_job():
        return services().launch(folder, workspace, clients=sites, num_clients=None if sites else num_clients,
                                 job_id=job_id, processes=processes, device="cuda" if gpu else None)


def submit(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem],
           kit: Path) -> str:
    """Check the job, then submit it with the admin kit ``kit``; its id on the server."""
    if checking_only():
        _checked_only(folder, provenance, export_problems, "submitted")
        return f"{CHECKED}:{folder.name}"
    checked(folder, provenance, export_problems)
    with services().admin(kit) as admin:
        answer = admin.submit(folder, shown=str(folder))
    if not answer.get("ok"):
        sys.stderr.write(str(answer.get("report", "")))
        raise JobInvalid([], folder)
    job_id = str(answer["job_id"])
    print(f"flconfig: job {job_id} submitted")
    return job_id


#: What an ended job's state reads as in FLARE's terms.
FLARE_STATUS = {"finished": "FINISHED:COMPLETED", "failed": "FINISHED:EXECUTION_EXCEPTION",
                "aborted": "FINISHED:ABORTED", "running": "RUNNING", "deploying": "DISPATCHED",
                "waiting": "SUBMITTED", "submitted": "SUBMITTED", "checked": CHECKED}


def job_state(kit: Path, job_id: str) -> dict[str, Any]:
    """The server's record of the job (state, error ...)."""
    if job_id.startswith(CHECKED):
        return {"state": "checked"}
    with services().admin(kit) as admin:
        jobs = admin.jobs(job_id)["jobs"]
    return jobs[0] if jobs else {}


def wait_and_download(kit: Path, job_id: str, dest: Path, timeout: float = 0.0) -> Path | None:
    """Wait until the job ends (at most ``timeout`` seconds; 0: no limit), then download its
    results into ``dest/<job_id>``; None if it did not end in time."""
    if job_id.startswith(CHECKED):
        return None
    deadline = time.monotonic() + timeout if timeout > 0 else None
    while True:
        state = job_state(kit, job_id).get("state", "")
        if state in ("finished", "failed", "aborted"):
            break
        if deadline is not None and time.monotonic() > deadline:
            return None
        time.sleep(1.0)
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / job_id
    if target.exists():
        return target
    with services().admin(kit) as admin:
        return admin.download(job_id, dest)


def abort(kit: Path, job_id: str) -> None:
    """Abort the job on the server."""
    if job_id.startswith(CHECKED):
        return
    with services().admin(kit) as admin:
        admin.abort(job_id)
