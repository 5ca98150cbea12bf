"""``flconfig server KIT``: a deployed server that takes jobs from admins and runs them on its sites.

The service listens on its kit's port, over mutual TLS, for two kinds of caller,
told apart by their certificates: sites (``client``), which poll for work, and
admins (``admin``), which submit and watch jobs (see :mod:`.wire`). A submitted
job is validated before it is accepted (the same file:line report as ``flconfig
validate``), stored (:mod:`.store`), queued, and run when its sites are connected:

1. *waiting*: until ``min_clients`` of the job's sites (its deploy map's, or every
   connected site under ``@ALL``) and all its ``mandatory_clients`` poll;
2. *deploying*: each chosen site fetches the job, checks it itself (its own
   registry, its custom-code permission) and accepts or refuses it;
3. *running*: the job's server runs as a process of its own (the simulator's
   server, :func:`flconfig.runtime.worker.run_server`) on a port of its own with
   the same certificates; the sites that accepted connect to it. Its files are
   ``WORKSPACE/JOB_ID/``: log, global model, ``tb_events/SITE/``, cross-site
   results, and the sites' logs in ``sites/SITE/log.txt``.

At most ``max_jobs`` jobs run at once (1 by default: a site gives a job all its
cores or its GPU, so two jobs on the same sites only take turns, slower); the
rest wait in the queue, in submission order.
"""

from __future__ import annotations

import io
import json
import logging
import os
import secrets
import shutil
import signal
import subprocess
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from concurrent import futures
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ConfigError, FlconfigError, relocate
from ..runtime.spec import STARTUP_TIMEOUT, WorkerSpec, wait_for_port, worker_command
from ..transport.tls import CertificateGate
from . import authz, wire
from . import store as st
from .archive import ArchiveError, pack_folder, unpack
from .kit import Kit
from .provision import DEFAULT_ROLE

log = logging.getLogger(__name__)
JOB_FOLDER = "job"  # WORKSPACE/JOB_ID/job: the job as submitted
CONTROL = ".control"  # WORKSPACE/JOB_ID/.control: spec (tokens inside), plan; never downloaded
SITE_LOGS = "sites"
#: A site counts as connected while it polled within this many seconds.
SITE_TIMEOUT_S = 2 * wire.POLL_S + 10
#: Seconds a deploying job waits for its sites to accept or refuse it.
DEPLOY_TIMEOUT_S = 120.0
#: Under ``@ALL`` without ``min_clients``: seconds after the first site connects before
#: the job takes the sites connected by then.
ALL_SETTLE_S = 3.0
#: Largest download (the zip of a job's results).
MAX_DOWNLOAD_BYTES = 4 * 1024**3
_REFUSALS_LOGGED = 20
#: Seconds between two checks that every job the store has as active has a run here.
RECONCILE_S = 5.0
#: Threads answering calls; at most POLL_SLOTS of them hold a site's poll, so admins and
#: the sites' other calls always find one free. Beyond that, polls are answered at once
#: and the site asked to come back in RETRY_AFTER_S (more sites: slower reactions, never
#: a stalled server).
HANDLER_THREADS, POLL_SLOTS, RETRY_AFTER_S = 128, 96, 2.0
#: A site's instance (its ``session``) counts as gone once it has no poll open and made no
#: call for this many seconds; another instance of the site may then take its place.
SESSION_GONE_S = 15.0
#: Largest copy of one site's log of one job the server keeps.
MAX_SITE_LOG_BYTES = 256 * 1024 * 1024


class ServiceError(FlconfigError):
    """The service cannot start (its port, its workspace)."""


@dataclass(eq=False)
class _Run:
    """A job the scheduler is taking through waiting, deploying and running."""

    record: st.JobRecord
    folder: Path
    job: Any  # the checked Job
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


