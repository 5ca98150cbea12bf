"""``flconfig client KIT``: a deployed site that runs the jobs its server gives it.

The service polls its server over mutual TLS (:mod:`.wire`), and reconnects with
backoff (1 s doubling to 30 s) whenever the server is away: a server restart or a
dropped network costs no more than a wait. For each job the server deploys to it,
the site fetches the job, checks it itself — its own registry, and whether it runs
``custom/`` code at all (``allow_custom_code`` in its kit) — and accepts or refuses
it with a reason the server reports. An accepted job runs, when the server starts
it, as a process of its own (:func:`flconfig.runtime.site_process.run_clients`)
connected to the job's server with the site's certificate; its files are
``WORKSPACE/JOB_ID/`` and its log is copied to the server as it grows.
"""

from __future__ import annotations

import logging
import math
import os
import shutil
import signal
import subprocess
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

from google.protobuf.message import Message

from ..common.processes import stop_process
from ..errors import ConfigError, errors_only, relocate, storage_message
from ..files import FolderInUse, lock_folder, write_atomic
from ..runtime.planner import plan_run
from ..runtime.spec import WorkerSpec, worker_command
from ..transport.retry import RetryPolicy
from ..validate.loader import inspect_job
from . import deploy_pb2 as pb
from . import wire
from .archive import ArchiveError, unpack
from .grpclog import caller_reason
from .kit import Kit
from .state import JOB_FOLDER

log = logging.getLogger(__name__)
BACKOFF_START_S, BACKOFF_MAX_S = 1.0, 30.0
#: While the server is away: the transport's one retry policy, 1 s doubling to 30 s, for ever.
SERVER_AWAY = RetryPolicy(first_delay=BACKOFF_START_S, max_delay=BACKOFF_MAX_S, deadline=math.inf)
#: Seconds between two tries of an instance the server refuses because another is connected.
STANDBY_RETRY_S = 5.0


M = TypeVar("M", bound=Message)


class RefusedError(Exception):
    """The server refuses this site (a revoked or foreign certificate)."""


@dataclass(eq=False)
class _Job:
    job_id: str
    name: str
    folder: Path
    state: str = "deployed"  # deployed | accepted | refused | running | finished | failed | aborted
    plan: Any = None
    proc: subprocess.Popen[bytes] | None = None
    log_offset: int = 0
    reported: bool = False


