"""The server end of the link: authenticates sites, hands out tasks, gathers results and events.

One :class:`CommServer` serves every site of a job. Sites pull work (GetTask is
a long poll, so a task reaches an idle site within milliseconds); the server
never opens connections. A site's identity is the name its credentials
authenticate on each call, never a field of the payload.
"""

from __future__ import annotations

import hmac
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from concurrent import futures
from dataclasses import dataclass, field
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message

from ..errors import JobError, StorageError
from ..types import FLModel, Signal
from . import contract
from . import flconfig_pb2 as pb
from .codec import ProtocolError, decode_model, decode_records, encode_model

log = logging.getLogger(__name__)

# Site states. NEW: named as a target but never said Hello; LOST: no call within
# the heartbeat timeout (becomes ALIVE again on its next call); LEFT: said Bye.
_NEW, _ALIVE, _LOST, _LEFT = "new", "alive", "lost", "left"
# Methods a site may call before Hello (or after Bye).
_SESSIONLESS = ("Hello", "Bye")
#: Largest request of a control method (all but SubmitResult, PushResult and SendEvents).
MAX_CONTROL_BYTES = 64 * 1024
_CONTROL_METHODS = frozenset({"Hello", "GetTask", "FetchModel", "Heartbeat", "Bye"})
_REQUESTS: dict[str, type[Message]] = {
    "Hello": pb.HelloRequest,
    "GetTask": pb.GetTaskRequest,
    "FetchModel": pb.FetchModelRequest,
    "SubmitResult": pb.SubmitResultRequest,
    "PushResult": pb.ResultPart,
    "Heartbeat": pb.HeartbeatRequest,
    "SendEvents": pb.SendEventsRequest,
    "Bye": pb.ByeRequest,
}
_NO_TASK: bytes = pb.TaskReply(kind=pb.TaskReply.NONE).SerializeToString()
_END: bytes = pb.TaskReply(kind=pb.TaskReply.END).SerializeToString()
#: Most refusals in progress at once; calls beyond it are turned away by gRPC's
#: own thread without a handler thread (status UNIMPLEMENTED).
MAX_REFUSALS_IN_FLIGHT = 8
#: Refused calls logged one by one for each reason; after that, one line every 1000.
_REFUSALS_LOGGED = 10

EventsCallback = Callable[[str, list[dict[str, Any]]], None]
ResultCallback = Callable[[str, FLModel], None]


@dataclass(eq=False)
class _Task:
    name: str
    task_id: str
    model: bytes  # the task's model frame, encoded once and shared by every target
    reply: bytes  # the GetTask reply: the frame inside when it fits in one message
    targets: tuple[str, ...]
    results: dict[str, FLModel] = field(default_factory=dict)
    arrivals: list[str] = field(default_factory=list)  # result order, for on_result
    closed: bool = False


#: How often wait_for_sites counts the connected sites.
_SITE_COUNT_PERIOD_S = 0.02


@dataclass(eq=False)
class _Site:
    name: str
    state: str = _NEW
    last_seen: float = 0.0
    active_calls: int = 0
    lost_reason: str = "never connected"
    tasks: deque[_Task] = field(default_factory=deque)
    # Event stream: the client instance's stream id and the last seq delivered.
    stream: str = ""
    last_seq: int = 0
    failure: str = ""  # why the site stopped, if it said Bye because it failed
    # Why its process ended, when whoever started it says so (mark_lost): a site
    # whose process is gone is never made alive again by a late call.
    process_ended: str = ""
    events_lock: threading.Lock = field(default_factory=threading.Lock)
    # Wakes this site's long polls only (it shares the server's lock): a task for
    # one site, or a result, does not wake every site's waiting GetTask.
    polls: threading.Condition | None = None


def _job_error(message: str, sites: Sequence[str]) -> JobError:
    err = JobError(message)
    err.site = sites[0] if len(sites) == 1 else None
    return err


def _abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


def _parse(method: str, data: bytes) -> Any:
    """The request message of ``method`` in ``data``; :class:`ProtocolError` if it is none."""
    kind = _REQUESTS[method]
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"{method}: not a valid {kind.__name__} ({exc})") from None