class DeployServer:
    """The server service of a deployment (see the module docstring)."""

    def __init__(self, kit: Kit, workspace: Path, *, host: str = "0.0.0.0", port: int | None = None,
                 max_jobs: int = 1, site_wait: float = 600.0, heartbeat_timeout: float | None = None,
                 live_metrics: bool = True, job_ports: range | None = None,
                 out: Callable[[str], None] | None = None) -> None:
        self.kit = kit
        self.workspace = workspace.resolve()
        self.host = host
        self.port = kit.server_port if port is None else port
        self.max_jobs = max(1, max_jobs)
        self.site_wait = site_wait
        self.heartbeat_timeout = heartbeat_timeout
        self.live_metrics = live_metrics
        #: Ports the jobs' servers may listen on (None: any free port), for a firewall.
        self.job_ports = job_ports
        self._say = out or (lambda line: print(line, flush=True))
        self._gate = CertificateGate(kit.ca_file, kit.crl_file)
        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._sites: dict[str, float] = {}  # site -> last poll (monotonic)
        self._polling: dict[str, int] = {}  # site -> polls open now
        #: site -> (the session of the instance that speaks for it, when it last called)
        self._sessions: dict[str, tuple[str, float]] = {}
        self._runs: dict[str, _Run] = {}
        self._stop = threading.Event()
        self._stop_sites = False
        self._server: Any = None
        self._refusals = 0
        self._store: st.JobStore | None = None
        self._lock_file: Any = None
        self._scheduler: threading.Thread | None = None
        self._store_said: set[str] = set()  # store failures logged once each
        self._reconciled_at = 0.0
        self.bound_port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    def say(self, message: str) -> None:
        log.info("%s", message)
        self._say(f"flconfig server: {message}")

    def start(self) -> DeployServer:
        """Take the workspace (one server at a time), bind the port (refused when in use),
        then open the job store, fail what was running when the server last stopped, and
        clear submissions that were being unpacked then."""
        import grpc

        self._take_workspace()
        try:
            return self._start(grpc)
        except BaseException:
            self._release_workspace()
            raise

    def _take_workspace(self) -> None:
        from ..errors import storage_message
        from ..files import FolderInUse, lock_folder

        try:
            self._lock_file = lock_folder(self.workspace, "server.lock")
        except FolderInUse as exc:
            raise ServiceError(f"another flconfig server uses the workspace {self.workspace}"
                               + (f" (pid {exc.holder})" if exc.holder else "")
                               + "; stop it first, or give this one another --workspace") from None
        except OSError as exc:
            raise ServiceError(f"cannot use the workspace: {storage_message(exc, self.workspace)}") from None

    def _release_workspace(self) -> None:
        if self._lock_file is not None:
            self._lock_file.close()  # closing releases the lock
            self._lock_file = None

    def _start(self, grpc: Any) -> DeployServer:
        handlers = {name: self._wrap(name, getattr(self, f"_{name.lower()}"), "client")
                    for name in wire.SITE_METHODS}
        handlers.update({name: self._wrap(name, getattr(self, f"_{name.lower()}"), "admin")
                         for name in wire.ADMIN_METHODS})
        generic = grpc.method_handlers_generic_handler(wire.SERVICE, handlers)
        server = grpc.server(futures.ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="flconfig-deploy"),
                             handlers=[generic], options=wire.options())
        target = f"{self.host}:{self.port}"
        try:
            bound = server.add_secure_port(target, self.kit.server_credentials())
        except RuntimeError:
            bound = 0
        if not bound:
            raise ServiceError(f"cannot listen on {target}: {_bind_problem(self.host, self.port)}")
        try:
            self._store = st.JobStore(self.workspace / "jobs.db")
            recovered = self._store.recover()
        except st.StoreError as exc:
            server.stop(None)
            raise ServiceError(str(exc)) from None
        for record in recovered:
            self.say(f"job {record.id} ({record.name}) was {record.state} when the server stopped: "
                     "reported failed")
        # Submissions being unpacked when the server stopped: never accepted, nothing to keep.
        shutil.rmtree(self.workspace / ".incoming", ignore_errors=True)
        server.start()
        self._server, self.bound_port = server, bound
        self._scheduler = threading.Thread(target=self._schedule, name="flconfig-scheduler", daemon=True)
        self._scheduler.start()
        queued = len(self._store.queued())
        self.say(f"project {self.kit.project!r}: listening on {self.host}:{bound} (mutual TLS); "
                 f"workspace {self.workspace}; {queued} job(s) queued; at most {self.max_jobs} "
                 "running at once")
        return self

    def serve(self) -> int:
        """Serve until :meth:`stop` (an admin's shutdown, SIGTERM, Ctrl-C)."""
        try:
            while not self._stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.say("interrupted")
        finally:
            self.stop()
        return 0

    def stop_soon(self) -> None:
        """Make :meth:`serve` return (safe from a signal handler)."""
        self._stop.set()

    def stop(self, reason: str = "the server stopped") -> None:
        """Abort running jobs (reported aborted), stop serving, close the store."""
        self._stop.set()
        with self._cond:
            self._cond.notify_all()
        if self._scheduler is not None and self._scheduler is not threading.current_thread():
            self._scheduler.join(timeout=30)  # its step in progress ends before the store closes
        with self._cond:
            runs = list(self._runs.values())
        for run in runs:
            self._end_run(run, st.ABORTED, reason)
        if self._server is not None:
            self._server.stop(1.0).wait(2.0)
            self._server = None
        if self._store is not None:
            self._store.close()
            self._store = None
            self.say("stopped")
        self._release_workspace()

    @property
    def store(self) -> st.JobStore:
        assert self._store is not None, "the service is not started"
        return self._store

    # ------------------------------------------------------------------ calls

    def _wrap(self, method: str, fn: Callable[..., Any], role: str) -> Any:
        import grpc

        def check(context: Any) -> Any:
            """The caller: a site's name, or an admin (name, org, role) whose role allows
            the call (the rights on one job are checked by the call itself)."""
            ident, why = self._gate.check(context, role)
            if ident is None:
                self._refused(method, context, why)
                context.abort(grpc.StatusCode.PERMISSION_DENIED, why)
                raise AssertionError("unreachable")  # context.abort raises
            if role != "admin":
                return ident.name
            admin = authz.Admin(ident.name, ident.org, ident.role or DEFAULT_ROLE)
            right = authz.RIGHT_OF[method]
            if right in (authz.SUBMIT, authz.VIEW, authz.OPERATE):
                refused = authz.refusal(admin, right, site_org=self.kit.org)
                if refused is not None:
                    self._refused(method, context, refused)
                    context.abort(grpc.StatusCode.PERMISSION_DENIED, refused)
                    raise AssertionError("unreachable")
            return admin

        def bad(context: Any, why: str) -> NoReturn:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, why)
            raise AssertionError("unreachable")

        def one_instance(site: str, header: dict[str, Any], context: Any) -> None:
            why = self._session_refusal(site, header.get("session"))
            if why is not None:
                self._refused(method, context, why)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, why)

        if method in wire.STREAMING_REPLIES:
            def stream(request: bytes, context: Any) -> Iterator[bytes]:
                caller = check(context)
                try:
                    header, blob = wire.decode(request)
                except wire.FrameError as exc:
                    bad(context, str(exc))
                if role == "client":
                    one_instance(caller, header, context)
                yield from fn(caller, header, blob, context)

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(request: bytes, context: Any) -> bytes:
            caller = check(context)
            try:
                header, blob = wire.decode(request)
            except wire.FrameError as exc:
                bad(context, str(exc))
            if role == "client":
                one_instance(caller, header, context)
            name = getattr(caller, "name", caller)
            try:
                reply = fn(caller, header, blob, context)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s from %s: bad request (%s)", method, name, exc)
                bad(context, f"bad {method} request: {exc}")
            except st.StoreError as exc:  # the job store's disk: one line, and an answer
                log.error("%s from %s failed: %s", method, name, exc)
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except FlconfigError as exc:  # e.g. a stored job that cannot be packed
                log.warning("%s from %s: %s", method, name, exc)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            except OSError as exc:  # the server's disk: full, or a folder it cannot write
                from ..errors import storage_message

                why = storage_message(exc, self.workspace)
                log.error("%s from %s failed: %s", method, name, why)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
            return reply if isinstance(reply, bytes) else wire.encode(reply)

        return grpc.unary_unary_rpc_method_handler(unary)

    def _session_refusal(self, site: str, session: Any) -> str | None:
        """Why this call of ``site`` comes from an instance that may not speak for it (another
        instance of the site, with its certificate, is connected), or None. One instance at
        a time: two would race on the same jobs. The one connected keeps its place until it
        has been gone for SESSION_GONE_S."""
        session = str(session or "")
        now = time.monotonic()
        with self._lock:
            current = self._sessions.get(site)
            if current is None or current[0] == session:
                self._sessions[site] = (session, now)
                return None
            other, seen = current
            if self._polling.get(site) or now - seen < SESSION_GONE_S:
                ago = now - seen
                return (f"{site} is already connected from another instance (its last call {ago:.0f} s ago); "
                        "one instance of a site at a time: this one waits until the other has stopped "
                        f"for {SESSION_GONE_S:g} s")
            self._sessions[site] = (session, now)
        self.say(f"site {site}: a new instance took over from one gone for {now - seen:.0f} s")
        return None

    def _refused(self, method: str, context: Any, why: str) -> None:
        with self._lock:
            self._refusals += 1
            count = self._refusals
        if count <= _REFUSALS_LOGGED or count % 1000 == 0:
            log.warning("refused %s from %s: %s (%d refused so far)", method, context.peer(), why, count)
            self._say(f"flconfig server: refused {method} from {context.peer()}: {why}")

    # --- site methods

    def _poll(self, site: str, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        known = header.get("jobs") or {}
        if not isinstance(known, dict):
            raise ValueError("'jobs' must map job ids to states")
        wait = min(float(header.get("wait", wire.POLL_S)), wire.POLL_S)
        with self._cond:
            first = site not in self._sites
            self._sites[site] = time.monotonic()
            busy = sum(self._polling.values()) >= POLL_SLOTS
            if busy:
                wait = 0.0
            self._polling[site] = self._polling.get(site, 0) + 1
            self._cond.notify_all()
        deadline = time.monotonic() + max(0.0, wait)
        if first:
            self.say(f"site {site} connected")
        try:
            with self._cond:
                while True:
                    work = self._work_for(site, known)
                    remaining = deadline - time.monotonic()
                    if any(work.values()) or remaining <= 0 or self._stop.is_set() or not context.is_active():
                        break
                    self._cond.wait(min(remaining, 1.0))
                self._sites[site] = time.monotonic()
                if busy and not any(work.values()):
                    work["retry_after"] = RETRY_AFTER_S
                return work
        finally:
            with self._cond:
                self._polling[site] -= 1

    def _work_for(self, site: str, known: dict[str, Any]) -> dict[str, Any]:
        deploy, start, abort = [], [], []
        for job_id, run in self._runs.items():
            if site not in run.sites or run.abort or run.ended:
                continue
            have = known.get(job_id)
            if run.state == st.DEPLOYING and site not in run.answers and have is None:
                # With where to connect: a site that accepts starts its job process at once,
                # and it imports and connects while the job's server starts.
                deploy.append({"job_id": job_id, "name": run.record.name, **self._start_item(run, site)})
            elif (run.state == st.RUNNING and site in run.accepted and have in ("accepted", None)
                  and site not in run.site_reports):
                start.append({"job_id": job_id, **self._start_item(run, site)})
        for job_id, have in known.items():
            current = self._runs.get(job_id)
            if have in ("deployed", "accepted", "running") and (
                    current is None or current.abort or current.ended or site not in current.sites
                    or (current.state == st.RUNNING and site not in current.accepted)):
                abort.append(job_id)
        return {"deploy": deploy, "start": start, "abort": abort, "shutdown": self._stop_sites}

    def _start_item(self, run: _Run, site: str) -> dict[str, Any]:
        return {"port": run.port, "token": run.tokens[site], "sites": list(run.sites),
                "heartbeat_timeout": self._heartbeat(run)}

    def _fetchjob(self, site: str, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any] | bytes:
        job_id = str(header["job_id"])
        with self._lock:
            run = self._runs.get(job_id)
            allowed = run is not None and site in run.sites
        if not allowed or run is None:
            return {"error": f"job {job_id} is not for {site}"}
        data = pack_folder(run.folder / JOB_FOLDER, max_bytes=wire.MAX_JOB_BYTES)
        return wire.encode({"job_id": job_id}, data)

    def _report(self, site: str, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        job_id, state = str(header["job_id"]), str(header["state"])
        reason = str(header.get("reason", ""))[:2000]
        with self._cond:
            run = self._runs.get(job_id)
            if run is None or site not in run.sites:
                return {"ok": False}
            if state in ("accepted", "refused") and run.state == st.DEPLOYING:
                run.answers[site] = "" if state == "accepted" else (reason or "refused")
                if state == "refused":
                    self.say(f"job {job_id}: {site} refused it: {reason}")
            elif state in ("finished", "failed", "aborted"):
                run.site_reports[site] = state if not reason else f"{state}: {reason}"
            self._cond.notify_all()
        return {"ok": True}

    def _pushlog(self, site: str, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        job_id, offset = str(header["job_id"]), int(header["offset"])
        folder = self._job_folder(job_id)
        if folder is None or len(blob) > wire.LOG_CHUNK:
            return {"ok": False}
        record = self.store.get(job_id)
        if record is None or site not in record.sites:
            return {"ok": False}
        path = folder / SITE_LOGS / site / "log.txt"
        path.parent.mkdir(parents=True, exist_ok=True)
        size = path.stat().st_size if path.exists() else 0
        if size + len(blob) > MAX_SITE_LOG_BYTES:  # a site cannot fill the server's disk
            return {"ok": False, "offset": size + len(blob), "error": "the site's log is over its limit"}
        if offset != size:  # resend after a lost reply, or a gap: say where we are
            return {"ok": False, "offset": size}
        with open(path, "ab") as f:
            f.write(blob)
        return {"ok": True, "offset": size + len(blob)}

    # --- admin methods

    def _submit(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        from ..errors import errors_only, relocate
        from ..validate.report import write_text

        shown = str(header.get("path", "job"))[:500]
        incoming = self.workspace / ".incoming" / uuid.uuid4().hex
        from ..config.meta import NAME_RE

        name = Path(shown).name
        if not NAME_RE.match(name) or name in (".", ".."):  # the folder's name names nothing else
            name = "job"
        try:
            try:
                unpack(blob, incoming / name, max_bytes=wire.MAX_JOB_BYTES)
            except ArchiveError as exc:
                return {"ok": False, "report": f"{shown}: {exc}\n"}
            job, problems = self._inspect(incoming / name)
            text = io.StringIO()
            write_text(relocate(problems, incoming / name, shown), 1, text)
            report = text.getvalue()
            if job is None or errors_only(problems):
                log.info("refused a job from %s: %d problem(s)", admin.name, len(errors_only(problems)))
                return {"ok": False, "report": report}
            job_id = str(uuid.uuid4())
            folder = self.workspace / job_id
            folder.mkdir(parents=True)
            (incoming / name).rename(folder / JOB_FOLDER)
            record = self.store.add(job_id, job.name or name, admin.name, admin.org)
        finally:
            shutil.rmtree(incoming, ignore_errors=True)
        queued = len(self.store.queued())
        self.say(f"job {job_id} ({record.name}) submitted by {admin.name}; {queued} queued")
        with self._cond:
            self._cond.notify_all()
        return {"ok": True, "job_id": job_id, "report": report, "queued": queued}

    def _jobs(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        now = time.monotonic()
        with self._lock:
            sites = sorted(s for s, seen in self._sites.items()
                           if self._polling.get(s) or now - seen < SITE_TIMEOUT_S)
            live = {job_id: run for job_id, run in self._runs.items()}
        jobs = []
        for record in self.store.all():
            data = record.to_json()
            run = live.get(record.id)
            if run is not None and record.state in st.ACTIVE:
                data["state"] = run.ended[0] if run.ended else run.state
                if run.ended:
                    data["error"] = run.ended[1]
                if run.unrecorded:
                    data["note"] = f"not recorded in the job store yet: {run.unrecorded}"
            if data["error"] and authz.refusal(admin, authz.DOWNLOAD, submitter=record.submitter,
                                               submitter_org=record.submitter_org):
                # Why a job failed can quote its logs: for those who may read them.
                data["error"] = "(the reason is shown to those who may read the job's logs)"
            jobs.append(data)
        wanted = header.get("job_id")
        if wanted:
            jobs = [j for j in jobs if j["id"] == wanted]
        return {"jobs": jobs, "sites": sites, "max_jobs": self.max_jobs}

    def _may(self, admin: authz.Admin, right: str, record: st.JobRecord, context: Any) -> str | None:
        """Why ``admin`` may not exercise ``right`` on the job of ``record`` (logged as a
        refusal), or None."""
        why = authz.refusal(admin, right, submitter=record.submitter, submitter_org=record.submitter_org,
                            job_id=record.id)
        if why is not None:
            self._refused(right, context, why)
        return why

    def _abort(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        job_id = str(header["job_id"])
        record = self.store.get(job_id)
        if record is None:
            return {"ok": False, "error": f"no job {job_id}"}
        refused = self._may(admin, authz.MANAGE, record, context)
        if refused:
            return {"ok": False, "error": refused}
        if record.state in st.ENDED:
            return {"ok": False, "error": f"job {job_id} has already ended ({record.state})"}
        with self._cond:
            active = self._runs.get(job_id)
            if active is not None:
                active.abort = f"aborted by {admin.name}"
            self._cond.notify_all()
        if active is None:
            self.store.set_state(job_id, st.ABORTED, error=f"aborted by {admin.name} before it started")
        self.say(f"job {job_id}: abort asked by {admin.name}")
        return {"ok": True}

    def _logs(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any] | bytes:
        job_id = str(header["job_id"])
        site = str(header.get("site") or "server")
        offset = max(0, int(header.get("offset", 0)))
        folder = self._job_folder(job_id)
        record = self.store.get(job_id)
        if folder is None or record is None:
            return {"error": f"no job {job_id}"}
        refused = self._may(admin, authz.DOWNLOAD, record, context)
        if refused:
            return {"error": refused}
        if site != "server" and site not in record.sites:
            return {"error": f"job {job_id} has no site {site!r} (its sites: "
                             f"{', '.join(record.sites) or 'none yet'})"}
        path = folder / "log.txt" if site == "server" else folder / SITE_LOGS / site / "log.txt"
        data = b""
        if path.is_file():
            with open(path, "rb") as f:
                f.seek(offset)
                data = f.read(wire.LOG_CHUNK)
        return wire.encode({"offset": offset + len(data), "ended": record.state in st.ENDED,
                            "state": record.state}, data)

    def _download(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> Iterator[bytes]:
        job_id = str(header["job_id"])
        folder = self._job_folder(job_id)
        record = self.store.get(job_id) if folder is not None else None
        if folder is None or record is None:
            yield wire.encode({"error": f"no job {job_id}"})
            return
        refused = self._may(admin, authz.DOWNLOAD, record, context)
        if refused:
            yield wire.encode({"error": refused})
            return
        try:
            data = pack_folder(folder, max_bytes=MAX_DOWNLOAD_BYTES, skip=frozenset({CONTROL, JOB_FOLDER}))
        except ArchiveError as exc:
            yield wire.encode({"error": str(exc)})
            return
        yield wire.encode({"size": len(data)})
        for start in range(0, len(data), wire.CHUNK_BYTES):
            yield wire.encode({}, data[start:start + wire.CHUNK_BYTES])

    def _shutdown(self, admin: authz.Admin, header: dict[str, Any], blob: bytes, context: Any) -> dict[str, Any]:
        sites = bool(header.get("sites"))
        self.say(f"shutdown asked by {admin.name}" + (" (and the sites)" if sites else ""))
        with self._cond:
            self._stop_sites = sites
            self._cond.notify_all()

        def later() -> None:
            if sites:  # let the sites' polls see it
                time.sleep(1.0)
            self._stop.set()

        threading.Thread(target=later, daemon=True).start()
        return {"ok": True}

    def _job_folder(self, job_id: str) -> Path | None:
        try:
            uuid.UUID(job_id)
        except ValueError:
            return None
        folder = self.workspace / job_id
        return folder if folder.is_dir() else None

    # ------------------------------------------------------------------ scheduling

    def _connected(self) -> list[str]:
        now = time.monotonic()
        return sorted(s for s, seen in self._sites.items() if self._polling.get(s) or now - seen < SITE_TIMEOUT_S)

    def _heartbeat(self, run: _Run) -> float:
        if self.heartbeat_timeout is not None:
            return self.heartbeat_timeout
        config = run.job.server_config
        value = config.doc.data_at(("server", "heart_beat_timeout")) if config is not None else None
        return float(value) if isinstance(value, (int, float)) and value > 0 else 60.0

    def _schedule(self) -> None:
        while not self._stop.is_set():
            try:
                self._step()
            except st.StoreError as exc:  # a full disk: said once per cause, tried again
                if str(exc) not in self._store_said:
                    self._store_said.add(str(exc))
                    log.error("%s; trying again", exc)
            except Exception:  # a bug here must not stop the service
                log.exception("scheduler step failed")
            with self._cond:
                self._cond.wait(0.2)

    def _step(self) -> None:
        with self._lock:
            runs = list(self._runs.values())
        for run in runs:
            if run.ended is not None:
                self._end_run(run, *run.ended)  # the store could not record it yet
            elif run.abort:
                self._end_run(run, st.ABORTED, run.abort)
            elif run.state == st.WAITING:
                self._try_deploy(run)
            elif run.state == st.DEPLOYING:
                self._try_start(run)
            elif run.state == st.RUNNING:
                self._check_running(run)
        with self._lock:
            free = self.max_jobs - sum(r.ended is None for r in self._runs.values())
        if free > 0 and not self._stop.is_set():
            for record in self.store.queued()[:free]:
                self._admit(record)
        if time.monotonic() - self._reconciled_at > RECONCILE_S:
            self._reconciled_at = time.monotonic()
            self._reconcile()

    def _inspect(self, folder: Path) -> tuple[Any, list[Any]]:
        """The submitted job at ``folder`` checked as this server runs it: no environment,
        and no custom code unless its kit allows it (the job's server app then holding
        custom code, or naming a class of the job folder, is an error of validate's report)."""
        from ..validate.loader import inspect_job

        return inspect_job(folder, participant="server", allow_custom_code=self.kit.allow_custom_code)

    def _admit(self, record: st.JobRecord) -> None:
        from ..errors import errors_only

        folder = self.workspace / record.id
        job, problems = self._inspect(folder / JOB_FOLDER)
        if job is None or errors_only(problems):
            self.store.set_state(record.id, st.FAILED, error="the stored job folder no longer loads")
            return
        self.store.set_state(record.id, st.WAITING)
        run = _Run(record, folder, job)
        with self._lock:
            self._runs[record.id] = run
        named = list(job.meta.client_sites())
        self.say(f"job {record.id} ({record.name}) waiting for "
                 + (f"its sites {', '.join(named)}" if named else "sites (@ALL)"))

    def _try_deploy(self, run: _Run) -> None:
        meta = run.job.meta
        connected = self._connected()
        named = list(meta.client_sites())
        pool = [s for s in named if s in connected] if named else connected
        if named:
            need = min(meta.min_clients or len(named), len(named))
        else:
            need = meta.min_clients or 1
        mandatory = list(meta.mandatory_clients)
        ready = len(pool) >= need and all(m in pool for m in mandatory)
        if ready and not named and meta.min_clients is None:
            if run.first_site_at is None:
                run.first_site_at = time.monotonic()
            ready = time.monotonic() - run.first_site_at >= ALL_SETTLE_S
        if ready:
            run.sites, run.need = pool, need
            run.tokens = {s: secrets.token_urlsafe(32) for s in pool}
            with self._lock:
                taken = {r.port for r in self._runs.values() if r.port is not None}
            run.port = _free_port(self.host, self.job_ports, taken)
            if run.port is None:
                assert self.job_ports is not None
                self._end_run(run, st.FAILED, f"no free port for the job's server in --job-ports "
                                              f"{self.job_ports.start}-{self.job_ports.stop - 1}")
                return
            run.state, run.since = st.DEPLOYING, time.monotonic()
            self.store.set_state(run.record.id, st.DEPLOYING, sites=pool)
            self.say(f"job {run.record.id}: deploying to {', '.join(pool)}")
            with self._cond:
                self._cond.notify_all()
        elif time.monotonic() - run.since > self.site_wait:
            missing = [m for m in mandatory if m not in pool]
            want = ", ".join(missing) if missing else f"{need} site(s), {len(pool)} connected"
            self._end_run(run, st.FAILED, f"its sites did not connect within {self.site_wait:g} s "
                                          f"(waiting for {want})")

    def _try_start(self, run: _Run) -> None:
        answered = all(s in run.answers for s in run.sites)
        timed_out = time.monotonic() - run.since > DEPLOY_TIMEOUT_S
        if not answered and not timed_out:
            return
        accepted = [s for s in run.sites if run.answers.get(s) == ""]
        refused = {s: why for s, why in run.answers.items() if why}
        silent = [s for s in run.sites if s not in run.answers]
        bad_mandatory = [m for m in run.job.meta.mandatory_clients if m not in accepted]
        if len(accepted) < run.need or bad_mandatory:
            reasons = [f"{s} refused it: {why}" for s, why in refused.items()]
            reasons += [f"{s} did not answer within {DEPLOY_TIMEOUT_S:g} s" for s in silent]
            self._end_run(run, st.FAILED, "; ".join(reasons) or "too few sites accepted it")
            return
        try:
            self._start_process(run, accepted)
        except ConfigError as exc:  # invalid as resolved for this run: its first problem, job paths only
            first = relocate(exc.problems, run.folder / JOB_FOLDER, "")[0]
            self._end_run(run, st.FAILED, f"the job is invalid for this run: {str(first).splitlines()[0]}")
        except (ServiceError, OSError) as exc:  # it did not start listening; this machine's disk
            log.error("job %s could not start: %s", run.record.id, exc)
            self._end_run(run, st.FAILED, f"the job's server could not start: {str(exc).splitlines()[0]}")
        except Exception as exc:
            log.exception("job %s could not start", run.record.id)
            self._end_run(run, st.FAILED, f"the job's server could not start ({type(exc).__name__}); "
                                          "see the server's log")

    def _start_process(self, run: _Run, sites: list[str]) -> None:
        from ..files import write_atomic
        from ..runtime.plan import plan_run

        control = run.folder / CONTROL
        control.mkdir(parents=True, exist_ok=True)
        plan = plan_run(run.job, sites, self.workspace, run.record.id, server=True,
                        outside_files=self.kit.allow_outside_files)
        write_atomic(control / "plan.json", plan.to_json().encode(), mode=0o600)
        run.accepted = list(sites)
        port_file = control / "server.port"
        port_file.unlink(missing_ok=True)
        spec = WorkerSpec(
            plan=str(control / "plan.json"), workspace=str(self.workspace), run_dir=str(run.folder),
            job_id=run.record.id, sites=tuple(sites), min_clients=run.need,
            credentials={s: run.tokens[s] for s in sites}, heartbeat_timeout=self._heartbeat(run),
            threads=max(1, (os.cpu_count() or 2) - 1), port_file=str(port_file),
            live_metrics_interval=2.0 if self.live_metrics else 0, host=self.host, port=run.port or 0,
            tls=self.kit.tls_files(),
        )
        spec_file = spec.write(control / "spec.json")
        with open(run.folder / "server.out", "ab") as out:
            run.proc = subprocess.Popen(worker_command("server", spec_file),
                                        stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT)
        proc = run.proc
        if wait_for_port(port_file, STARTUP_TIMEOUT, alive=lambda: proc.poll() is None) is None:
            raise ServiceError(_last_line(run.folder / "server.out") or "it did not start listening")
        run.state = st.RUNNING
        try:
            self.store.set_state(run.record.id, st.RUNNING, sites=sites)
        except st.StoreError as exc:  # it runs all the same; its end is recorded when it can be
            log.error("job %s is running, but the job store cannot record it yet: %s", run.record.id, exc)
        self.say(f"job {run.record.id}: running on {', '.join(sites)} (port {run.port})")
        with self._cond:
            self._cond.notify_all()

    def _check_running(self, run: _Run) -> None:
        assert run.proc is not None
        if run.proc.poll() is None:
            return
        try:
            status = json.loads((run.folder / "status.json").read_text())
        except (OSError, ValueError):
            status = {"ok": False, "error": f"the job's server exited with code {run.proc.returncode}"}
        if status.get("ok"):
            self._end_run(run, st.FINISHED, "")
        else:
            site = status.get("site")
            where = f"{site}: " if site and site != "server" else ""
            self._end_run(run, st.FAILED, f"{where}{status.get('error', 'failed')}")

    def _end_run(self, run: _Run, state: str, error: str) -> None:
        """End ``run`` (its processes stopped) as ``state``, and record that in the store.
        A run the store cannot record yet (a full or unwritable disk) stays here, ended,
        and the scheduler tries again: never a job left "running" with no process."""
        if run.ended is None:
            if run.proc is not None and run.proc.poll() is None:
                run.proc.send_signal(signal.SIGTERM)
                try:
                    run.proc.wait(timeout=10)
                except subprocess.TimeoutExpired:
                    run.proc.kill()
                    run.proc.wait()
            with self._cond:
                if self._runs.get(run.record.id) is not run:
                    return
                run.ended = (state, error)
                self._cond.notify_all()
            self.say(f"job {run.record.id} ({run.record.name}) {state}" + (f": {error}" if error else ""))
        state, error = run.ended
        if self._store is None:
            return
        try:
            self._store.set_state(run.record.id, state, error=error)
        except st.StoreError as exc:
            if not run.unrecorded:
                log.error("job %s %s, but the job store cannot record it yet (%s); trying again",
                          run.record.id, state, exc)
            run.unrecorded = str(exc)
            return
        if run.unrecorded:
            self.say(f"job {run.record.id}: recorded as {state} in the job store")
        with self._cond:
            if self._runs.get(run.record.id) is run:
                del self._runs[run.record.id]
            self._cond.notify_all()

    def _reconcile(self) -> None:
        """Every job the store has as waiting, deploying or running has a run here; one
        without (its processes are gone) is recorded as failed, saying so."""
        with self._lock:
            known = set(self._runs)
        for record in self.store.all():
            if record.state in (st.WAITING, st.DEPLOYING, st.RUNNING) and record.id not in known:
                why = (f"the server lost track of the job while it was {record.state}: no process of "
                       "it is left")
                if self.store.set_state(record.id, st.FAILED, error=why):
                    self.say(f"job {record.id} ({record.name}) failed: {why}")


def _bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, as one phrase."""
    import errno
    import socket

    try:
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            sock.bind((host, port))
    except OSError as exc:
        if exc.errno == errno.EADDRINUSE:
            return "the port is in use (another flconfig server, or another program)"
        return exc.strerror or str(exc)
    except (OverflowError, ValueError) as exc:
        return str(exc)
    return "the address is in use or invalid"


def _free_port(host: str, ports: range | None = None, taken: set[int] | frozenset[int] = frozenset()) -> int | None:
    """A port free on ``host`` now (from ``ports``, not in ``taken``), for a job's server,
    which binds it moments later; None if ``ports`` has none free."""
    import socket

    for port in ports if ports is not None else [0]:
        if port in taken:
            continue
        with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as sock:
            # As gRPC binds it: a port whose last job's connections are still in TIME_WAIT is
            # free (a job could not start for a minute after another ended); one a process
            # listens on is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((host, port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    return None


def _last_line(path: Path) -> str:
    try:
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return ""
    return lines[-1][:500] if lines else ""
