"""Running a job a script wrote: checked first, then simulated, or submitted to a server.

The environments of FLARE's recipe API call these: ``SimEnv`` and ``FedJob.simulator_run``
→ :func:`simulate` (flconfig's launcher); ``PocEnv`` and ``ProdEnv`` → :func:`submit` and
:func:`wait_and_download` (an admin's calls to a POC's or a deployment's server).
"""

from __future__ import annotations

import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ...errors import FlconfigError, Problem, errors_only
from .checking import JobInvalid, check, outside_job, say_problems
from .export import Provenance


class JobFailed(FlconfigError, RuntimeError):
    """The job ran and failed (the run's output said why); a RuntimeError, as in FLARE."""


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
    from ...launch.launcher import LaunchError, LaunchOptions, launch

    if checking_only():
        _checked_only(folder, provenance, export_problems, "run")
        return 0
    checked(folder, provenance, export_problems)
    sites = list(clients) if clients else None
    processes = max(1, min(threads, len(sites) if sites else (num_clients or threads))) if threads else None
    options = LaunchOptions(job=folder, workspace=workspace, clients=sites,
                            num_clients=None if sites else num_clients, job_id=job_id, processes=processes,
                            device="cuda" if gpu else None, fork=sys.platform.startswith("linux"),
                            out=sys.stdout)
    try:
        with outside_job():
            return launch(options)
    except LaunchError as exc:
        print(f"flconfig: {exc}", file=sys.stderr)
        return 2


def submit(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem],
           kit: Path) -> str:
    """Check the job, then submit it with the admin kit ``kit``; its id on the server."""
    from ...deploy.admin import Admin
    from ...deploy.kit import load_kit

    if checking_only():
        _checked_only(folder, provenance, export_problems, "submitted")
        return f"{CHECKED}:{folder.name}"
    checked(folder, provenance, export_problems)
    with Admin(load_kit(kit, "admin")) as admin:
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
    from ...deploy.admin import Admin
    from ...deploy.kit import load_kit

    if job_id.startswith(CHECKED):
        return {"state": "checked"}
    with Admin(load_kit(kit, "admin")) as admin:
        jobs = admin.jobs(job_id)["jobs"]
    return jobs[0] if jobs else {}


def wait_and_download(kit: Path, job_id: str, dest: Path, timeout: float = 0.0) -> Path | None:
    """Wait until the job ends (at most ``timeout`` seconds; 0: no limit), then download its
    results into ``dest/<job_id>``; None if it did not end in time."""
    from ...deploy.admin import Admin
    from ...deploy.kit import load_kit

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
    with Admin(load_kit(kit, "admin")) as admin:
        return admin.download(job_id, dest)


def abort(kit: Path, job_id: str) -> None:
    """Abort the job on the server."""
    if job_id.startswith(CHECKED):
        return
    from ...deploy.admin import Admin
    from ...deploy.kit import load_kit

    with Admin(load_kit(kit, "admin")) as admin:
        admin.abort(job_id)
