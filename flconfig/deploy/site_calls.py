"""The calls a deployed server answers for its sites: Poll, FetchJob, Report, PushLog.

A site polls for work (jobs to deploy, to start, to abort), fetches a job's folder,
reports whether it accepted the job and how its run ended, and pushes its log of the
job, which the server keeps in ``WORKSPACE/JOB_ID/sites/SITE/log.txt``.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

from . import deploy_pb2 as pb
from . import store as st
from . import wire
from .archive import pack_folder
from .state import JOB_FOLDER, SITE_LOGS, Board, Run, job_folder

#: At most POLL_SLOTS of the server's threads hold a site's poll, so admins and the sites'
#: other calls always find one free. Beyond that, polls are answered at once and the site
#: asked to come back in RETRY_AFTER_S (more sites: slower reactions, never a stalled server).
POLL_SLOTS, RETRY_AFTER_S = 96, 2.0
#: Largest copy of one site's log of one job the server keeps.
MAX_SITE_LOG_BYTES = 256 * 1024 * 1024


class SiteCalls:
    """The site methods of the control service, on the server's :class:`Board` and job store
    (``store`` gives it: the store opens once the port is bound)."""

    def __init__(self, board: Board, store: Callable[[], st.JobStore]) -> None:
        self._board = board
        self._store = store

    def poll(self, site: str, request: pb.PollRequest, context: Any) -> pb.PollReply:
        """The site's work (deploy, start, abort, shut down), held up to :data:`wire.POLL_S`
        until there is some."""
        board = self._board
        known = dict(request.jobs)
        wait = min(request.wait, wire.POLL_S) if request.HasField("wait") else wire.POLL_S
        with board.cond:
            first = site not in board.sites
            board.sites[site] = time.monotonic()
            busy = sum(board.polling.values()) >= POLL_SLOTS
            if busy:
                wait = 0.0
            board.polling[site] = board.polling.get(site, 0) + 1
            board.cond.notify_all()
        deadline = time.monotonic() + max(0.0, wait)
        if first:
            board.say(f"site {site} connected")
        try:
            with board.cond:
                while True:
                    work = self._work_for(site, known)
                    remaining = deadline - time.monotonic()
                    if (work.deploy or work.start or work.abort or work.shutdown or remaining <= 0
                            or board.stop.is_set() or not context.is_active()):
                        break
                    board.cond.wait(min(remaining, 1.0))
                board.sites[site] = time.monotonic()
                if busy and not (work.deploy or work.start or work.abort or work.shutdown):
                    work.retry_after = RETRY_AFTER_S
                return work
        finally:
            with board.cond:
                board.polling[site] -= 1

    def _work_for(self, site: str, known: dict[str, str]) -> pb.PollReply:
        work = pb.PollReply(shutdown=self._board.stop_sites)
        runs = self._board.runs
        for job_id, run in runs.items():
            if site not in run.sites or run.abort or run.ended:
                continue
            have = known.get(job_id)
            if run.state == st.DEPLOYING and site not in run.answers and have is None:
                # With where to connect: a site that accepts starts its job process at once,
                # and it imports and connects while the job's server starts.
                work.deploy.append(_start_item(run, site, name=run.record.name))
            elif (run.state == st.RUNNING and site in run.accepted and have in ("accepted", None)
                  and site not in run.site_reports):
                work.start.append(_start_item(run, site))
        for job_id, have in known.items():
            current = runs.get(job_id)
            if have in ("deployed", "accepted", "running") and (
                    current is None or current.abort or current.ended or site not in current.sites
                    or (current.state == st.RUNNING and site not in current.accepted)):
                work.abort.append(job_id)
        return work

    def fetch_job(self, site: str, request: pb.FetchJobRequest, context: Any) -> pb.FetchJobReply:
        """The folder of a job deployed to ``site``, zipped."""
        job_id = wire.required(request.job_id, "job_id")
        with self._board.lock:
            run = self._board.runs.get(job_id)
            allowed = run is not None and site in run.sites
        if not allowed or run is None:
            return pb.FetchJobReply(error=f"job {job_id} is not for {site}")
        data = pack_folder(run.folder / JOB_FOLDER, max_bytes=wire.MAX_JOB_BYTES)
        return pb.FetchJobReply(job_id=job_id, job=data)

    def report(self, site: str, request: pb.ReportRequest, context: Any) -> pb.ReportReply:
        """The site accepted or refused a job, or its run of the job ended."""
        job_id, state = wire.required(request.job_id, "job_id"), wire.required(request.state, "state")
        reason = request.reason[:2000]
        board = self._board
        with board.cond:
            run = board.runs.get(job_id)
            if run is None or site not in run.sites:
                return pb.ReportReply(ok=False)
            if state in ("accepted", "refused") and run.state == st.DEPLOYING:
                run.answers[site] = "" if state == "accepted" else (reason or "refused")
                if state == "refused":
                    board.say(f"job {job_id}: {site} refused it: {reason}")
            elif state in ("finished", "failed", "aborted"):
                run.site_reports[site] = state if not reason else f"{state}: {reason}"
            board.cond.notify_all()
        return pb.ReportReply(ok=True)

    def push_log(self, site: str, request: pb.PushLogRequest, context: Any) -> pb.PushLogReply:
        """The next bytes of the site's log of a job, at ``offset``; the reply says where the
        server's copy ends."""
        job_id, offset, blob = wire.required(request.job_id, "job_id"), request.offset, request.data
        folder = job_folder(self._board.workspace, job_id)
        if folder is None or len(blob) > wire.LOG_CHUNK:
            return pb.PushLogReply(ok=False)
        record = self._store().get(job_id)
        if record is None or site not in record.sites:
            return pb.PushLogReply(ok=False)
        path = folder / SITE_LOGS / site / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size + len(blob) > MAX_SITE_LOG_BYTES:  # a site cannot fill the server's disk
            return pb.PushLogReply(ok=False, offset=size + len(blob), error="the site's log is over its limit")
        if offset != size:  # resend after a lost reply, or a gap: say where we are
            return pb.PushLogReply(ok=False, offset=size)
        with open(path, "ab") as f:
            f.write(blob)
        return pb.PushLogReply(ok=True, offset=size + len(blob))


def _start_item(run: Run, site: str, name: str = "") -> pb.Work:
    """Where ``site`` connects for ``run``, with its credential."""
    return pb.Work(job_id=run.record.id, name=name, port=run.port or 0, token=run.tokens[site],
                   sites=list(run.sites), heartbeat_timeout=run.heartbeat)
