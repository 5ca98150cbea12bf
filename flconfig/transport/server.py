"""The server end of the link: :class:`CommServer`, its lifecycle and the API the runtime
calls.

One :class:`CommServer` serves every site of a job. Sites pull work (GetTask is
a long poll, so a task reaches an idle site within milliseconds; a worker hosting
many sites keeps one PollTasks open for them all); the server never opens
connections. A site's identity is the name its credentials
authenticate on each call, never a field of the payload.

The server is put together from parts that each do one thing: the gatekeeper
(:mod:`.gatekeeper`, with the sites' credentials of :mod:`.tokens`), the RPC
handlers (:mod:`.handlers`, made gRPC handlers by :mod:`.rpc`), the task
dispatch (:mod:`.dispatch`), over the sites and tasks they share
(:mod:`.state`). This module starts and stops them, watches heartbeats, and
ends the run.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent import futures

import grpc

from ..errors import JobError
from ..types import FLModel, Signal
from . import contract
from .dispatch import Dispatcher, ResultCallback
from .gatekeeper import MAX_REFUSALS_IN_FLIGHT, Gatekeeper
from .handlers import EventsCallback, Limits, SiteHandlers
from .rpc import MAX_CONTROL_BYTES, AioGatekeeper, LoopThread, Plumbing
from .state import ALIVE, LEFT, LOST, ServerState
from .tokens import PeerCheck, SiteTokens, refusal_kind

__all__ = ["MAX_CONTROL_BYTES", "MAX_REFUSALS_IN_FLIGHT", "CommServer", "EventsCallback",
           "ResultCallback"]

log = logging.getLogger(__name__)

#: How often wait_for_sites counts the connected sites.
_SITE_COUNT_PERIOD_S = 0.02
#: Threads for the handlers that may block (writing records, decoding a result): a few,
#: however many sites there are; the calls beyond them wait on the loop, holding none.
BLOCKING_THREADS = 8


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
        peer_check: PeerCheck | None = None,
    ) -> None:
        # With mutual TLS, ``peer_check(context, site)`` says why the caller's certificate
        # does not prove it is ``site`` (None: it does); checked on every call.
        self._tokens = SiteTokens(credentials, peer_check)
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
        self.on_site_lost = on_site_lost
        self._server_credentials = server_credentials
        # Hold GetTask no longer than a fraction of the timeout, so a long poll
        # can never look like silence.
        long_poll = min(contract.LONG_POLL_S, self.heartbeat_timeout / 2)

        self._state = ServerState(self._tokens.names)
        self._blocking = futures.ThreadPoolExecutor(
            max_workers=BLOCKING_THREADS, thread_name_prefix="flconfig-comm"
        )
        self._handlers = SiteHandlers(
            self._state, Limits(self.heartbeat_timeout, long_poll, max_model_mb),
            on_events=on_events, on_site_failed=on_site_failed, blocking=self._blocking,
        )  # fmt: skip
        self._dispatcher = Dispatcher(self._state, max_model_mb)
        self._gatekeeper: Gatekeeper[str] = Gatekeeper(
            self._tokens.identify,
            methods=[contract.method_path(name) for name in contract.METHODS],
            screen=self._tokens.screen, kind_of=refusal_kind, logger=log,
        )  # fmt: skip
        self._server: grpc.aio.Server | None = None
        self._loop: LoopThread | None = None
        self._plumbing: Plumbing | None = None
        self._port: int | None = None
        self._monitor_stop = threading.Event()
        self._monitor: threading.Thread | None = None

    @property
    def on_events(self) -> EventsCallback | None:
        """Receives the sites' event records: ``on_events(site, records)``."""
        return self._handlers.on_events

    @on_events.setter
    def on_events(self, callback: EventsCallback | None) -> None:
        self._handlers.on_events = callback

    @property
    def on_site_failed(self) -> Callable[[str, str], None] | None:
        """Told when a site stopped because it failed: ``on_site_failed(site, reason)``."""
        return self._handlers.on_site_failed

    @on_site_failed.setter
    def on_site_failed(self, callback: Callable[[str, str], None] | None) -> None:
        self._handlers.on_site_failed = callback

    @property
    def storage_error(self) -> str | None:
        """Set while the latest records could not be written (a full disk), else None."""
        return self._state.storage_error

    @property
    def failures(self) -> list[str]:
        """Failures of the server's receivers that fail the run."""
        return self._state.failures

    @property
    def open_polls(self) -> int:
        """The long polls the server holds open now: a site's GetTask (or SubmitResult
        waiting for its next task) each, a worker's PollTasks one for all its sites."""
        return self._state.long_polls

    @property
    def refused_calls(self) -> int:
        """Calls refused before their body was read (bad or missing credentials)."""
        return self._gatekeeper.refused

    # ------------------------------------------------------------------ lifecycle

    def start(self) -> CommServer:
        """Bind the port and start serving (idempotent)."""
        if self._server is not None:
            return self
        loop = LoopThread("flconfig-comm-loop")
        self._state.loop = loop.loop
        try:
            server, port = loop.call(self._serve())
        except BaseException:
            self._state.loop = None
            loop.close()
            raise
        self._server, self._port, self._loop = server, port, loop
        self._monitor = threading.Thread(
            target=self._watch_heartbeats, name="flconfig-comm-monitor", daemon=True
        )
        self._monitor.start()
        log.info("communication server listening on %s:%d", self.host, port)
        return self

    async def _serve(self) -> tuple[grpc.aio.Server, int]:
        """Build, bind and start the gRPC server, on the loop."""
        plumbing = self._plumbing = Plumbing(self._gatekeeper.admit, self._state,
                                             self._blocking, SiteHandlers.BLOCKING)
        generic = grpc.method_handlers_generic_handler(
            contract.SERVICE,
            {name: plumbing.handler(name, fn) for name, fn in self._handlers.by_method().items()},
        )
        server = grpc.aio.server(
            handlers=[generic],
            interceptors=[AioGatekeeper(self._gatekeeper)],
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
        await server.start()
        return server, port

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
        with self._state.cond:
            self._state.stopping = True
            self._state.cond.notify_all()
            self._state.wake_polls()
        self._monitor_stop.set()
        if self._server is not None and self._loop is not None:
            try:
                self._loop.call(self._server.stop(grace), timeout=grace + 5.0)
            except Exception:  # a stop that did not finish in time: the loop goes anyway
                log.warning("the communication server did not stop within %g s", grace + 5.0)
            self._loop.close()
            self._server = self._loop = None
            self._state.loop = None
            if self._plumbing is not None:
                log.info("calls served, by method: %s", ", ".join(
                    f"{method} {n}" for method, n in self._plumbing.calls.items() if n))
        self._blocking.shutdown(wait=False)
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
        return self._state.alive()

    def activity(self) -> dict[str, tuple[str, str, str]]:
        """What each site is doing now, for a live view (see :meth:`.state.ServerState.activity`)."""
        return self._state.activity()

    def failed_sites(self) -> dict[str, str]:
        """Sites that stopped because they failed, with the reason each gave."""
        with self._state.cond:
            return {name: st.failure for name, st in self._state.sites.items() if st.failure}

    def wait_for_sites(self, n: int, timeout: float) -> list[str]:
        """Wait until at least ``n`` sites said Hello, or ``timeout`` seconds pass without
        a new one, or a site reports that it failed; return the alive sites.

        The list may hold fewer than ``n`` sites when the timeout passed (logged
        with the names of those missing); the caller decides whether that is enough.
        """
        deadline = time.monotonic() + timeout
        seen = 0
        period = self._count_period()
        while True:
            alive: list[str] = []
            failed = False
            gone = 0
            with self._state.cond:
                for name, st in self._state.sites.items():  # one pass: 10,000 sites are many
                    if st.state == ALIVE:
                        alive.append(name)
                    elif st.process_ended:
                        # Sites whose process has ended will not come: no use waiting for them.
                        gone += 1
                    if st.failure:
                        failed = True
            if len(alive) > seen:  # progress: the wait follows it, so many sites get time
                seen = len(alive)
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if len(alive) >= n or len(alive) + gone >= n or remaining <= 0 or failed:
                break
            # Counted a few times a second, outside the lock: thousands of Hellos
            # must not each make the server walk every site while they wait for it.
            time.sleep(min(period, remaining))
        alive.sort()
        if len(alive) < n and not failed:
            missing = sorted(self._state.known - set(alive))
            log.warning(
                "only %d of %d sites connected (none more for %g s); not connected: %s",
                len(alive), n, timeout, ", ".join(missing),
            )  # fmt: skip
        return alive

    def _count_period(self) -> float:
        """How often a wait counts the sites: every 20 ms, less often with many sites (a
        count of 10,000 takes milliseconds)."""
        return max(_SITE_COUNT_PERIOD_S, len(self._state.known) / 100_000)

    def _watch_heartbeats(self) -> None:
        period = min(0.25, self.heartbeat_timeout / 4)
        while not self._monitor_stop.wait(period):
            now = time.monotonic()
            lost: list[str] = []
            with self._state.cond:
                for st in self._state.sites.values():
                    if (
                        st.state == ALIVE
                        and st.active_calls == 0
                        and now - st.last_seen > self.heartbeat_timeout
                        # A site of a worker whose one poll is open (or was, lately) is there.
                        and (st.group is None
                             or not st.group.seen_within(now, self.heartbeat_timeout))
                    ):
                        st.state = LOST
                        self._state.state_changes += 1
                        st.lost_reason = f"no call for {self.heartbeat_timeout:g} s"
                        lost.append(st.name)
                        if st.group is not None:
                            st.group.revive = True
                if lost:
                    self._state.cond.notify_all()
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
        with self._state.cond:
            for name in dict.fromkeys(sites):
                if name not in self._state.known:
                    continue
                st = self._state.site(name)
                if st.state == LEFT or st.process_ended:
                    continue
                st.state = LOST
                st.lost_reason = reason
                st.process_ended = reason
                marked.append(name)
            if marked:
                self._state.state_changes += 1
                self._state.cond.notify_all()
                self._state.wake_polls(self._state.sites[name] for name in marked)
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
        """Send one task to every target once and gather their results (FLARE's semantics;
        see :meth:`.dispatch.Dispatcher.broadcast_and_wait`)."""
        return self._dispatcher.broadcast_and_wait(
            task_name, data, targets, min_responses, wait_time_after_min_received, timeout,
            abort, on_result,
        )  # fmt: skip

    def send_and_wait(
        self, task_name: str, data: FLModel, site: str, timeout: float = 0
    ) -> FLModel:
        """Send one task to one site and return its result (see
        :meth:`.dispatch.Dispatcher.send_and_wait`)."""
        return self._dispatcher.send_and_wait(task_name, data, site, timeout)

    def end_run(self, timeout: float = 30) -> list[str]:
        """End the run: every GetTask answers "end"; wait for alive sites to say Bye.

        Sites flush their events before Bye, so once this returns every event
        they sent has been delivered. Returns the sites that did not say Bye
        (empty on success): those still there once ``timeout`` seconds passed
        without another site leaving.
        """
        deadline = time.monotonic() + timeout
        left = None
        period = self._count_period()
        with self._state.cond:
            self._state.ended = True
            self._state.cond.notify_all()
            self._state.wake_polls()
        while True:
            # Counted a few times a second, not at each Bye: ten thousand Byes must not
            # each make the server walk every site (quadratic, under the lock).
            with self._state.cond:
                waiting = [n for n, st in self._state.sites.items() if st.state == ALIVE]
            if left is None or len(waiting) < left:  # progress: sites are still leaving
                left = len(waiting)
                deadline = time.monotonic() + timeout
            remaining = deadline - time.monotonic()
            if not waiting or remaining <= 0:
                break
            time.sleep(min(remaining, period))
        waiting.sort()
        if waiting:
            log.warning("sites did not say Bye within %g s: %s", timeout, ", ".join(waiting))
        return waiting
