"""The scheduler of a deployed server: it takes each queued job through its life.

1. *waiting*: until ``min_clients`` of the job's sites (its deploy map's, or every
   connected site under ``@ALL``) and all its ``mandatory_clients`` poll;
2. *deploying*: each chosen site fetches the job, checks it itself (its own
   registry, its custom-code permission) and accepts or refuses it;
3. *running*: the job's server runs as a process of its own (the simulator's
   server, :func:`flconfig.runtime.server_process.run_server`) on a port of its own with
   the same certificates; the sites that accepted connect to it. Its files are
   ``WORKSPACE/JOB_ID/``: log, global model, ``tb_events/SITE/``, cross-site
   results, and the sites' logs in ``sites/SITE/log.txt``.

At most ``max_jobs`` jobs run at once; the rest wait in the queue, in submission
order. Every end of a job is recorded in the job store, and a job the store has as
active but no run here is failed, saying so (:meth:`Scheduler.reconcile`).
"""

from __future__ import annotations

import json
import logging
import os
import secrets
import socket
import subprocess
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..common.processes import stop_process
from ..errors import ConfigError, errors_only, relocate
from ..files import write_atomic
from ..runtime.planner import plan_run
from ..runtime.spec import STARTUP_TIMEOUT, WorkerSpec, wait_for_port, worker_command
from . import store as st
from .state import CONTROL, JOB_FOLDER, Board, Run, ServiceError, inspect_submitted

log = logging.getLogger(__name__)
#: Seconds a deploying job waits for its sites to accept or refuse it.
DEPLOY_TIMEOUT_S = 120.0
#: Under ``@ALL`` without ``min_clients``: seconds after the first site connects before
#: the job takes the sites connected by then.
ALL_SETTLE_S = 3.0
#: Seconds between two checks that every job the store has as active has a run here.
RECONCILE_S = 5.0


@dataclass(frozen=True)
class SchedulerSettings:
    """How the scheduler runs jobs (the server's options and its kit's)."""

    host: str
    max_jobs: int
    site_wait: float  # seconds a job waits for its sites to connect
    heartbeat_timeout: float | None  # None: each job's own (its server config's), or 60 s
    live_metrics: bool
    #: Ports the jobs' servers may listen on (None: any free port), for a firewall.
    job_ports: range | None
    allow_custom_code: bool
    allow_outside_files: bool
    tls: dict[str, str]  # the kit's certificate files, for the job's server