class _Gatekeeper(grpc.ServerInterceptor):  # type: ignore[misc]  # grpc ships no types
    """Authenticates every call on its metadata, before any request body is read.

    gRPC runs this on its polling thread as soon as a call's headers arrive. A
    call without valid site credentials gets a handler that refuses it at once
    without reading its body (a handler thread is busy for microseconds, not
    for as long as the caller cares to hold the call open), and while
    :data:`MAX_REFUSALS_IN_FLIGHT` refusals are under way further ones are
    rejected by gRPC itself, using no handler thread at all. So neither silent
    callers nor callers with huge bodies can take the threads honest sites need.
    """

    def __init__(self, server: CommServer) -> None:
        self._server = server
        self._lock = threading.Lock()
        self._in_flight = 0
        #: Calls refused so far (no credentials, bad credentials, unknown method).
        self.refused = 0
        self._by_reason: dict[str, int] = {}

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        method = handler_call_details.method.rpartition("/")[2]
        if handler_call_details.method != contract.method_path(method) or method not in contract.METHODS:
            return self._refuse(handler_call_details, grpc.StatusCode.UNIMPLEMENTED,
                                "unknown method")
        problem = self._server._check_credentials(handler_call_details.invocation_metadata)
        if problem is not None:
            return self._refuse(handler_call_details, grpc.StatusCode.UNAUTHENTICATED, problem)
        return continuation(handler_call_details)

    def note_refusal(self, method: str, why: str) -> None:
        """Count and log a call a handler refused (a certificate that does not match)."""
        self._count(method, why)

    def _count(self, method: str, why: str, take_slot: bool = False) -> bool:
        """Count a refusal and log it (each kind of reason a few times, never a flood);
        with ``take_slot``, also take a refusal slot: False when none is free."""
        # Counted by kind of reason: a caller cycling through site names must not get
        # a fresh allowance of log lines for each.
        kind = why.partition(" for site ")[0].partition(" was used ")[0]
        with self._lock:
            self.refused += 1
            count = self.refused
            same = self._by_reason[kind] = self._by_reason.get(kind, 0) + 1
            slot = take_slot and self._in_flight < MAX_REFUSALS_IN_FLIGHT
            if slot:
                self._in_flight += 1
        if same <= _REFUSALS_LOGGED or same % 1000 == 0:
            log.warning("refused a call to %s: %s (%d refused so far)", method[:100], why, count)
        return slot

    def _refuse(self, details: Any, code: grpc.StatusCode, why: str) -> Any:
        over = not self._count(str(details.method), why, take_slot=True)
        if over:
            return None  # gRPC answers UNIMPLEMENTED from its own thread

        def refuse(request_iterator: Any, context: grpc.ServicerContext) -> bytes:
            try:
                context.abort(code, why)
            finally:
                with self._lock:
                    self._in_flight -= 1
            raise AssertionError("unreachable")

        # Request-streaming, so gRPC does not wait for (or buffer) a body before
        # running it; the body is never read.
        return grpc.stream_unary_rpc_method_handler(refuse)