class SiteService:
    """The client service of a deployment (see the module docstring)."""

    def __init__(self, kit: Kit, workspace: Path, *, out: Any = None, poll_wait: float = wire.POLL_S) -> None:
        self.kit = kit
        self.site = kit.name
        self.workspace = workspace.resolve()
        self._say = out or (lambda line: print(line, flush=True))
        self._jobs: dict[str, _Job] = {}
        self._channel: Any = None
        self._stop = False
        self.poll_wait = poll_wait
        #: This instance's id: the server lets one instance of a site speak for it at a time.
        self.session = uuid.uuid4().hex
        self._lock: Any = None

    def say(self, message: str) -> None:
        log.info("%s", message)
        self._say(f"flconfig client {self.site}: {message}")

    # ------------------------------------------------------------------ calls

    def _call(self, method: str, request: Message, reply: type[M], timeout: float = 60.0) -> M:
        """Call ``method`` of the server with ``request`` (this instance's session set);
        its reply, :class:`wire.MessageError` if the reply is not a ``reply``."""
        import grpc

        if self._channel is None:
            self._channel = grpc.secure_channel(self.kit.server_address, self.kit.channel_credentials(),
                                                options=wire.options())
        request.session = self.session  # type: ignore[attr-defined]  # every site request has one
        data = self._channel.unary_unary(wire.method_path(method))(request.SerializeToString(), timeout=timeout)
        return wire.parse(reply, data)

    def run(self) -> int:
        """Serve until the server says shut down, SIGTERM or Ctrl-C; 1 if the server refuses us
        or another instance of this site uses the workspace."""
        import grpc


        try:
            self._lock = lock_folder(self.workspace, "site.lock")
        except FolderInUse as exc:
            self.say(f"another instance of {self.site} uses the workspace {self.workspace}"
                     + (f" (pid {exc.holder})" if exc.holder else "") + "; stop it first")
            return 1
        except OSError as exc:
            self.say(f"cannot use the workspace: {storage_message(exc, self.workspace)}")
            return 1
        signal.signal(signal.SIGTERM, lambda *_: self._request_stop())
        backoff = SERVER_AWAY.backoff()
        connected = False
        standby = False
        self.say(f"connecting to {self.kit.server_address} (project {self.kit.project!r}); "
                 f"custom code {'allowed' if self.kit.allow_custom_code else 'not allowed'}; "
                 f"workspace {self.workspace}")
        try:
            while not self._stop:
                try:
                    self._push_logs()
                    busy = any(j.state == "running" for j in self._jobs.values())
                    work = self._call("Poll", pb.PollRequest(jobs={j: job.state for j, job in self._jobs.items()},
                                                             wait=1.0 if busy else self.poll_wait),
                                      pb.PollReply, timeout=wire.POLL_S + 20)
                except wire.MessageError as exc:  # a server of another version: said, and retried
                    self.say(f"the server's reply is not understood: {exc}; retrying in {BACKOFF_MAX_S:g} s")
                    connected = False
                    self._sleep(BACKOFF_MAX_S)
                    continue
                except grpc.RpcError as exc:
                    code = exc.code()
                    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
                        self.say(f"the server refuses this site: {exc.details()}")
                        return 1
                    if code == grpc.StatusCode.FAILED_PRECONDITION and "another instance" in (exc.details() or ""):
                        if not standby:  # said once; it takes over when the other is gone
                            self.say(f"the server refuses this instance: {exc.details()}")
                            standby = True
                        self._sleep(STANDBY_RETRY_S)
                        continue
                    handshake = caller_reason(exc.details() or "", self.kit.cert_file, self.kit.ca_file)
                    why = (f"the TLS handshake failed: {handshake}" if handshake
                           else (exc.details() or str(code)).splitlines()[0][:200])
                    delay = backoff.next()
                    self.say(f"server {self.kit.server_address} unreachable ({why}); retrying in {delay:g} s"
                             if connected or delay == BACKOFF_START_S else
                             f"still unreachable; retrying in {delay:g} s")
                    connected = False
                    self._sleep(delay)
                    self._check_jobs()
                    continue
                if not connected:
                    self.say(f"connected to {self.kit.server_address}")
                    connected, standby = True, False
                    backoff.reset()
                try:
                    self._handle(work)
                    self._check_jobs()
                except grpc.RpcError:
                    continue  # the next poll tells whether the server is away
                except (OSError, ValueError, TypeError, KeyError) as exc:
                    # This machine's trouble (a full disk, a process that cannot start) or
                    # work the server sent wrongly: said, and the service goes on.
                    log.exception("handling the server's work failed")
                    self.say(f"could not do what the server asked: {type(exc).__name__}: {exc}")
                    self._sleep(BACKOFF_START_S)
                if work.retry_after > 0:  # the server has many sites polling: come back later
                    self._sleep(min(30.0, work.retry_after))
        except KeyboardInterrupt:
            self.say("interrupted")
        finally:
            self._shutdown()
        return 0

    def _request_stop(self) -> None:
        self._stop = True

    def _sleep(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while not self._stop and time.monotonic() < end:
            time.sleep(min(0.2, end - time.monotonic()))

    def _handle(self, work: pb.PollReply) -> None:
        self._check_jobs()  # a job that has just ended is reported as such, not aborted
        items: dict[str, list[pb.Work]] = {}
        for key, given in (("deploy", work.deploy), ("start", work.start)):
            items[key] = [i for i in given if _is_job_id(i.job_id)]
            if len(items[key]) != len(given):
                log.warning("the server sent %s work with a bad job id; ignored", key)
        for job_id in [j for j in work.abort if _is_job_id(j)]:
            job = self._jobs.get(job_id)
            if job is not None and job.state in ("deployed", "accepted", "running"):
                self._kill(job)
                job.state = "aborted"
                self.say(f"job {job_id} aborted by the server")
        for item in items["deploy"]:
            job = self._deploy(item.job_id, item.name)
            if job is not None and job.state == "accepted" and item.port:
                self._start(job, item)  # connects (retrying) while the job's server starts
        for item in items["start"]:
            job = self._jobs.get(item.job_id)
            if job is None:  # this service restarted since it accepted the job
                job = self._deploy(item.job_id, "")
            if job is not None and job.state == "accepted":
                self._start(job, item)
        if work.shutdown:
            self.say("the server asks its sites to shut down")
            self._stop = True

    # ------------------------------------------------------------------ jobs

    def _deploy(self, job_id: str, name: str) -> _Job | None:
        folder = self.workspace / job_id
        job = _Job(job_id, name, folder)
        self._jobs[job_id] = job
        reason = ""
        try:
            fetched = self._call("FetchJob", pb.FetchJobRequest(job_id=job_id), pb.FetchJobReply, timeout=300)
            if fetched.error:
                reason = fetched.error
            else:
                shutil.rmtree(folder / JOB_FOLDER, ignore_errors=True)
                unpack(fetched.job, folder / JOB_FOLDER, max_bytes=wire.MAX_JOB_BYTES)
                # Checked as this site runs it: its own app's custom/ only, and none at all
                # unless its kit allows custom code; no environment of this machine.
                checked, problems = inspect_job(folder / JOB_FOLDER, participant=self.site,
                                                allow_custom_code=self.kit.allow_custom_code)
                errors = relocate(errors_only(problems), folder / JOB_FOLDER, "")
                # The app's custom/ folder first (it says the whole of it), then the classes.
                refusals = sorted((p for p in errors if p.code == "custom-code-not-allowed"),
                                  key=lambda p: bool(p.json_path))
                if refusals:
                    first = refusals[0]
                    reason = (f"this site does not run custom code: {first.message} "
                              f"({first.position}); its operator can allow it with "
                              '"allow_custom_code": true in the site\'s kit (startup/kit.json)')
                elif checked is None or errors:
                    reason = f"the job is invalid here: {_one_line(errors[0]) if errors else 'it does not load'}"
                else:
                    # Resolved for this site: its name, workspace and job id substituted.
                    job.plan = plan_run(checked, [self.site], self.workspace, job_id, server=False,
                                        outside_files=self.kit.allow_outside_files)
                    job.name = checked.name or name
        except ArchiveError as exc:
            reason = f"the job archive is unsafe: {exc}"
        except wire.MessageError as exc:
            reason = f"could not fetch the job: the server's reply is not understood: {exc}"
        except ConfigError as exc:  # invalid as resolved for this site: its first problem, job paths only
            reason = f"the job is invalid here: {_one_line(relocate(exc.problems, folder / JOB_FOLDER, '')[0])}"
        except Exception as exc:  # any check failing refuses the job, saying why
            import grpc

            if isinstance(exc, grpc.RpcError):
                reason = f"could not fetch the job: {exc.details()}"
            else:
                # This machine's trouble (its disk ...): logged here in full; the server is
                # told what kind of trouble, not this machine's paths or values.
                log.exception("job %s: check failed", job_id)
                reason = f"the job could not be checked here ({type(exc).__name__}); see the site's log"
        job.state = "refused" if reason else "accepted"
        try:
            self._call("Report", pb.ReportRequest(job_id=job_id, state=job.state, reason=reason), pb.ReportReply)
        except Exception:
            pass  # the next poll says again what this site has
        self.say(f"job {job_id}: {'refused: ' + reason if reason else 'accepted'}")
        return job

    def _start(self, job: _Job, item: pb.Work) -> None:
        control = job.folder / ".control"
        control.mkdir(parents=True, exist_ok=True)
        write_atomic(control / "plan.json", job.plan.to_json().encode(), mode=0o600)
        heartbeat = item.heartbeat_timeout or 60.0
        spec = WorkerSpec(
            plan=str(control / "plan.json"), workspace=str(self.workspace), run_dir=str(job.folder),
            job_id=job.job_id, sites=tuple(item.sites or [self.site]),
            credentials={self.site: item.token}, heartbeat_timeout=heartbeat,
            threads=max(1, os.cpu_count() or 1), address=f"{self.kit.server_host}:{item.port}",
            tls=self.kit.tls_files(),
        )
        spec_file = spec.write(control / "spec.json")
        with open(job.folder / "worker.err", "wb") as err:
            job.proc = subprocess.Popen(worker_command("clients", spec_file, [self.site]),
                                        stdin=subprocess.DEVNULL, stdout=err, stderr=subprocess.STDOUT)
        job.state = "running"
        self.say(f"job {job.job_id} ({job.name}) started")

    def _check_jobs(self) -> None:
        for job in list(self._jobs.values()):
            if job.state != "running" or job.proc is None or job.proc.poll() is None:
                continue
            rc = job.proc.returncode
            lines = (job.folder / "worker.err").read_text(errors="replace").strip().splitlines() \
                if (job.folder / "worker.err").exists() else []
            job.state = "finished" if rc == 0 else "failed"
            reason = "" if rc == 0 else (lines[-1] if lines else f"exited with code {rc}")
            self.say(f"job {job.job_id} {job.state}" + (f": {reason}" if reason else ""))
            self._report_end(job, reason)

    def _report_end(self, job: _Job, reason: str) -> None:
        try:
            self._push_logs(job)
            self._call("Report", pb.ReportRequest(job_id=job.job_id, state=job.state, reason=reason),
                       pb.ReportReply)
            job.reported = True
        except Exception:
            pass

    def _push_logs(self, only: _Job | None = None) -> None:
        for job in [only] if only is not None else list(self._jobs.values()):
            if job.state not in ("running", "finished", "failed", "aborted"):
                continue
            path = job.folder / "log.txt"
            if not path.is_file():
                continue
            while True:
                try:
                    with open(path, "rb") as f:
                        f.seek(job.log_offset)
                        data = f.read(wire.LOG_CHUNK)
                except OSError as exc:
                    log.warning("cannot read %s: %s", path, exc)
                    break
                if not data:
                    break
                pushed = self._call("PushLog", pb.PushLogRequest(job_id=job.job_id, offset=job.log_offset, data=data),
                                    pb.PushLogReply)
                if not pushed.HasField("offset"):
                    break
                job.log_offset = pushed.offset
                if not pushed.ok and job.log_offset >= path.stat().st_size:
                    break

    def _kill(self, job: _Job) -> None:
        stop_process(job.proc)

    def _shutdown(self) -> None:
        for job in self._jobs.values():
            if job.state == "running":
                self._kill(job)
                job.state = "aborted"
                self._report_end(job, "the site stopped")
        if self._channel is not None:
            self._channel.close()
        self.say("stopped")


def _one_line(problem: Any) -> str:
    """A problem as one line (its hint left out), for a refusal the server reports."""
    return str(problem).splitlines()[0]


def _is_job_id(value: object) -> bool:
    """True for a job id as the server makes them (a UUID): it names a folder here."""
    try:
        return isinstance(value, str) and str(uuid.UUID(value)) == value
    except ValueError:
        return False
