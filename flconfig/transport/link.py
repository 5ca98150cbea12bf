"""The site end of the link, as coroutines: connect, pull tasks, return results, heartbeat,
stream events.

A :class:`SiteLink` is one site's connection to the server on an asyncio event
loop (``grpc.aio``). A worker process hosting a thousand sites runs a thousand
links on one loop: no thread per site, no thread per call; they share one channel,
one long poll for their tasks (PollTasks) and at most :data:`MAX_CALLS_IN_FLIGHT`
calls at a time. Two tasks run beside
the site's own coroutine: one sends heartbeats, so a site busy with a long task
is not taken for lost; one sends event records in batches and resends whatever
the server has not acknowledged, so a dropped connection loses nothing.

Event records come from the site's components, which run on threads (training
never runs on the loop): :meth:`SiteLink.send_events` is the one method meant to
be called from another thread. The records waiting for acknowledgement (the
link's :class:`~flconfig.transport.outbox.Outbox`) are bounded: a site that logs
faster than the server takes records in, or while the server is unreachable,
waits instead of growing without limit. Calls are retried by one
:class:`~flconfig.transport.retry.RetryPolicy`.

:class:`~flconfig.transport.client.CommClient` is the same link for blocking
code: it runs a :class:`SiteLink` on a loop of its own thread.
"""

from __future__ import annotations

import asyncio
import heapq
import itertools
import logging
import secrets
import threading
import time
import weakref
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc
import grpc.aio

from ..common.logs import site_thread_name
from ..errors import JobError
from ..types import FLModel
from . import contract
from . import flconfig_pb2 as pb
from . import flconfig_pb2_grpc as pb_grpc
from .codec import ProtocolError, decode_model, encode_model, join_records
from .contract import wire_bytes_field
from .outbox import Outbox
from .retry import Retryable, RetryPolicy

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class Task:
    """A task the server sent: its name (``train``...), its id, and its data."""

    name: str
    task_id: str
    data: FLModel


class _EndOfRun:
    """Type of :data:`END`."""

    _instance: _EndOfRun | None = None

    def __new__(cls) -> _EndOfRun:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "END"


#: What :meth:`SiteLink.get_task` returns once the server has ended the run.
END: Final = _EndOfRun()


# A model frame above this is encoded and decoded off the loop, so the other sites'
# calls go on meanwhile.
_OFF_LOOP_BYTES = contract.CHUNK_BYTES

#: Longest a site waits for the server to answer its Bye. A Bye not answered leaves the
#: server waiting its end timeout for the site; thousands of sites say Bye together.
BYE_TIMEOUT_S = 20.0


class _Withdrawn(Exception):
    """The task whose model was being fetched closed before the site had it all."""


def _calls_of(channel: grpc.aio.Channel) -> dict[str, Any]:
    """The methods of the contract on ``channel``, by name, ready to call."""
    stub = pb_grpc.CommStub(channel)
    calls = {name: getattr(stub, name) for name in contract.METHODS}
    # A result's parts are serialised by _result_parts itself, one copy fewer per chunk.
    calls["PushResult"] = channel.stream_unary(
        contract.method_path("PushResult"),
        response_deserializer=pb.SubmitResultReply.FromString,
    )
    return calls


class _SharedChannels:
    """One gRPC channel per event loop and server address (and options) for the sites
    of a process, and its methods ready to call.

    Each site still authenticates every call with its own metadata; what the sites
    share is the connection (and the objects that make calls on it: a thousand sites
    do not each hold a stub).
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        # key -> [channel, users, calls]
        self._channels: dict[tuple[Any, ...], list[Any]] = {}

    def acquire(self, key: tuple[Any, ...], make: Callable[[], grpc.aio.Channel]
                ) -> tuple[grpc.aio.Channel, dict[str, Any]]:
        """The channel for ``key`` (made by ``make`` on first use) and its calls."""
        with self._lock:
            entry = self._channels.get(key)
            if entry is None:
                channel = make()
                entry = self._channels[key] = [channel, 0, _calls_of(channel)]
            entry[1] += 1
            return entry[0], entry[2]

    def release(self, channel: grpc.aio.Channel) -> bool:
        """Give ``channel`` back; True if this was its last user (the caller closes it)."""
        with self._lock:
            for key, entry in list(self._channels.items()):
                if entry[0] is channel:
                    entry[1] -= 1
                    if entry[1] <= 0:
                        del self._channels[key]
                        return True
                    return False
        return True


_SHARED_CHANNELS = _SharedChannels()
_NO_CALLS: Mapping[str, Any] = {}

#: Most calls the links sharing a loop's channels have in flight at once, long polls
#: aside; the others wait their turn. Ten thousand sites calling at once (their Hellos,
#: a round's results, their Byes) would each hold a call's buffers in gRPC on both ends
#: at the same time, memory that stays with the processes after the burst; a few dozen
#: calls in flight keep the connection as busy.
MAX_CALLS_IN_FLIGHT = 64

_LOOP_SLOTS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, asyncio.Semaphore] = (
    weakref.WeakKeyDictionary())


def _call_slots(loop: asyncio.AbstractEventLoop) -> asyncio.Semaphore:
    """The call slots of the links sharing ``loop``'s channels."""
    slots = _LOOP_SLOTS.get(loop)
    if slots is None:
        slots = _LOOP_SLOTS[loop] = asyncio.Semaphore(MAX_CALLS_IN_FLIGHT)
    return slots