class CommServer:
    """gRPC server that the job's sites connect to.

    ``credentials`` maps each site name to its token. ``on_events(site,
    records)`` receives event records exactly once and in order per site;
    ``on_site_lost(site)`` is told when a site made no call for
    ``heartbeat_timeout`` seconds; ``on_site_failed(site, reason)`` when a site
    stopped because it failed. ``on_events`` runs on gRPC handler threads
    (one site at a time per site), ``on_site_lost`` on a monitor thread.
    """

    def __init__(
        self,
        credentials: Mapping[str, str],
        host: str = "127.0.0.1",
        port: int = 0,
        heartbeat_timeout: float = 60.0,
        max_message_mb: int = contract.DEFAULT_MAX_MESSAGE_MB,
        *,
        max_model_mb: int = contract.DEFAULT_MAX_MODEL_MB,
        on_events: EventsCallback | None = None,
        on_site_lost: Callable[[str], None] | None = None,
        on_site_failed: Callable[[str, str], None] | None = None,
        server_credentials: grpc.ServerCredentials | None = None,
        peer_check: Callable[[grpc.ServicerContext, str], str | None] | None = None,
    ) -> None:
        if not credentials:
            raise ValueError("credentials: at least one site is needed")
        self._tokens: dict[str, bytes] = {}
        for site, token in credentials.items():
            contract.check_site_name(site)
            self._tokens[site] = contract.check_token(token, site).encode("ascii")
        if heartbeat_timeout <= 0:
            raise ValueError("heartbeat_timeout must be > 0")
        self.host = host
        self._requested_port = port
        self.heartbeat_timeout = float(heartbeat_timeout)
        contract.check_limits(max_message_mb, max_model_mb)
        #: Largest gRPC message, in MiB (a chunk of a model, a batch of records).
        self.max_message_mb = max_message_mb
        #: Largest model frame, in MiB, this server sends as a task or accepts as a result.
        self.max_model_mb = max_model_mb
        self.on_events = on_events
        self.on_site_lost = on_site_lost
        self.on_site_failed = on_site_failed
        self._server_credentials = server_credentials
        #: With mutual TLS: ``peer_check(context, site)`` says why the caller's certificate
        #: does not prove it is ``site`` (None: it does); checked on every call.
        self._peer_check = peer_check
        # Hold GetTask no longer than a fraction of the timeout, so a long poll
        # can never look like silence.
        self._long_poll = min(contract.LONG_POLL_S, self.heartbeat_timeout / 2)
        self._dummy_token = b"\0" * 32  # compared against for unknown sites

        self._lock = threading.RLock()
        self._cond = threading.Condition(self._lock)
        self._sites: dict[str, _Site] = {}
        self._state_changes = 0  # counts changes of any site's state (alive, lost, left)
        self._tasks: dict[str, _Task] = {}
        self._ended = False
        self._stopping = False
        self._server: grpc.Server | None = None
        self._port: int | None = None
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None
        self._gatekeeper = _Gatekeeper(self)
        #: Set while the latest records could not be written (a full disk), else None.
        self.storage_error: str | None = None
        #: Failures of the server's receivers that fail the run.
        self.failures: list[str] = []

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> CommServer:
        """Bind the port and start serving (idempotent)."""
        if self._server is not None:
            return self
        handlers = {
            "Hello": self._hello,
            "GetTask": self._get_task,
            "FetchModel": self._fetch_model,
            "SubmitResult": self._submit_result,
            "PushResult": self._push_result,
            "Heartbeat": self._heartbeat,
            "SendEvents": self._send_events,
            "Bye": self._bye,
        }
        generic = grpc.method_handlers_generic_handler(
            contract.SERVICE, {name: self._wrap(name, fn) for name, fn in handlers.items()}
        )
        workers = max(16, 5 * len(self._tokens) + 4)  # long polls each hold a thread
        server = grpc.server(
            futures.ThreadPoolExecutor(max_workers=workers, thread_name_prefix="flconfig-comm"),
            handlers=[generic],
            interceptors=[self._gatekeeper],
            options=contract.server_options(self.max_message_mb),
        )
        target = f"{self.host}:{self._requested_port}"
        try:
            if self._server_credentials is None:
                port = server.add_insecure_port(target)
            else:
                port = server.add_secure_port(target, self._server_credentials)
        except RuntimeError as exc:
            raise JobError(f"cannot listen on {target}: {exc}") from None
        if not port:
            raise JobError(f"cannot listen on {target}: the address is in use or invalid")
        server.start()
        self._server, self._port = server, port
        self._monitor = threading.Thread(
            target=self._watch_heartbeats, name="flconfig-comm-monitor", daemon=True
        )
        self._monitor.start()
        log.info("communication server listening on %s:%d", self.host, port)
        return self

    @property
    def port(self) -> int:
        """The bound port (known after :meth:`start`)."""
        if self._port is None:
            raise RuntimeError("CommServer is not started")
        return self._port

    @property
    def address(self) -> str:
        """``host:port`` for clients to connect to."""
        return f"{self.host}:{self.port}"

    def stop(self, grace: float = 2.0) -> None:
        """Stop serving; calls in progress get ``grace`` seconds to finish."""
        with self._cond:
            self._stopping = True
            self._cond.notify_all()
            self._wake_polls()
        self._monitor_stop.set()
        if self._server is not None:
            self._server.stop(grace).wait(grace + 1.0)
            self._server = None
        if self._monitor is not None:
            self._monitor.join(timeout=2.0)
            self._monitor = None

    def __enter__(self) -> CommServer:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ------------------------------------------------------------------ sites

    def alive_sites(self) -> list[str]:
        """Sites that said Hello, have not said Bye, and called within the heartbeat timeout."""
        with self._cond:
            return sorted(name for name, st in self._sites.items() if st.state == _ALIVE)

    def wait_for_sites(self, n: int, timeout: float) -> list[str]:
        """Wait until at least ``n`` sites said Hello, or ``timeout`` seconds pass without
        a new one, or a site reports that it failed; return the alive sites.

        The list may hold fewer than ``n`` sites when the timeout passed (logged
        with the names of those missing); the caller decides whether that is enough.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        while True:
            with self._cond:
                alive = [name for name, st in self._sites.items() if st.state == _ALIVE]
                failed = any(st.failure for st in self._sites.values())
                # Sites whose process has ended will not come: no use waiting for them.
                gone = sum(1 for st in self._sites.values() if st.process_ended and st.state != _ALIVE)
            if len(alive) > seen:  # progress: the wait follows it, so many sites get time
                seen = len(alive)
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if len(alive) >= n or len(alive) + gone >= n or remaining <= 0 or failed:
                break
            # Counted at most 50 times a second, outside the lock: thousands of Hellos
            # must not each make the server walk every site while they wait for it.
            time.sleep(min(_SITE_COUNT_PERIOD_S, remaining))
        alive.sort()
        if len(alive) < n and not failed:
            missing = sorted(set(self._tokens) - set(alive))
            log.warning(
                "only %d of %d sites connected (none more for %g s); not connected: %s",
                len(alive), n, timeout, ", ".join(missing),
            )  # fmt: skip
        return alive

    def _watch_heartbeats(self) -> None:
        period = min(0.25, self.heartbeat_timeout / 4)
        while not self._monitor_stop.wait(period):
            now = time.monotonic()
            lost: list[str] = []
            with self._cond:
                for st in self._sites.values():
                    if (
                        st.state == _ALIVE
                        and st.active_calls == 0
                        and now - st.last_seen > self.heartbeat_timeout
                    ):
                        st.state = _LOST
                        self._state_changes += 1
                        st.lost_reason = f"no call for {self.heartbeat_timeout:g} s"
                        lost.append(st.name)
                if lost:
                    self._cond.notify_all()
            for name in lost:
                log.warning("site %s lost: no call for %g s", name, self.heartbeat_timeout)
                if self.on_site_lost is not None:
                    try:
                        self.on_site_lost(name)
                    except Exception:
                        log.exception("on_site_lost(%s) failed", name)

    def mark_lost(self, sites: Iterable[str], reason: str) -> list[str]:
        """Mark ``sites`` lost at once, because their process ended (``reason`` says how):
        what the heartbeat monitor does for a silent site, without waiting for the
        timeout. A task waiting on them then ends or fails per its ``min_responses``, with
        ``reason`` in its message. Sites that said Bye, and unknown names, are left as
        they are; returns the sites this marked lost. ``on_site_lost`` is not called: the
        caller knows, and says, why."""
        marked: list[str] = []
        with self._cond:
            for name in dict.fromkeys(sites):
                if name not in self._tokens:
                    continue
                st = self._site(name)
                if st.state == _LEFT or st.process_ended:
                    continue
                st.state = _LOST
                st.lost_reason = reason
                st.process_ended = reason
                marked.append(name)
            if marked:
                self._state_changes += 1
                self._cond.notify_all()
                self._wake_polls(self._sites[name] for name in marked)
        for name in marked:
            log.warning("site %s lost: %s", name, reason)
        return marked

    # ------------------------------------------------------------------ tasks

    def broadcast_and_wait(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None,
        min_responses: int,
        wait_time_after_min_received: float = 0,
        timeout: float = 0,
        abort: Signal | None = None,
        on_result: ResultCallback | None = None,
    ) -> dict[str, FLModel]:
        """Send one task to every target once and gather their results (FLARE's semantics).

        ``targets=None`` means every alive site; ``min_responses <= 0`` means all
        targets. Returns when every target answered; or when ``min_responses``
        results are in and ``wait_time_after_min_received`` more seconds passed
        (or nobody else can still answer); or after ``timeout`` seconds (0 =
        none); or when ``abort`` is triggered or the run ends. ``on_result(site,
        result)`` runs on this thread as each result arrives. Raises
        :class:`JobError` naming the lost site(s) once ``min_responses`` can no
        longer be reached.
        """
        if targets is None:
            targets = self.alive_sites()
            if not targets:
                raise JobError(f"task '{task_name}': no site is connected")
        targets = tuple(dict.fromkeys(targets))
        for site in targets:
            if site not in self._tokens:
                raise ValueError(f"task '{task_name}': unknown target site {site!r}")
        need = len(targets) if min_responses <= 0 else min_responses
        if need > len(targets):
            raise JobError(
                f"task '{task_name}' needs {need} results but has only {len(targets)} target(s)"
            )
        task_id = uuid.uuid4().hex
        model = encode_model(data)
        if len(model) > self.max_model_mb * 1024 * 1024:
            raise JobError(
                f"task '{task_name}': its data is {len(model) / 2**20:.1f} MiB, "
                f"above max_model_mb={self.max_model_mb}"
            )
        reply = pb.TaskReply(
            kind=pb.TaskReply.TASK, name=task_name, task_id=task_id, model_bytes=len(model)
        )
        if len(model) <= contract.CHUNK_BYTES:
            reply.model = model  # small: inside the reply; else the sites fetch it in chunks
        task = _Task(task_name, task_id, model, reply.SerializeToString(), targets)
        with self._cond:
            self._tasks[task_id] = task
            for site in targets:
                self._site(site).tasks.append(task)
            self._cond.notify_all()
            self._wake_polls(self._sites[site] for site in targets)
        log.debug("task %s (%s) sent to %s", task_name, task_id, ", ".join(targets))
        try:
            return self._gather(task, need, wait_time_after_min_received, timeout, abort, on_result)
        finally:
            with self._cond:
                task.closed = True
                self._tasks.pop(task_id, None)

    def _gather(
        self,
        task: _Task,
        need: int,
        wait_after: float,
        timeout: float,
        abort: Signal | None,
        on_result: ResultCallback | None,
    ) -> dict[str, FLModel]:
        start = time.monotonic()
        min_reached_at: float | None = None
        reported = 0
        seen_changes = -1
        not_alive: list[str] = []
        while True:
            if on_result is not None:
                with self._cond:
                    fresh = [(s, task.results[s]) for s in task.arrivals[reported:]]
                    reported += len(fresh)
                for site, result in fresh:
                    on_result(site, result)
            with self._cond:
                now = time.monotonic()
                got = len(task.results)
                # Recounted only when a site's state changed: a wake per result must not
                # walk every target (quadratic with thousands of sites, under the lock).
                if seen_changes != self._state_changes:
                    seen_changes = self._state_changes
                    not_alive = [s for s in task.targets if self._sites[s].state != _ALIVE]
                unreachable = [s for s in not_alive if s not in task.results]
                n_pending = len(task.targets) - got
                interrupted = (
                    self._ended
                    or self._stopping
                    or (abort is not None and abort.triggered)
                    or (timeout > 0 and now - start >= timeout)
                )
                if not interrupted and got < need and len(task.targets) - len(unreachable) < need:
                    reasons = "; ".join(f"{s}: {self._sites[s].lost_reason}" for s in unreachable)
                    raise _job_error(
                        f"task '{task.name}' cannot get the {need} results it needs "
                        f"({got} received) because these sites are lost: {reasons}",
                        unreachable,
                    )
                if got >= need and min_reached_at is None:
                    min_reached_at = now
                done = (
                    not n_pending
                    or interrupted
                    or (
                        min_reached_at is not None
                        and (now - min_reached_at >= wait_after or len(unreachable) == n_pending)
                    )
                )
                if done:
                    # Closed under the same lock as the snapshot: a result that
                    # arrives later is refused as late, never accepted and dropped.
                    task.closed = True
                    results = dict(task.results)
                    arrivals = list(task.arrivals)
                    break
                if on_result is None or reported == len(task.arrivals):
                    deadlines = [now + (0.05 if abort is not None else 1.0)]
                    if timeout > 0:
                        deadlines.append(start + timeout)
                    if min_reached_at is not None:
                        deadlines.append(min_reached_at + wait_after)
                    self._cond.wait(max(0.0, min(deadlines) - now))
        if abort is not None and abort.triggered and n_pending:
            log.info("task %s aborted: %s", task.name, abort.reason or "abort signal")
        elif n_pending and timeout > 0 and now - start >= timeout:
            log.warning(
                "task %s timed out after %g s with %d of %d results",
                task.name, timeout, len(results), len(task.targets),
            )  # fmt: skip
        if on_result is not None:
            for site in arrivals[reported:]:
                on_result(site, results[site])
        return results

    def send_and_wait(
        self, task_name: str, data: FLModel, site: str, timeout: float = 0
    ) -> FLModel:
        """Send one task to one site and return its result.

        Raises :class:`JobError` if the site is lost or no result came within
        ``timeout`` seconds (0 = no limit).
        """
        results = self.broadcast_and_wait(task_name, data, [site], 1, timeout=timeout)
        if site not in results:
            raise JobError(
                f"no result for task '{task_name}'" + (f" within {timeout:g} s" if timeout else ""),
                site,
            )
        return results[site]

    def end_run(self, timeout: float = 30) -> list[str]:
        """End the run: every GetTask answers "end"; wait for alive sites to say Bye.

        Sites flush their events before Bye, so once this returns every event
        they sent has been delivered. Returns the sites that did not say Bye
        (empty on success): those still there once ``timeout`` seconds passed
        without another site leaving.
        """
        deadline = time.monotonic() + timeout
        left = None
        with self._cond:
            self._ended = True
            self._cond.notify_all()
            self._wake_polls()
            while True:
                waiting = sorted(n for n, st in self._sites.items() if st.state == _ALIVE)
                if left is None or len(waiting) < left:  # progress: sites are still leaving
                    left = len(waiting)
                    deadline = time.monotonic() + timeout
                remaining = deadline - time.monotonic()
                if not waiting or remaining <= 0:
                    break
                self._cond.wait(min(remaining, 0.25))
        if waiting:
            log.warning("sites did not say Bye within %g s: %s", timeout, ", ".join(waiting))
        return waiting

    # ------------------------------------------------------------------ gRPC plumbing

    def _site(self, name: str) -> _Site:
        st = self._sites.get(name)
        if st is None:
            st = self._sites[name] = _Site(name, polls=threading.Condition(self._lock))
        return st

    def _wake_polls(self, sites: Iterable[_Site] | None = None) -> None:
        """Wake the long polls of ``sites`` (all sites if None); hold ``_cond``."""
        for st in self._sites.values() if sites is None else sites:
            if st.polls is not None:
                st.polls.notify_all()

    @property
    def refused_calls(self) -> int:
        """Calls refused before their body was read (bad or missing credentials)."""
        return self._gatekeeper.refused

    def _site_of(self, metadata: Any) -> tuple[str | None, str | None]:
        site = token = None
        for key, value in metadata or ():
            if key == contract.SITE_METADATA:
                site = value
            elif key == contract.TOKEN_METADATA:
                token = value
        return site, token

    def _check_credentials(self, metadata: Any) -> str | None:
        """None if the call's metadata authenticates a site of this job, else why not."""
        site, token = self._site_of(metadata)
        if not isinstance(site, str) or not isinstance(token, str):
            return "missing site credentials"
        if not contract.is_valid_site_name(site):
            return "bad credentials"
        expected = self._tokens.get(site)
        given = token.encode("utf-8", "replace")
        matches = hmac.compare_digest(
            given, expected if expected is not None else self._dummy_token
        )
        if expected is None or not matches:
            return f"bad credentials for site {site}"
        return None

    def _authenticate(self, context: grpc.ServicerContext, method: str) -> str:
        # The gatekeeper already refused anything without valid credentials; checked
        # again here so that no handler can ever run unauthenticated.
        metadata = context.invocation_metadata()
        problem = self._check_credentials(metadata)
        if problem is not None:
            _abort(context, grpc.StatusCode.UNAUTHENTICATED, problem)
        site, _ = self._site_of(metadata)
        assert site is not None
        if self._peer_check is not None:
            problem = self._peer_check(context, site)
            if problem is not None:
                self._gatekeeper.note_refusal(method, problem)
                _abort(context, grpc.StatusCode.PERMISSION_DENIED, problem)
        return site

    def _wrap(self, method: str, fn: Callable[..., Any]) -> Any:
        """The gRPC handler of ``method``: authenticate, bound, parse, count the call, reply.

        No (de)serializers are given to gRPC: requests arrive as bytes and are
        parsed here, so a malformed message is refused with INVALID_ARGUMENT and
        one log line, like any other bad request, never a traceback.
        """
        control = method in _CONTROL_METHODS

        def begin(request: bytes | None, context: grpc.ServicerContext) -> str:
            site = self._authenticate(context, method)
            if control and request is not None and len(request) > MAX_CONTROL_BYTES:
                log.warning("site %s sent a %s request of %d bytes; refused", site, method,
                            len(request))
                _abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                       f"{method} requests are limited to {MAX_CONTROL_BYTES} bytes")
            self._call_started(site, method, context)
            return site

        def refuse(site: str, context: grpc.ServicerContext, exc: ProtocolError) -> NoReturn:
            log.warning("site %s sent a bad %s request: %s", site, method, exc)
            _abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        def reply_bytes(reply: bytes | Message) -> bytes:
            return reply if isinstance(reply, bytes) else reply.SerializeToString()

        if method in contract.STREAMING_REQUESTS:

            def handle_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
                site = begin(None, context)
                try:
                    parts = (_parse(method, data) for data in requests)
                    return reply_bytes(fn(site, parts, context))
                except ProtocolError as exc:
                    refuse(site, context, exc)
                finally:
                    self._call_ended(site)

            return grpc.stream_unary_rpc_method_handler(handle_stream)

        if method in contract.STREAMING_REPLIES:

            def handle_replies(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
                site = begin(request, context)
                try:
                    for reply in fn(site, _parse(method, request), context):
                        yield reply_bytes(reply)
                except ProtocolError as exc:
                    refuse(site, context, exc)
                finally:
                    self._call_ended(site)

            return grpc.unary_stream_rpc_method_handler(handle_replies)

        def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
            site = begin(request, context)
            try:
                return reply_bytes(fn(site, _parse(method, request), context))
            except ProtocolError as exc:
                refuse(site, context, exc)
            finally:
                self._call_ended(site)

        return grpc.unary_unary_rpc_method_handler(handle)

    def _call_started(self, site: str, method: str, context: grpc.ServicerContext) -> None:
        back = False
        with self._cond:
            st = self._site(site)
            if method not in _SESSIONLESS and st.state in (_NEW, _LEFT):
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"site {site} must say Hello first",
                )
            if st.state == _LOST and method != "Bye" and not st.process_ended:
                st.state, back = _ALIVE, True
                self._state_changes += 1
                self._cond.notify_all()
            st.active_calls += 1
            st.last_seen = time.monotonic()
        if back:
            log.warning("site %s is back", site)

    def _call_ended(self, site: str) -> None:
        with self._cond:
            st = self._sites[site]
            st.active_calls -= 1
            st.last_seen = time.monotonic()

    # ------------------------------------------------------------------ methods

    def _hello(self, site: str, request: Any, context: grpc.ServicerContext) -> pb.HelloReply:
        if request.version != contract.PROTOCOL_VERSION:
            _abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"site {site} speaks protocol version {request.version}; this server speaks "
                f"{contract.PROTOCOL_VERSION} (run the same flconfig version on both ends)",
            )
        stream = request.stream
        if not 0 < len(stream) <= 64:
            raise ProtocolError("Hello: 'stream' must be 1 to 64 characters")
        with self._cond:
            st = self._site(site)
            st.state = _ALIVE
            self._state_changes += 1
            self._cond.notify_all()
        with st.events_lock:
            if st.stream != stream:
                # A new client instance: its event sequence starts again at 1.
                st.stream, st.last_seq = stream, 0
        log.info("site %s connected from %s", site, context.peer())
        return pb.HelloReply(
            heartbeat_timeout=self.heartbeat_timeout,
            long_poll=self._long_poll,
            chunk_bytes=contract.CHUNK_BYTES,
            max_model_bytes=self.max_model_mb * 1024 * 1024,
        )

    def _get_task(self, site: str, request: Any, context: grpc.ServicerContext) -> bytes:
        wait = request.wait
        if wait != wait:
            raise ProtocolError("GetTask: 'wait' must be a number")
        deadline = time.monotonic() + min(max(wait, 0.0), self._long_poll)
        st = self._sites[site]

        def caller_gone() -> None:  # the call ended (cancelled, connection lost): stop waiting
            with self._cond:
                assert st.polls is not None
                st.polls.notify_all()

        context.add_callback(caller_gone)
        with self._cond:
            while True:
                if self._ended:
                    return _END
                while st.tasks and st.tasks[0].closed:
                    st.tasks.popleft()
                if st.tasks:
                    task = st.tasks.popleft()
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or self._stopping or not context.is_active():
                    return _NO_TASK
                assert st.polls is not None
                st.polls.wait(remaining)
        log.debug("site %s fetched task %s (%s)", site, task.name, task.task_id)
        return task.reply

    def _fetch_model(
        self, site: str, request: Any, context: grpc.ServicerContext
    ) -> Iterator[bytes]:
        """The model frame of an open task sent to ``site``, in chunks, from ``offset``."""
        with self._cond:
            task = self._tasks.get(request.task_id)
            if task is None or task.closed or site not in task.targets:
                _abort(context, grpc.StatusCode.NOT_FOUND,
                       f"task {request.task_id[:64]!r} is not open for site {site}")
        model = memoryview(task.model)
        if request.offset > len(model):
            raise ProtocolError(
                f"FetchModel: offset {request.offset} is beyond the model's {len(model)} bytes"
            )
        for start in range(request.offset, len(model), contract.CHUNK_BYTES):
            if not context.is_active():
                return
            # A serialised Chunk, built without a message object: one copy of the data.
            yield contract.wire_bytes_field(1, model[start : start + contract.CHUNK_BYTES])
        log.debug("site %s fetched the %d-byte model of task %s", site, len(model), task.name)

    def _submit_result(
        self, site: str, request: Any, context: grpc.ServicerContext
    ) -> pb.SubmitResultReply:
        return self._take_result(site, request.task_id, lambda: request.model)

    def _push_result(
        self, site: str, parts: Iterator[Any], context: grpc.ServicerContext
    ) -> pb.SubmitResultReply:
        first = next(parts, None)
        if first is None:
            raise ProtocolError("PushResult: no parts")
        size = first.model_bytes
        if size > self.max_model_mb * 1024 * 1024:
            log.warning("site %s pushed a result of %.1f MiB, above max_model_mb=%d; refused",
                        site, size / 2**20, self.max_model_mb)
            _abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                   f"a result of {size / 2**20:.1f} MiB is above this server's "
                   f"max_model_mb={self.max_model_mb}")

        def read() -> bytes | bytearray:
            frame = bytearray(first.data)
            for part in parts:
                if len(frame) + len(part.data) > size:
                    raise ProtocolError(f"PushResult: more than the {size} bytes announced")
                frame += part.data
            if len(frame) != size:
                raise ProtocolError(f"PushResult: {len(frame)} of the {size} bytes announced")
            return frame

        return self._take_result(site, first.task_id, read)

    def _take_result(
        self, site: str, task_id: str, read: Callable[[], bytes | bytearray]
    ) -> pb.SubmitResultReply:
        """Store the result ``read()`` returns, unless the task is late, unknown or done."""
        with self._cond:
            verdict, task = self._check_result(site, task_id)
        if task is None:  # not read at all: nothing of it would be kept
            return pb.SubmitResultReply(accepted=verdict)
        result = decode_model(read())
        with self._cond:
            verdict, task = self._check_result(site, task_id)
            if task is None:
                return pb.SubmitResultReply(accepted=verdict)
            task.results[site] = result
            task.arrivals.append(site)
            self._cond.notify_all()
        log.debug("site %s returned task %s (%s), rc=%s", site, task.name, task_id, result.rc)
        return pb.SubmitResultReply(accepted=True)

    def _check_result(self, site: str, task_id: str) -> tuple[bool, _Task | None]:
        """(accepted, task to store the result in); no task means do not store it."""
        task = self._tasks.get(task_id)
        if task is None or task.closed:
            log.warning(
                "ignored a result from site %s for late or unknown task %s", site, task_id[:64]
            )
            return False, None
        if site not in task.targets:
            log.warning(
                "ignored a result from site %s for task %s, which was not sent to it",
                site,
                task.name,
            )
            return False, None
        if site in task.results:
            # A retry after a dropped reply: the first copy counts.
            log.debug("site %s resent its result for task %s", site, task.name)
            return True, None
        return True, task

    def _heartbeat(
        self, site: str, request: Any, context: grpc.ServicerContext
    ) -> pb.HeartbeatReply:
        return pb.HeartbeatReply(ended=self._ended)

    def _send_events(
        self, site: str, request: Any, context: grpc.ServicerContext
    ) -> pb.SendEventsReply:
        stream = request.stream
        records = decode_records(request.records)
        for record in records:
            seq = record.get("seq")
            if type(seq) is not int or seq < 1:
                raise ProtocolError("SendEvents: every record needs an int 'seq' >= 1")
        with self._cond:
            st = self._sites[site]
        with st.events_lock:
            if stream != st.stream:
                _abort(
                    context,
                    grpc.StatusCode.FAILED_PRECONDITION,
                    f"stale event stream: site {site} has reconnected as a new client",
                )
            expected = st.last_seq + 1
            fresh: list[dict[str, Any]] = []
            for record in records:
                seq = record["seq"]
                if seq < expected:  # already delivered: a resend after a lost ack
                    continue
                if seq > expected:
                    # A gap: refuse the rest; the ack tells the client where to resume.
                    log.debug("site %s: event gap at seq %d (expected %d)", site, seq, expected)
                    break
                fresh.append(record)
                expected += 1
            refused = None
            if fresh:
                try:
                    if self.on_events is not None:
                        self.on_events(site, fresh)
                except StorageError as exc:
                    # Not written, so not acknowledged: the site keeps the records and
                    # sends them again; nothing is lost while the disk is full.
                    refused = exc.message
                    self._note_storage(refused)
                except Exception:
                    # A receiver's bug: the records cannot be saved by sending them
                    # again, so they count as delivered, and the run fails loudly.
                    log.exception("on_events failed for %d records from site %s", len(fresh), site)
                    st.last_seq = expected - 1
                    self._note_failure(f"saving the records of site {site} failed (see the log)")
                else:
                    st.last_seq = expected - 1
                    self._note_storage(None)
            ack = st.last_seq
        return pb.SendEventsReply(ack=ack, error=refused or "")

    def _note_storage(self, message: str | None) -> None:
        with self._cond:
            if message is not None and self.storage_error is None:
                log.error("records not written: %s; the sites keep them and send them again",
                          message)
            elif message is None and self.storage_error is not None:
                log.warning("records are written again (after: %s)", self.storage_error)
            self.storage_error = message

    def _note_failure(self, message: str) -> None:
        with self._cond:
            if message not in self.failures:
                self.failures.append(message)

    def _bye(self, site: str, request: Any, context: grpc.ServicerContext) -> pb.ByeReply:
        reason = request.reason
        if len(reason) > 1000:
            raise ProtocolError("Bye: 'reason' must be at most 1000 characters")
        with self._cond:
            st = self._site(site)
            if reason:
                st.state = _LEFT
                self._state_changes += 1
                st.lost_reason = f"failed: {reason}"
                st.failure = reason
            elif st.state != _NEW:
                st.state = _LEFT
                self._state_changes += 1
                st.lost_reason = "said Bye"
            self._cond.notify_all()
        if reason:
            log.error("site %s failed: %s", site, reason)
            if self.on_site_failed is not None:
                try:
                    self.on_site_failed(site, reason)
                except Exception:
                    log.exception("on_site_failed(%s) failed", site)
        else:
            log.info("site %s said Bye", site)
        return pb.ByeReply()

    def failed_sites(self) -> dict[str, str]:
        """Sites that stopped because they failed, with the reason each gave."""
        with self._cond:
            return {name: st.failure for name, st in self._sites.items() if st.failure}
