"""The calls a deployed server answers for its admins: Submit, Jobs, Abort, Logs,
Download, Shutdown.

The admin's role was checked against the method's right by the gate (:mod:`.gate`);
the rights on one job (its submitter's, its org's) are checked here, call by call.
A submitted job is validated before it is accepted (the same file:line report as
``flconfig validate``), stored, and queued for the scheduler.
"""

from __future__ import annotations

import io
import logging
import shutil
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config.meta import NAME_RE
from ..errors import errors_only, relocate
from ..validate.report import write_text
from . import authz, wire
from . import deploy_pb2 as pb
from . import store as st
from .archive import ArchiveError, pack_folder, unpack
from .state import CONTROL, JOB_FOLDER, SITE_LOGS, Board, inspect_submitted, job_folder

log = logging.getLogger(__name__)
#: Largest download (the zip of a job's results).
MAX_DOWNLOAD_BYTES = 4 * 1024**3


@dataclass(frozen=True)
class AdminSettings:
    """What the admin calls need to know of the server."""

    max_jobs: int
    allow_custom_code: bool  # the server kit's: whether a job's server app may hold custom code
    #: Logs a refused call: (the method or right, the gRPC context, why).
    refused: Callable[[str, Any, str], None]


class AdminCalls:
    """The admin methods of the control service, on the server's :class:`Board` and job store."""

    def __init__(self, board: Board, store: Callable[[], st.JobStore], settings: AdminSettings) -> None:
        self._board = board
        self._store = store
        self._settings = settings

    def submit(self, admin: authz.Admin, request: pb.SubmitRequest, context: Any) -> pb.SubmitReply:
        """Check the job folder as the server runs it; store and queue it if it has no error."""
        workspace = self._board.workspace
        shown = (request.path or "job")[:500]
        incoming = workspace / ".incoming" / uuid.uuid4().hex
        name = Path(shown).name
        if not NAME_RE.match(name) or name in (".", ".."):  # the folder's name names nothing else
            name = "job"
        try:
            try:
                unpack(request.job, incoming / name, max_bytes=wire.MAX_JOB_BYTES)
            except ArchiveError as exc:
                return pb.SubmitReply(ok=False, report=f"{shown}: {exc}\n")
            job, problems = inspect_submitted(incoming / name, self._settings.allow_custom_code)
            text = io.StringIO()
            write_text(relocate(problems, incoming / name, shown), 1, text)
            report = text.getvalue()
            if job is None or errors_only(problems):
                log.info("refused a job from %s: %d problem(s)", admin.name, len(errors_only(problems)))
                return pb.SubmitReply(ok=False, report=report)
            job_id = str(uuid.uuid4())
            folder = workspace / job_id
            folder.mkdir(parents=True)
            (incoming / name).rename(folder / JOB_FOLDER)
            record = self._store().add(job_id, job.name or name, admin.name, admin.org)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        queued = len(self._store().queued())
        self._board.say(f"job {job_id} ({record.name}) submitted by {admin.name}; {queued} queued")
        self._board.notify()
        return pb.SubmitReply(ok=True, job_id=job_id, report=report, queued=queued)

    def jobs(self, admin: authz.Admin, request: pb.JobsRequest, context: Any) -> pb.JobsReply:
        """The jobs (or the one asked for), the sites connected, and ``max_jobs``."""
        sites = self._board.connected()
        with self._board.lock:
            live = dict(self._board.runs)
        reply = pb.JobsReply(sites=sites, max_jobs=self._settings.max_jobs)
        for record in self._store().all():
            if request.job_id and record.id != request.job_id:
                continue
            info = pb.JobInfo(id=record.id, name=record.name, state=record.state, submitter=record.submitter,
                              submitter_org=record.submitter_org, submitted_at=record.submitted_at,
                              started_at=record.started_at, ended_at=record.ended_at, sites=record.sites,
                              error=record.error)
            run = live.get(record.id)
            if run is not None and record.state in st.ACTIVE:
                info.state = run.ended[0] if run.ended else run.state
                if run.ended:
                    info.error = run.ended[1]
                if run.unrecorded:
                    info.note = f"not recorded in the job store yet: {run.unrecorded}"
            if info.error and authz.refusal(admin, authz.DOWNLOAD, submitter=record.submitter,
                                            submitter_org=record.submitter_org):
                # Why a job failed can quote its logs: for those who may read them.
                info.error = "(the reason is shown to those who may read the job's logs)"
            reply.jobs.append(info)
        return reply

    def _may(self, admin: authz.Admin, right: str, record: st.JobRecord, context: Any) -> str | None:
        """Why ``admin`` may not exercise ``right`` on the job of ``record`` (logged as a
        refusal), or None."""
        why = authz.refusal(admin, right, submitter=record.submitter, submitter_org=record.submitter_org,
                            job_id=record.id)
        if why is not None:
            self._settings.refused(right, context, why)
        return why

    def abort(self, admin: authz.Admin, request: pb.AbortRequest, context: Any) -> pb.AbortReply:
        """Abort a job that has not ended: its run is ended by the scheduler, or, not started
        yet, it is recorded as aborted at once."""
        job_id = wire.required(request.job_id, "job_id")
        record = self._store().get(job_id)
        if record is None:
            return pb.AbortReply(ok=False, error=f"no job {job_id}")
        refused = self._may(admin, authz.MANAGE, record, context)
        if refused:
            return pb.AbortReply(ok=False, error=refused)
        if record.state in st.ENDED:
            return pb.AbortReply(ok=False, error=f"job {job_id} has already ended ({record.state})")
        with self._board.cond:
            active = self._board.runs.get(job_id)
            if active is not None:
                active.abort = f"aborted by {admin.name}"
            self._board.cond.notify_all()
        if active is None:
            self._store().set_state(job_id, st.ABORTED, error=f"aborted by {admin.name} before it started")
        self._board.say(f"job {job_id}: abort asked by {admin.name}")
        return pb.AbortReply(ok=True)

    def logs(self, admin: authz.Admin, request: pb.LogsRequest, context: Any) -> pb.LogsReply:
        """At most :data:`wire.LOG_CHUNK` bytes of the log of the job's server or of one of
        its sites, from ``offset``."""
        job_id = wire.required(request.job_id, "job_id")
        site = request.site or "server"
        offset = request.offset
        folder = job_folder(self._board.workspace, job_id)
        record = self._store().get(job_id)
        if folder is None or record is None:
            return pb.LogsReply(error=f"no job {job_id}")
        refused = self._may(admin, authz.DOWNLOAD, record, context)
        if refused:
            return pb.LogsReply(error=refused)
        if site != "server" and site not in record.sites:
            return pb.LogsReply(error=f"job {job_id} has no site {site!r} (its sites: "
                                      f"{', '.join(record.sites) or 'none yet'})")
        path = folder / "log.txt" if site == "server" else folder / SITE_LOGS / site / "log.txt"
        data = b""
        if path.is_file():
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(wire.LOG_CHUNK)
        return pb.LogsReply(offset=offset + len(data), ended=record.state in st.ENDED, state=record.state,
                            data=data)

    def download(self, admin: authz.Admin, request: pb.DownloadRequest, context: Any) -> Iterator[pb.DownloadReply]:
        """The job's results, zipped: its size, then chunks of :data:`wire.CHUNK_BYTES`."""
        job_id = request.job_id
        folder = job_folder(self._board.workspace, job_id)
        record = self._store().get(job_id) if folder is not None else None
        if folder is None or record is None:
            yield pb.DownloadReply(error=f"no job {job_id}")
            return
        refused = self._may(admin, authz.DOWNLOAD, record, context)
        if refused:
            yield pb.DownloadReply(error=refused)
            return
        try:
            data = pack_folder(folder, max_bytes=MAX_DOWNLOAD_BYTES, skip=frozenset({CONTROL, JOB_FOLDER}))
        except ArchiveError as exc:
            yield pb.DownloadReply(error=str(exc))
            return
        yield pb.DownloadReply(size=len(data))
        for start in range(0, len(data), wire.CHUNK_BYTES):
            yield pb.DownloadReply(data=data[start:start + wire.CHUNK_BYTES])

    def shutdown(self, admin: authz.Admin, request: pb.ShutdownRequest, context: Any) -> pb.ShutdownReply:
        """Stop the server (running jobs are aborted); with ``sites``, its sites too."""
        board = self._board
        sites = request.sites
        board.say(f"shutdown asked by {admin.name}" + (" (and the sites)" if sites else ""))
        with board.cond:
            board.stop_sites = sites
            board.cond.notify_all()

        def later() -> None:
            if sites:  # let the sites' polls see it
                time.sleep(1.0)
            board.stop.set()

        threading.Thread(target=later, daemon=True).start()
        return pb.ShutdownReply(ok=True)