_HEARTBEAT = pb.HeartbeatRequest()


class _Heartbeats:
    """The heartbeats of the links on one event loop, sent by one task for them all: each
    link's every ``heartbeat_interval`` seconds, unless a call that waits for a task is
    open (the server sees that call). A worker hosting a thousand sites then keeps one
    timer, not a task and a timer per site; links due within a quarter of their interval
    beat together, so the task wakes a few times per interval, not once per link."""

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._due: list[tuple[float, int, SiteLink]] = []  # a heap: (when, order, link)
        self._links: set[SiteLink] = set()
        self._order = itertools.count()
        self._task: asyncio.Task[None] | None = None
        self._changed = asyncio.Event()
        self._beats: set[asyncio.Task[None]] = set()  # beats under way (the loop keeps weak refs)

    def add(self, link: SiteLink) -> None:
        """Beat for ``link`` from now on (on the loop)."""
        self._links.add(link)
        when = time.monotonic() + link.heartbeat_interval
        heapq.heappush(self._due, (when, next(self._order), link))
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="flconfig-heartbeats")
        elif self._due[0][2] is link:
            self._changed.set()  # due before what the task sleeps for

    def remove(self, link: SiteLink) -> None:
        """Beat no more for ``link`` (its entry leaves the heap when it comes up)."""
        self._links.discard(link)

    async def _run(self) -> None:
        due = self._due
        while self._links:
            now = time.monotonic()
            while due and due[0][0] - now <= due[0][2].heartbeat_interval / 4:
                _, _, link = heapq.heappop(due)
                if link not in self._links:
                    continue
                heapq.heappush(due, (now + link.heartbeat_interval, next(self._order), link))
                group = link._group
                if not link._polling and (group is None
                                          or not group.covers(now, link.heartbeat_interval)):
                    beat = self._loop.create_task(link._beat(),
                                                  name=site_thread_name(link.site, "heartbeat"))
                    self._beats.add(beat)
                    beat.add_done_callback(self._beats.discard)
            if not due:
                break
            self._changed.clear()
            try:
                await asyncio.wait_for(self._changed.wait(), max(0.0, due[0][0] - time.monotonic()))
            except asyncio.TimeoutError:
                pass
        due.clear()


_LOOP_HEARTBEATS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, _Heartbeats] = (
    weakref.WeakKeyDictionary())


def _heartbeats(loop: asyncio.AbstractEventLoop) -> _Heartbeats:
    """The heartbeats of ``loop``'s links."""
    beats = _LOOP_HEARTBEATS.get(loop)
    if beats is None:
        beats = _LOOP_HEARTBEATS[loop] = _Heartbeats(loop)
    return beats


_NO_TASK_REPLY = pb.TaskReply(kind=pb.TaskReply.NONE)
_END_REPLY = pb.TaskReply(kind=pb.TaskReply.END)