class Scheduler:
    """Runs the queued jobs of ``store`` on the sites of ``board`` (see the module docstring)."""

    def __init__(self, board: Board, store: st.JobStore, settings: SchedulerSettings) -> None:
        self._board = board
        self._store: st.JobStore | None = store
        self._settings = settings
        self._store_said: set[str] = set()  # store failures logged once each
        self._reconciled_at = 0.0

    @property
    def store(self) -> st.JobStore:
        assert self._store is not None, "the scheduler is closed"
        return self._store

    def run(self) -> None:
        """Take steps until the server stops."""
        board = self._board
        while not board.stop.is_set():
            try:
                self.step()
            except st.StoreError as exc:  # a full disk: said once per cause, tried again
                if str(exc) not in self._store_said:
                    self._store_said.add(str(exc))
                    log.error("%s; trying again", exc)
            except Exception:  # a bug here must not stop the service
                log.exception("scheduler step failed")
            with board.cond:
                board.cond.wait(0.2)

    def end_all(self, reason: str) -> None:
        """Abort every run (reported aborted, with ``reason``), then let go of the store."""
        with self._board.cond:
            runs = list(self._board.runs.values())
        for run in runs:
            self.end_run(run, st.ABORTED, reason)
        self._store = None

    def step(self) -> None:
        """Move every run on by one step, admit queued jobs into free places, and now and
        then :meth:`reconcile`."""
        board = self._board
        with board.lock:
            runs = list(board.runs.values())
        for run in runs:
            if run.ended is not None:
                self.end_run(run, *run.ended)  # the store could not record it yet
            elif run.abort:
                self.end_run(run, st.ABORTED, run.abort)
            elif run.state == st.WAITING:
                self._try_deploy(run)
            elif run.state == st.DEPLOYING:
                self._try_start(run)
            elif run.state == st.RUNNING:
                self._check_running(run)
        with board.lock:
            free = self._settings.max_jobs - sum(r.ended is None for r in board.runs.values())
        if free > 0 and not board.stop.is_set():
            for record in self.store.queued()[:free]:
                self._admit(record)
        if time.monotonic() - self._reconciled_at > RECONCILE_S:
            self._reconciled_at = time.monotonic()
            self.reconcile()

    def _heartbeat(self, job: Any) -> float:
        """Seconds of silence after which the job's server counts a site lost."""
        if self._settings.heartbeat_timeout is not None:
            return self._settings.heartbeat_timeout
        config = job.server_config
        value = config.doc.data_at(("server", "heart_beat_timeout")) if config is not None else None
        return float(value) if isinstance(value, (int, float)) and value > 0 else 60.0

    def _admit(self, record: st.JobRecord) -> None:
        folder = self._board.workspace / record.id
        job, problems = inspect_submitted(folder / JOB_FOLDER, self._settings.allow_custom_code)
        if job is None or errors_only(problems):
            self.store.set_state(record.id, st.FAILED, error="the stored job folder no longer loads")
            return
        self.store.set_state(record.id, st.WAITING)
        run = Run(record, folder, job, heartbeat=self._heartbeat(job))
        with self._board.lock:
            self._board.runs[record.id] = run
        named = list(job.meta.client_sites())
        self._board.say(f"job {record.id} ({record.name}) waiting for "
                        + (f"its sites {', '.join(named)}" if named else "sites (@ALL)"))

    def _try_deploy(self, run: Run) -> None:
        settings = self._settings
        meta = run.job.meta
        connected = self._board.connected()
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
            with self._board.lock:
                taken = {r.port for r in self._board.runs.values() if r.port is not None}
            run.port = free_port(settings.host, settings.job_ports, taken)
            if run.port is None:
                assert settings.job_ports is not None
                self.end_run(run, st.FAILED, f"no free port for the job's server in --job-ports "
                                             f"{settings.job_ports.start}-{settings.job_ports.stop - 1}")
                return
            run.state, run.since = st.DEPLOYING, time.monotonic()
            self.store.set_state(run.record.id, st.DEPLOYING, sites=pool)
            self._board.say(f"job {run.record.id}: deploying to {', '.join(pool)}")
            self._board.notify()
        elif time.monotonic() - run.since > settings.site_wait:
            missing = [m for m in mandatory if m not in pool]
            want = ", ".join(missing) if missing else f"{need} site(s), {len(pool)} connected"
            self.end_run(run, st.FAILED, f"its sites did not connect within {settings.site_wait:g} s "
                                         f"(waiting for {want})")

    def _try_start(self, run: Run) -> None:
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
            self.end_run(run, st.FAILED, "; ".join(reasons) or "too few sites accepted it")
            return
        try:
            self._start_process(run, accepted)
        except ConfigError as exc:  # invalid as resolved for this run: its first problem, job paths only
            first = relocate(exc.problems, run.folder / JOB_FOLDER, "")[0]
            self.end_run(run, st.FAILED, f"the job is invalid for this run: {str(first).splitlines()[0]}")
        except (ServiceError, OSError) as exc:  # it did not start listening; this machine's disk
            log.error("job %s could not start: %s", run.record.id, exc)
            self.end_run(run, st.FAILED, f"the job's server could not start: {str(exc).splitlines()[0]}")
        except Exception as exc:
            log.exception("job %s could not start", run.record.id)
            self.end_run(run, st.FAILED, f"the job's server could not start ({type(exc).__name__}); "
                                         "see the server's log")

    def _start_process(self, run: Run, sites: list[str]) -> None:
        settings, workspace = self._settings, self._board.workspace
        control = run.folder / CONTROL
        control.mkdir(parents=True, exist_ok=True)
        plan = plan_run(run.job, sites, workspace, run.record.id, server=True,
                        outside_files=settings.allow_outside_files)
        write_atomic(control / "plan.json", plan.to_json().encode(), mode=0o600)
        run.accepted = list(sites)
        port_file = control / "server.port"
        port_file.unlink(missing_ok=True)
        spec = WorkerSpec(
            plan=str(control / "plan.json"), workspace=str(workspace), run_dir=str(run.folder),
            job_id=run.record.id, sites=tuple(sites), min_clients=run.need,
            credentials={s: run.tokens[s] for s in sites}, heartbeat_timeout=run.heartbeat,
            threads=max(1, (os.cpu_count() or 2) - 1), port_file=str(port_file),
            live_metrics_interval=2.0 if settings.live_metrics else 0, host=settings.host, port=run.port or 0,
            tls=settings.tls,
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
        self._board.say(f"job {run.record.id}: running on {', '.join(sites)} (port {run.port})")
        self._board.notify()

    def _check_running(self, run: Run) -> None:
        assert run.proc is not None
        if run.proc.poll() is None:
            return
        try:
            status = json.loads((run.folder / "status.json").read_text())
        except (OSError, ValueError):
            status = {"ok": False, "error": f"the job's server exited with code {run.proc.returncode}"}
        if status.get("ok"):
            self.end_run(run, st.FINISHED, "")
        else:
            site = status.get("site")
            where = f"{site}: " if site and site != "server" else ""
            self.end_run(run, st.FAILED, f"{where}{status.get('error', 'failed')}")

    def end_run(self, run: Run, state: str, error: str) -> None:
        """End ``run`` (its processes stopped) as ``state``, and record that in the store.
        A run the store cannot record yet (a full or unwritable disk) stays here, ended,
        and the scheduler tries again: never a job left "running" with no process."""
        board = self._board
        if run.ended is None:
            stop_process(run.proc)
            with board.cond:
                if board.runs.get(run.record.id) is not run:
                    return
                run.ended = (state, error)
                board.cond.notify_all()
            board.say(f"job {run.record.id} ({run.record.name}) {state}" + (f": {error}" if error else ""))
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
            board.say(f"job {run.record.id}: recorded as {state} in the job store")
        with board.cond:
            if board.runs.get(run.record.id) is run:
                del board.runs[run.record.id]
            board.cond.notify_all()

    def reconcile(self) -> None:
        """Every job the store has as waiting, deploying or running has a run here; one
        without (its processes are gone) is recorded as failed, saying so."""
        with self._board.lock:
            known = set(self._board.runs)
        for record in self.store.all():
            if record.state in (st.WAITING, st.DEPLOYING, st.RUNNING) and record.id not in known:
                why = (f"the server lost track of the job while it was {record.state}: no process of "
                       "it is left")
                if self.store.set_state(record.id, st.FAILED, error=why):
                    self._board.say(f"job {record.id} ({record.name}) failed: {why}")


def start_scheduler(scheduler: Scheduler) -> threading.Thread:
    """Run ``scheduler`` on a thread of its own (a daemon); that thread."""
    thread = threading.Thread(target=scheduler.run, name="flconfig-scheduler", daemon=True)
    thread.start()
    return thread


def free_port(host: str, ports: range | None = None, taken: set[int] | frozenset[int] = frozenset()) -> int | None:
    """A port free on ``host`` now (from ``ports``, not in ``taken``), for a job's server,
    which binds it moments later; None if ``ports`` has none free."""
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
