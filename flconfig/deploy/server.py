"""``flconfig server KIT``: a deployed server that takes jobs from admins and runs them on its sites.

The service listens on its kit's port, over mutual TLS, for two kinds of caller,
told apart by their certificates: sites (``client``), which poll for work, and
admins (``admin``), which submit and watch jobs (see :mod:`.wire`). This module
holds the service's life: it takes its workspace (one server at a time), binds its
port, opens the job store (:mod:`.store`), and wires the parts that do the work:

- :mod:`.gate`: who may call, and each call's handling around it;
- :mod:`.site_calls`: the sites' calls (poll, fetch a job, report, push a log);
- :mod:`.admin_calls`: the admins' calls (submit, jobs, abort, logs, download, shutdown);
- :mod:`.scheduler`: each job's life (waiting, deploying, running, ended).

They share the runs and the sites through one :class:`~.state.Board`.

At most ``max_jobs`` jobs run at once (1 by default: a site gives a job all its
cores or its GPU, so two jobs on the same sites only take turns, slower); the
rest wait in the queue, in submission order.
"""

from __future__ import annotations

import errno
import logging
import shutil
import socket
import threading
from collections.abc import Callable
from concurrent import futures
from pathlib import Path
from typing import Any

from ..errors import storage_message
from ..files import FolderInUse, lock_folder
from ..transport.tls import CertificateGate
from . import store as st
from . import wire
from .admin_calls import AdminCalls, AdminSettings
from .gate import DeployGate, Handler
from .kit import Kit
from .scheduler import Scheduler, SchedulerSettings, start_scheduler
from .site_calls import SiteCalls
from .state import Board, ServiceError

__all__ = ["DeployServer", "ServiceError"]

log = logging.getLogger(__name__)
#: Threads answering calls (at most :data:`.site_calls.POLL_SLOTS` of them hold a site's poll).
HANDLER_THREADS = 128


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
        #: The runs and sites the calls and the scheduler share.
        self.board = Board(self.workspace, self.say)
        self._gate = DeployGate(CertificateGate(kit.ca_file, kit.crl_file), kit.org, self.board, self._say)
        self._server: Any = None
        self._store: st.JobStore | None = None
        self._lock_file: Any = None
        self._scheduler: Scheduler | None = None
        self._scheduler_thread: threading.Thread | None = None
        self.bound_port: int | None = None

    def say(self, message: str) -> None:
        """Say ``message`` to the server's operator (and its log)."""
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
        generic = grpc.method_handlers_generic_handler(wire.SERVICE, self._handlers())
        server = grpc.server(futures.ThreadPoolExecutor(HANDLER_THREADS, thread_name_prefix="flconfig-deploy"),
                             handlers=[generic], interceptors=[self._gate.gatekeeper], options=wire.options())
        target = f"{self.host}:{self.port}"
        try:
            bound = server.add_secure_port(target, self.kit.server_credentials())
        except RuntimeError:
            bound = 0
        if not bound:
            raise ServiceError(f"cannot listen on {target}: {_bind_problem(self.host, self.port)}")
        try:
            store = st.JobStore(self.workspace / "jobs.db")
            recovered = store.recover()
        except st.StoreError as exc:
            server.stop(None)
            raise ServiceError(str(exc)) from None
        self._store = store
        for record in recovered:
            self.say(f"job {record.id} ({record.name}) was {record.state} when the server stopped: "
                     "reported failed")
        # Submissions being unpacked when the server stopped: never accepted, nothing to keep.
        shutil.rmtree(self.workspace / ".incoming", ignore_errors=True)
        server.start()
        self._server, self.bound_port = server, bound
        self._scheduler = Scheduler(self.board, store, SchedulerSettings(
            host=self.host, max_jobs=self.max_jobs, site_wait=self.site_wait,
            heartbeat_timeout=self.heartbeat_timeout, live_metrics=self.live_metrics, job_ports=self.job_ports,
            allow_custom_code=self.kit.allow_custom_code, allow_outside_files=self.kit.allow_outside_files,
            tls=self.kit.tls_files()))
        self._scheduler_thread = start_scheduler(self._scheduler)
        queued = len(store.queued())
        self.say(f"project {self.kit.project!r}: listening on {self.host}:{bound} (mutual TLS); "
                 f"workspace {self.workspace}; {queued} job(s) queued; at most {self.max_jobs} "
                 "running at once")
        return self

    def _handlers(self) -> dict[str, Any]:
        """The gRPC handler of each method of the service, behind the gate."""
        sites = SiteCalls(self.board, lambda: self.store)
        admins = AdminCalls(self.board, lambda: self.store, AdminSettings(
            max_jobs=self.max_jobs, allow_custom_code=self.kit.allow_custom_code, refused=self._gate.refused))
        site_methods: dict[str, Handler] = {
            "Poll": sites.poll, "FetchJob": sites.fetch_job, "Report": sites.report, "PushLog": sites.push_log,
        }
        admin_methods: dict[str, Handler] = {
            "Submit": admins.submit, "Jobs": admins.jobs, "Abort": admins.abort, "Logs": admins.logs,
            "Download": admins.download, "Shutdown": admins.shutdown,
        }
        assert tuple(site_methods) == wire.SITE_METHODS and tuple(admin_methods) == wire.ADMIN_METHODS
        handlers = {name: self._gate.handler(name, fn) for name, fn in site_methods.items()}
        handlers.update({name: self._gate.handler(name, fn) for name, fn in admin_methods.items()})
        return handlers

    def serve(self) -> int:
        """Serve until :meth:`stop` (an admin's shutdown, SIGTERM, Ctrl-C)."""
        try:
            while not self.board.stop.wait(0.5):
                pass
        except KeyboardInterrupt:
            self.say("interrupted")
        finally:
            self.stop()
        return 0

    def stop_soon(self) -> None:
        """Make :meth:`serve` return (safe from a signal handler)."""
        self.board.stop.set()

    def stop(self, reason: str = "the server stopped") -> None:
        """Abort running jobs (reported aborted), stop serving, close the store."""
        self.board.stop.set()
        self.board.notify()
        thread = self._scheduler_thread
        if thread is not None and thread is not threading.current_thread():
            thread.join(timeout=30)  # its step in progress ends before the store closes
        if self._scheduler is not None:
            self._scheduler.end_all(reason)
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
        """The job store (the service started)."""
        assert self._store is not None, "the service is not started"
        return self._store


def _bind_problem(host: str, port: int) -> str:
    """Why ``host:port`` cannot be listened on, as one phrase."""
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