class _WorkerPoll:
    """The one long poll (PollTasks) of the sites of a worker that share a channel: the
    tasks of them all come through one open call, not a GetTask per site.

    Each member joined the group in its own Hello (with its own token); the poll is
    authenticated as one member that is still there. What it brings is kept for each
    member until its :meth:`SiteLink.get_task` takes it. While the poll is open, the
    server counts every member alive: none of them sends heartbeats meanwhile.
    """

    def __init__(self, loop: asyncio.AbstractEventLoop, key: tuple[Any, ...]) -> None:
        self._loop = loop
        self._key = key
        #: The group's id: a secret of this process, as its sites' tokens are.
        self.group_id = secrets.token_urlsafe(24)
        self._members: dict[str, SiteLink] = {}
        # What the poll brought a member and its get_task has not taken yet.
        self._replies: dict[str, deque[pb.TaskReply]] = {}
        self._waiting: dict[str, asyncio.Future[None]] = {}  # members waiting in get_task
        self._task: asyncio.Task[None] | None = None
        self._ended = False
        self._error: JobError | None = None
        self._open = False  # a PollTasks call is in flight
        self._last_open = 0.0  # when the last one ended (monotonic)

    def covers(self, now: float, interval: float) -> bool:
        """Whether the poll is open, or was within half of ``interval`` seconds of ``now``
        (its members need no heartbeat)."""
        return self._open or now - self._last_open < interval / 2

    def add(self, link: SiteLink) -> None:
        """``link`` (connected, its Hello joined the group) takes its tasks from the poll."""
        self._members[link.site] = link
        if self._task is None or self._task.done():
            self._task = self._loop.create_task(self._run(), name="flconfig-poll")

    def remove(self, link: SiteLink) -> None:
        """``link`` leaves (it closes); the poll stops with its last member."""
        if self._members.get(link.site) is not link:
            return
        del self._members[link.site]
        self._replies.pop(link.site, None)
        self._wake(link.site)
        if not self._members:
            self._forget()
            if self._task is not None and not self._task.done():
                self._task.cancel()

    def _forget(self) -> None:
        """No more links join this group (a link that connects later makes a new one)."""
        polls = _LOOP_POLLS.get(self._loop)
        if polls is not None and polls.get(self._key) is self:
            del polls[self._key]

    def _wake(self, site: str) -> None:
        waiter = self._waiting.pop(site, None)
        if waiter is not None and not waiter.done():
            waiter.set_result(None)

    def _take(self, site: str) -> pb.TaskReply | None:
        replies = self._replies.get(site)
        if replies:
            reply = replies.popleft()
            if not replies:
                del self._replies[site]
            return reply
        if self._error is not None:
            raise self._error
        return _END_REPLY if self._ended else None

    async def next_reply(self, link: SiteLink, wait: float | None) -> pb.TaskReply:
        """``link``'s next TaskReply from the poll, waiting up to ``wait`` seconds (None:
        until there is one); NONE after the wait. Raises the :class:`JobError` that
        stopped the poll (the server unreachable for ``retry_timeout``, a refusal)."""
        if self._members.get(link.site) is not link:
            raise JobError("GetTask: client is closed", link.site)
        reply = self._take(link.site)
        if reply is None and (wait is None or wait > 0):
            waiter = self._waiting[link.site] = self._loop.create_future()
            try:
                if wait is None:
                    await waiter
                else:
                    await asyncio.wait_for(waiter, wait)
            except asyncio.TimeoutError:
                pass
            finally:
                if self._waiting.get(link.site) is waiter:
                    del self._waiting[link.site]
            reply = self._take(link.site)
        return _NO_TASK_REPLY if reply is None else reply

    async def _run(self) -> None:
        """Poll for the members' tasks until the run ends or the last member leaves."""
        request = pb.PollTasksRequest(group=self.group_id, wait=contract.LONG_POLL_S)
        backoff = None
        while self._members and not self._ended:
            link = next(iter(self._members.values()))
            self._open = True
            try:
                reply = await link._invoke("PollTasks", request, contract.LONG_POLL_S + 60.0,
                                           long_poll=True)
            except Retryable as exc:
                backoff = backoff or link.retry.backoff()
                if backoff.exhausted():
                    self._fail(JobError(
                        f"lost the connection to the server at {link.address} "
                        f"for {link.retry.deadline:g} s ({exc})", link.site))
                    return
                log.debug("%s: retrying the worker's poll after %s", link.site, exc)
                self._open = False
                await asyncio.sleep(backoff.next())
                continue
            except JobError as exc:
                if link._closed or self._members.get(link.site) is not link:
                    continue  # its site left meanwhile: another member polls
                self._fail(exc)
                return
            finally:
                self._open = False
            # Answered: the server saw the call (a failed one says nothing of the sites).
            self._last_open = time.monotonic()
            backoff = None
            for polled in reply.tasks:
                for site in polled.sites:
                    if site in self._members:
                        self._replies.setdefault(site, deque()).append(polled.task)
                        self._wake(site)
                    else:
                        log.debug("the worker's poll brought a task for %s, which left", site)
            if reply.ended:
                self._ended = True
                self._forget()
                for site in list(self._waiting):
                    self._wake(site)

    def _fail(self, exc: JobError) -> None:
        """The poll stops: every member's get_task raises ``exc``."""
        log.warning("the worker's poll stopped: %s", exc)
        self._error = exc
        self._forget()
        for site in list(self._waiting):
            self._wake(site)


_LOOP_POLLS: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[tuple[Any, ...], _WorkerPoll]] = (
    weakref.WeakKeyDictionary())


def _worker_poll(loop: asyncio.AbstractEventLoop, key: tuple[Any, ...]) -> _WorkerPoll:
    """The poll of ``loop``'s links to one server (``key``: as their shared channel's)."""
    polls = _LOOP_POLLS.get(loop)
    if polls is None:
        polls = _LOOP_POLLS[loop] = {}
    poll = polls.get(key)
    if poll is None:
        poll = polls[key] = _WorkerPoll(loop, key)
    return poll


def _payload_bytes(model: FLModel) -> int:
    """About how many bytes ``model``'s parameters take (0 if they do not say)."""
    params = getattr(model, "params", None)
    if not isinstance(params, Mapping):
        return 0
    return sum(int(getattr(v, "nbytes", 0) or 0) for v in params.values())


class SiteLink:
    """A site's connection to the server, authenticated as ``site`` with ``token``, on
    the running event loop.

    Await :meth:`connect` first and :meth:`close` last.

    Event records travel in batches: the sender sends one as soon as
    ``batch_max`` records wait, otherwise at most every ``batch_linger``
    seconds (a record after a quiet spell goes at once). Fewer, larger calls
    keep the sender's share of the process's CPU (and of Python's GIL, which the
    training threads need) small.

    Event records wait in an outbox until the server acknowledges them. The
    outbox holds at most ``max_outbox_records`` records and
    ``max_outbox_bytes`` bytes (encoded): :meth:`send_events` on a full
    outbox waits until acknowledgements make room, so a slow or unreachable
    server slows the site's logging down instead of filling its memory, and
    no record is dropped. See :meth:`send_events` for when the wait ends in
    an error.

    With ``share_channel`` the links of one loop (a worker hosting many sites)
    use one gRPC channel to the server; each still sends its own credentials on
    every call. They also share one long poll for their tasks (PollTasks), which
    each joins in its Hello, instead of a GetTask each (a server that does not
    offer it is polled with GetTask). While a GetTask, or the shared poll, is open
    no heartbeat is sent (the server sees the call).

    Calls that fail in a way worth retrying (``retry``: which, and the backoff
    between tries) are retried for ``retry_timeout`` seconds.
    """

    def __init__(
        self,
        address: str,
        site: str,
        token: str,
        heartbeat_interval: float = 5.0,
        *,
        max_message_mb: int = contract.DEFAULT_MAX_MESSAGE_MB,
        max_model_mb: int = contract.DEFAULT_MAX_MODEL_MB,
        retry_timeout: float = 60.0,
        batch_max: int = 2000,
        batch_linger: float = 0.25,
        max_outbox_records: int = 200_000,
        max_outbox_bytes: int = 256 * 1024 * 1024,
        channel_credentials: grpc.ChannelCredentials | None = None,
        share_channel: bool = False,
        retry: RetryPolicy | None = None,
    ) -> None:
        self.address = address
        self.site = contract.check_site_name(site)
        contract.check_token(token, site)
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        self.heartbeat_interval = float(heartbeat_interval)
        #: How calls are retried while the server is unreachable; its deadline is ``retry_timeout``.
        self.retry = (retry or RetryPolicy()).within(retry_timeout)
        #: The event records waiting for acknowledgement, and their stream.
        self.outbox = Outbox(
            self.site, address, self.retry, batch_max=batch_max, batch_linger=batch_linger,
            max_records=max_outbox_records, max_bytes=max_outbox_bytes,
        )  # fmt: skip
        self._metadata = ((contract.SITE_METADATA, site), (contract.TOKEN_METADATA, token))
        contract.check_limits(max_message_mb, max_model_mb)
        self._max_message_mb = max_message_mb
        #: Largest model frame this site sends or accepts; the server's own limit,
        #: learnt at connect, may be lower.
        self.max_model_bytes = max_model_mb * 1024 * 1024
        self._chunk_bytes = contract.CHUNK_BYTES
        self._channel_credentials = channel_credentials
        self._share_channel = share_channel

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._channel: grpc.aio.Channel | None = None
        self._calls: Mapping[str, Any] = _NO_CALLS
        # With share_channel: the loop's call slots (see _call_slots).
        self._slots: asyncio.Semaphore | None = None
        self._connected = False
        self._closed = False
        self._stop: asyncio.Event | None = None  # set by close(): the background tasks end
        self._tasks: list[asyncio.Task[None]] = []
        self._polling = 0  # GetTask calls open; no heartbeat is needed meanwhile
        # The next task's reply, when the server answered it with the last result.
        self._next_reply: pb.TaskReply | None = None
        # The worker's poll this link takes its tasks from (share_channel), once joined.
        self._group: _WorkerPoll | None = None

    @property
    def retry_timeout(self) -> float:
        """How long calls keep retrying while the server is unreachable."""
        return self.retry.deadline

    @property
    def max_outbox_records(self) -> int:
        """Most event records waiting for acknowledgement; send_events waits beyond it."""
        return self.outbox.max_records

    @property
    def max_outbox_bytes(self) -> int:
        """Most bytes of encoded event records waiting for acknowledgement."""
        return self.outbox.max_bytes

    # ------------------------------------------------------------------ connection

    def _bind(self) -> None:
        """Tie this link to the running loop (once)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop, self._loop_thread = loop, threading.get_ident()
            self._stop = asyncio.Event()
            self.outbox.bind(loop, self._loop_thread)
            if self._share_channel:
                self._slots = _call_slots(loop)
        elif loop is not self._loop:
            raise RuntimeError(f"{self.site}: a SiteLink is used on the event loop it connected on")

    def _make_channel(self) -> grpc.aio.Channel:
        options = contract.client_options(self._max_message_mb)
        if self._channel_credentials is None:
            return grpc.aio.insecure_channel(self.address, options=options)
        return grpc.aio.secure_channel(self.address, self._channel_credentials, options=options)

    def _shared_key(self) -> tuple[Any, ...]:
        """What the links sharing this link's channel (and poll) have in common."""
        return (id(self._loop), self.address, self._max_message_mb, id(self._channel_credentials))

    async def _open_channel(self) -> None:
        if self._share_channel:
            channel, calls = _SHARED_CHANNELS.acquire(self._shared_key(), self._make_channel)
        else:
            channel = self._make_channel()
            calls = _calls_of(channel)
        old, self._channel, self._calls = self._channel, channel, calls
        if old is not None:
            await self._drop_channel(old)

    async def _drop_channel(self, channel: grpc.aio.Channel) -> None:
        if not self._share_channel or _SHARED_CHANNELS.release(channel):
            await channel.close()

    async def reconnect(self) -> None:
        """Drop the connection and open a new one; calls in flight are retried.

        A link sharing its loop's channel (``share_channel``) only takes the
        shared channel again: the other sites' calls go on.
        """
        self._bind()
        await self._open_channel()

    def _call(self, method: str) -> Any:
        call = self._calls.get(method)
        if call is None:
            raise JobError("not connected; call connect() first", self.site)
        return call

    def _closed_under_us(self, channel: grpc.aio.Channel | None, method: str) -> Retryable | None:
        """The :class:`Retryable` for a call that gRPC cancelled because :meth:`reconnect` (or
        :meth:`close`) closed its channel; None when it was this task that was cancelled."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if channel is not self._channel and (cancelling is None or cancelling() == 0):
            return Retryable(f"{method}: the channel was closed")
        return None

    def _error(self, method: str, exc: grpc.RpcError) -> Exception:
        """The :class:`Retryable` or :class:`JobError` that says what a failed call means."""
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if self.retry.is_retryable(code):
            return Retryable(f"{method}: {code.name}: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            err = JobError(f"server refused {self.site}: bad credentials")
            err.site = self.site
            return err
        if code == grpc.StatusCode.NOT_FOUND and method == "FetchModel":
            return _Withdrawn(details)
        return JobError(f"{method} failed: {code.name}: {details}", self.site)

    async def _invoke(
        self, method: str, request: Any, timeout: float | None, wait_for_ready: bool = False,
        *, long_poll: bool = False,
    ) -> Any:
        """One call; its reply message, or :class:`Retryable` or a :class:`JobError` that says
        why not. Unless it is a ``long_poll``, a link sharing its loop's channel makes it
        in one of the loop's call slots (:data:`MAX_CALLS_IN_FLIGHT`)."""
        slots = self._slots
        if slots is None or long_poll:
            return await self._invoke_now(method, request, timeout, wait_for_ready)
        async with slots:
            return await self._invoke_now(method, request, timeout, wait_for_ready)

    async def _invoke_now(
        self, method: str, request: Any, timeout: float | None, wait_for_ready: bool
    ) -> Any:
        call, channel = self._call(method), self._channel
        try:
            return await call(
                request, timeout=timeout, metadata=self._metadata, wait_for_ready=wait_for_ready
            )
        except grpc.RpcError as exc:
            raise self._error(method, exc) from None
        except grpc.aio.UsageError as exc:  # the channel was closed under us by reconnect()
            raise Retryable(f"{method}: {exc}") from None
        except asyncio.CancelledError:  # the same, while the call was in flight
            retry = self._closed_under_us(channel, method)
            if retry is None:
                raise
            raise retry from None

    async def _with_retry(self, method: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``await attempt()``, retried with backoff while the server is unreachable."""
        backoff = self.retry.backoff()
        while True:
            try:
                return await attempt()
            except Retryable as exc:
                if self._closed and method != "Bye":
                    raise JobError(f"{method}: client is closed", self.site) from None
                if backoff.exhausted():
                    raise JobError(
                        f"lost the connection to the server at {self.address} "
                        f"for {self.retry.deadline:g} s ({exc})",
                        self.site,
                    ) from None
                log.debug("%s: retrying after %s", self.site, exc)
                await asyncio.sleep(backoff.next())

    async def _call_with_retry(self, method: str, request: Any, timeout: float | None,
                               long_poll: bool = False) -> Any:
        """:meth:`_invoke`, retried with backoff while the server is unreachable."""
        return await self._with_retry(
            method, lambda: self._invoke(method, request, timeout, long_poll=long_poll))

    async def connect(self, timeout: float = 30) -> None:
        """Say Hello, retrying until the server is up; then start the background tasks.

        Raises :class:`JobError` on bad credentials or when ``timeout`` passes.
        """
        if self._connected:
            return
        if self._closed:
            raise JobError("client is closed", self.site)
        self._bind()
        await self._open_channel()
        request = pb.HelloRequest(stream=self.outbox.stream_id, version=contract.PROTOCOL_VERSION)
        group = None
        if self._share_channel:
            assert self._loop is not None
            group = _worker_poll(self._loop, self._shared_key())
            request.poll_group = group.group_id
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobError(
                    f"could not reach the server at {self.address} within {timeout:g} s", self.site
                )
            try:
                hello = await self._invoke("Hello", request, min(remaining, 5.0),
                                           wait_for_ready=True)
                break
            except Retryable:
                await asyncio.sleep(min(self.retry.first_delay, max(0.0, deadline - time.monotonic())))
        server_timeout = hello.heartbeat_timeout
        if hello.max_model_bytes:
            self.max_model_bytes = min(self.max_model_bytes, hello.max_model_bytes)
        if hello.chunk_bytes:
            self._chunk_bytes = min(self._chunk_bytes, hello.chunk_bytes)
        if server_timeout and self.heartbeat_interval >= server_timeout:
            log.warning(
                "%s: heartbeat_interval %g s is not below the server's heartbeat timeout %g s",
                self.site, self.heartbeat_interval, server_timeout,
            )  # fmt: skip
        self._connected = True
        loop = asyncio.get_running_loop()
        if group is not None and hello.poll_group:
            self._group = group
            group.add(self)
        self._tasks = [
            loop.create_task(self.outbox.run(self._send_batch, self._stopped_within),
                             name=site_thread_name(self.site, "events")),
        ]
        _heartbeats(loop).add(self)
        self.outbox.open()
        log.info("%s connected to %s; heartbeat every %g s, event stream %s", self.site,
                 self.address, self.heartbeat_interval, self.outbox.stream_id[:8])

    async def close(self, timeout: float = 10.0, reason: str | None = None) -> int:
        """Flush events (up to ``timeout`` s), say Bye and disconnect.

        ``reason`` tells the server why this site stops early (it failed); the
        server then fails the run naming the site and the reason.
        Returns how many event records were not delivered (0 on success): those
        not acknowledged, plus those a :meth:`send_events` call gave up queueing.
        """
        if self._closed:
            return self.outbox.undelivered()
        if self._connected:
            await self.flush(timeout)
        self._closed = True
        if self._group is not None:
            self._group.remove(self)
        if self._loop is not None:
            _heartbeats(self._loop).remove(self)
        if self._stop is not None:
            self._stop.set()
        self.outbox.stop()
        # A send_events call waiting for room gives up now: let it count what it left.
        deadline = time.monotonic() + 2.0
        while self.outbox.blocked and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        unacked = self.outbox.undelivered()
        if unacked:
            log.warning("%s: closing with %d event records not delivered", self.site, unacked)
        if self._connected:
            try:
                bye = pb.ByeRequest(reason="" if reason is None else str(reason)[:1000])
                # Ten thousand sites leave at once at a run's end: give the server time.
                await self._invoke("Bye", bye, timeout=BYE_TIMEOUT_S)
            except (Retryable, JobError) as exc:
                log.warning("%s: Bye failed: %s", self.site, exc)
        channel, self._channel, self._calls = self._channel, None, _NO_CALLS
        if channel is not None:
            await self._drop_channel(channel)
        return unacked

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the link is stopping."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _beat(self) -> None:
        """One Heartbeat (sent by the loop's :class:`_Heartbeats`)."""
        try:
            await self._invoke("Heartbeat", _HEARTBEAT, timeout=max(self.heartbeat_interval, 1.0))
        except Retryable as exc:
            log.debug("%s: heartbeat failed: %s", self.site, exc)
        except JobError as exc:
            log.warning("%s: heartbeat refused: %s", self.site, exc)

    # ------------------------------------------------------------------ tasks

    async def get_task(self, timeout: float | None = None) -> Task | _EndOfRun | None:
        """The next task, :data:`END` once the server ended the run, or ``None`` after ``timeout`` s.

        ``timeout=None`` waits until there is a task or the run ends. A task's
        model larger than one message is fetched in chunks, resuming where a
        dropped connection broke it off. Raises :class:`JobError` if the server
        stays unreachable for ``retry_timeout``. A task the server answered with
        the previous result (:meth:`submit_result` with ``wait_next``) is returned
        without a call, as is one the worker's shared poll brought (``share_channel``).
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            reply, self._next_reply = self._next_reply, None
            if reply is None and self._group is not None:
                reply = await self._group.next_reply(
                    self, None if deadline is None else max(0.0, deadline - time.monotonic()))
            elif reply is None:
                wait = contract.LONG_POLL_S
                if deadline is not None:
                    wait = min(wait, max(0.0, deadline - time.monotonic()))
                self._polling += 1
                try:
                    reply = await self._call_with_retry(
                        "GetTask", pb.GetTaskRequest(wait=wait), wait + 60.0, long_poll=True)
                finally:
                    self._polling -= 1
            if reply.kind == pb.TaskReply.TASK:
                task = await self._task_of(reply)
                if task is not None:
                    self.outbox.task_running = True  # its records may ride in its result
                    return task
            elif reply.kind == pb.TaskReply.END:
                return END
            elif reply.kind != pb.TaskReply.NONE:
                raise JobError(f"GetTask: unknown reply kind {reply.kind!r}", self.site)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    async def _task_of(self, reply: pb.TaskReply) -> Task | None:
        """The task a TaskReply of kind TASK sends, its model fetched and decoded; None
        when the task was withdrawn while its model arrived."""
        name, task_id = reply.name, reply.task_id
        if not name or not task_id:
            raise JobError("GetTask: the server sent a task without name or id", self.site)
        frame = reply.model or await self._fetch_model(name, task_id, reply.model_bytes)
        if frame is None:
            return None
        try:
            if len(frame) > _OFF_LOOP_BYTES:
                data = await asyncio.to_thread(decode_model, frame)
            else:
                data = decode_model(frame)
        except ProtocolError as exc:
            raise JobError(f"task {name}: the server sent bad data: {exc}", self.site) from None
        return Task(name, task_id, data)

    async def _fetch_model(self, name: str, task_id: str, size: int) -> bytearray | None:
        """The ``size``-byte model frame of task ``task_id``; None if the task closed meanwhile."""
        if size > self.max_model_bytes:
            raise JobError(
                f"task {name}: its model is {size / 2**20:.1f} MiB, above this site's "
                f"limit of {self.max_model_bytes / 2**20:.0f} MiB (max_model_mb)",
                self.site,
            )
        frame = bytearray()

        async def fetch_rest() -> None:
            request = pb.FetchModelRequest(task_id=task_id, offset=len(frame))
            channel = self._channel
            try:
                async for chunk in self._call("FetchModel")(request, metadata=self._metadata):
                    if len(frame) + len(chunk.data) > size:
                        raise JobError(
                            f"task {name}: the server sent more than the {size} bytes it "
                            "announced", self.site,
                        )  # fmt: skip
                    frame.extend(chunk.data)
            except grpc.RpcError as exc:
                raise self._error("FetchModel", exc) from None
            except grpc.aio.UsageError as exc:  # the channel was closed under us by reconnect()
                raise Retryable(f"FetchModel: {exc}") from None
            except asyncio.CancelledError:  # the same, while the call was in flight
                retry = self._closed_under_us(channel, "FetchModel")
                if retry is None:
                    raise
                raise retry from None
            if len(frame) < size:
                raise Retryable(f"FetchModel: {len(frame)} of {size} bytes")  # resume from there

        try:
            await self._with_retry("FetchModel", fetch_rest)
        except _Withdrawn as exc:
            log.info("%s: task %s was withdrawn while its model arrived (%s)", self.site, name, exc)
            return None
        return frame

    async def submit_result(self, task: Task, result: FLModel, wait_next: float = 0.0) -> bool:
        """Send the result of ``task``; True if the server accepted it (False: late or unknown).

        A result larger than one message is streamed in chunks. One that fits in
        a message carries the event records waiting to be sent (the server writes
        them first, and its reply acknowledges them), and with ``wait_next`` > 0
        the server answers once it has the site's next task (or after up to
        ``wait_next`` seconds), which :meth:`get_task` then returns without a call
        of its own: one call a round instead of three. Not for a result above
        :data:`~.contract.WAIT_WITH_RESULT_BYTES`, which is answered at once.
        """
        self.outbox.task_running = False
        if _payload_bytes(result) > _OFF_LOOP_BYTES:
            frame = await asyncio.to_thread(encode_model, result)
        else:
            frame = encode_model(result)
        if len(frame) > self.max_model_bytes:
            raise JobError(
                f"the result of task {task.name} is {len(frame) / 2**20:.1f} MiB, above "
                f"the limit of {self.max_model_bytes / 2**20:.0f} MiB (max_model_mb)",
                self.site,
            )
        name, task_id = task.name, task.task_id
        # Neither is kept while the server holds the call for the next task (a caller that
        # hands them over without keeping them, as a worker's sites do, frees them now).
        del task, result
        if len(frame) <= self._chunk_bytes:
            request = pb.SubmitResultRequest(task_id=task_id, model=frame)
            carried = self.outbox.carry(self._chunk_bytes - len(frame))
            if carried:
                request.stream = self.outbox.stream_id
                request.records = join_records(p for _, p in carried)
            # A large result is not held by the server while it waits (the server holds
            # the request until the call ends): the next task is then asked for apart.
            small = len(frame) + len(request.records) <= contract.WAIT_WITH_RESULT_BYTES
            wait = min(max(0.0, wait_next), contract.LONG_POLL_S) if small else 0.0
            if self._group is not None:
                wait = 0.0  # the worker's poll brings the next task
            request.wait = wait
            if wait:
                self._polling += 1  # the call is open meanwhile: no heartbeat needed
            reply = None
            try:
                reply = await self._call_with_retry("SubmitResult", request, wait + 300.0,
                                                    long_poll=bool(wait))
            finally:
                if wait:
                    self._polling -= 1
                # Without a reply, the stream sends the records again.
                self.outbox.settle(carried, *((reply.ack, reply.error) if reply else ()))
            if wait and reply.HasField("next"):
                self._next_reply = reply.next
        else:
            reply = await self._with_retry(
                "PushResult",
                lambda: self._invoke("PushResult", self._result_parts(task_id, frame), None),
            )
        if not reply.accepted:
            log.warning("%s: the server did not accept the result of task %s", self.site, name)
        return bool(reply.accepted)

    def _result_parts(self, task_id: str, frame: bytes) -> Iterator[bytes]:
        """The serialised ResultParts of ``frame``: the first names the task and the size."""
        view, step = memoryview(frame), self._chunk_bytes
        first = pb.ResultPart(task_id=task_id, model_bytes=len(frame))
        yield first.SerializeToString() + wire_bytes_field(3, view[:step])
        for start in range(step, len(frame), step):
            yield wire_bytes_field(3, view[start : start + step])

    # ------------------------------------------------------------------ events

    def send_events(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue event records for the server, from any thread; returns at once while the
        outbox has room.

        Each record is copied and given the next ``seq`` (any ``seq`` it had is
        replaced). Raises ``TypeError`` naming the key of a value JSON cannot
        carry, or ``ValueError`` for a record above 4 MiB; then none of
        ``records`` is queued.

        When the outbox is full (``max_outbox_records`` or ``max_outbox_bytes``)
        the call waits, queueing records as acknowledgements make room; it
        never drops one. It waits as long as the server keeps acknowledging.
        It raises :class:`JobError` instead when the server has answered no
        SendEvents for ``retry_timeout`` seconds (unreachable), when the server
        refused the stream, or when the link is closed or not connected, or
        when the call would have to wait on the link's own event loop (which
        must go on to make room); the message says how many of ``records``
        were not queued and how many queued records are not acknowledged
        (:meth:`close` counts both).
        """
        if self._closed:
            raise JobError("send_events after close()", self.site)
        self.outbox.put(records)

    @property
    def delivery_problem(self) -> str | None:
        """Why records are not being delivered (the server's refusal, a stopped stream), or None."""
        return self.outbox.delivery_problem

    async def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued record is acknowledged; return how many are not (0 on success).

        Gives up once the server has acknowledged nothing for ``timeout`` seconds: a busy
        server that keeps acknowledging (many sites flushing at once) is waited for.
        """
        return await self.outbox.flush(timeout)

    @property
    def unacked(self) -> int:
        """Event records queued or sent but not yet acknowledged."""
        return self.outbox.unacked

    async def _send_batch(self, request: pb.SendEventsRequest) -> Any:
        """One SendEvents call, for the outbox's stream."""
        return await self._invoke("SendEvents", request, timeout=30.0)
