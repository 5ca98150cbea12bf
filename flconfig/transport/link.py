"""The site end of the link, as coroutines: connect, pull tasks, return results, heartbeat,
stream events.

A :class:`SiteLink` is one site's connection to the server on an asyncio event
loop (``grpc.aio``). A worker process hosting a thousand sites runs a thousand
links on one loop: no thread per site, no thread per call. Two tasks run beside
the site's own coroutine: one sends heartbeats, so a site busy with a long task
is not taken for lost; one sends event records in batches and resends whatever
the server has not acknowledged, so a dropped connection loses nothing.

Event records come from the site's components, which run on threads (training
never runs on the loop): :meth:`SiteLink.send_events` is the one method meant to
be called from another thread. The records waiting for acknowledgement (the
outbox) are bounded: a site that logs faster than the server takes records in,
or while the server is unreachable, waits instead of growing without limit.

:class:`~flconfig.transport.client.CommClient` is the same link for blocking
code: it runs a :class:`SiteLink` on a loop of its own thread.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
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
from .codec import ProtocolError, decode_model, encode_model, encode_record, join_records
from .contract import MAX_RECORD_BYTES, wire_bytes_field

log = logging.getLogger(__name__)

# Worth another try: the connection dropped, the server is (re)starting, or we
# closed the channel ourselves to reconnect.
_RETRYABLE = frozenset(
    {grpc.StatusCode.UNAVAILABLE, grpc.StatusCode.CANCELLED, grpc.StatusCode.DEADLINE_EXCEEDED}
)


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


# Keep a batch of records well below any sensible max_message_mb; one record is
# at most this big (the sender refuses bigger ones at the call).
_BATCH_MAX_BYTES = MAX_RECORD_BYTES
# How often a send_events call waiting for room looks at the clock (acks wake it sooner).
_ROOM_POLL_S = 0.5
# A model frame above this is encoded and decoded off the loop, so the other sites'
# calls go on meanwhile.
_OFF_LOOP_BYTES = contract.CHUNK_BYTES


class _Retry(Exception):
    """A call failed in a way worth retrying."""


class _Withdrawn(Exception):
    """The task whose model was being fetched closed before the site had it all."""


class _SharedChannels:
    """One gRPC channel per event loop and server address (and options) for the sites
    of a process.

    Each site still authenticates every call with its own metadata; what the sites
    share is the connection.
    """

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._channels: dict[tuple[Any, ...], list[Any]] = {}  # key -> [channel, users]

    def acquire(self, key: tuple[Any, ...], make: Callable[[], grpc.aio.Channel]) -> grpc.aio.Channel:
        with self._lock:
            entry = self._channels.get(key)
            if entry is None:
                entry = self._channels[key] = [make(), 0]
            entry[1] += 1
            return entry[0]

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
    every call. While a GetTask is open no heartbeat is sent (the server sees
    the call).
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
    ) -> None:
        self.address = address
        self.site = contract.check_site_name(site)
        contract.check_token(token, site)
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        if max_outbox_records < 1:
            raise ValueError("max_outbox_records must be >= 1")
        if max_outbox_bytes < _BATCH_MAX_BYTES:
            # Any single record (at most _BATCH_MAX_BYTES) must fit in an empty outbox.
            raise ValueError(f"max_outbox_bytes must be >= {_BATCH_MAX_BYTES}")
        self.heartbeat_interval = float(heartbeat_interval)
        #: How long calls keep retrying while the server is unreachable.
        self.retry_timeout = float(retry_timeout)
        self._metadata = ((contract.SITE_METADATA, site), (contract.TOKEN_METADATA, token))
        contract.check_limits(max_message_mb, max_model_mb)
        self._max_message_mb = max_message_mb
        #: Largest model frame this site sends or accepts; the server's own limit,
        #: learnt at connect, may be lower.
        self.max_model_bytes = max_model_mb * 1024 * 1024
        self._chunk_bytes = contract.CHUNK_BYTES
        self._channel_credentials = channel_credentials
        self._share_channel = share_channel
        self._batch_max = max(1, batch_max)
        #: Most event records waiting for acknowledgement; send_events waits beyond it.
        self.max_outbox_records = int(max_outbox_records)
        #: Most bytes of encoded event records waiting for acknowledgement.
        self.max_outbox_bytes = int(max_outbox_bytes)
        # The sender stops lingering for more records at this many: a full outbox gets no more.
        self._batch_trigger = min(self._batch_max, self.max_outbox_records)
        self._batch_linger = batch_linger
        self._last_send = 0.0  # when the sender last took a batch
        self._stream = uuid.uuid4().hex  # names this link's event sequence on the server

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._channel: grpc.aio.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._connected = False
        self._closed = False
        self._stopping = False  # read by producer threads; _stop wakes the loop's waiters
        self._stop: asyncio.Event | None = None
        self._tasks: list[asyncio.Task[None]] = []
        self._polling = 0  # GetTask calls open; no heartbeat is needed meanwhile

        # Event outbox: (seq, encoded record), oldest first; a record leaves it only
        # when the server acknowledged its seq. _events guards the outbox and what
        # describes it, for the producer threads; _produce serialises send_events
        # calls, so records enter the outbox in seq order even while one call waits.
        # The loop's side waits on asyncio events the producers set thread-safely.
        self._events = threading.Condition()
        self._produce = threading.Lock()
        self._outbox: deque[tuple[int, bytes]] = deque()
        self._outbox_bytes = 0
        self._next_seq = 1
        self._flushing = 0
        self._blocked = 0  # send_events calls waiting for room
        self._last_reply = time.monotonic()  # when the server last answered SendEvents
        self._not_queued = 0  # records send_events gave up on (reported by close)
        self._sender_error: str | None = None
        # Why the server answers that it cannot save records (a full disk), while it does.
        self._server_refusal: str | None = None
        self._records_ready: asyncio.Event | None = None  # the sender has something to do
        self._acked: asyncio.Event | None = None  # an ack (or the sender's end): flush looks

    # ------------------------------------------------------------------ connection

    def _bind(self) -> None:
        """Tie this link to the running loop (once)."""
        loop = asyncio.get_running_loop()
        if self._loop is None:
            self._loop, self._loop_thread = loop, threading.get_ident()
            self._stop, self._records_ready, self._acked = (
                asyncio.Event(), asyncio.Event(), asyncio.Event())
        elif loop is not self._loop:
            raise RuntimeError(f"{self.site}: a SiteLink is used on the event loop it connected on")

    def _make_channel(self) -> grpc.aio.Channel:
        options = contract.client_options(self._max_message_mb)
        if self._channel_credentials is None:
            return grpc.aio.insecure_channel(self.address, options=options)
        return grpc.aio.secure_channel(self.address, self._channel_credentials, options=options)

    async def _open_channel(self) -> None:
        if self._share_channel:
            key = (id(self._loop), self.address, self._max_message_mb,
                   id(self._channel_credentials))
            channel = _SHARED_CHANNELS.acquire(key, self._make_channel)
        else:
            channel = self._make_channel()
        stub = pb_grpc.CommStub(channel)
        calls = {name: getattr(stub, name) for name in contract.METHODS}
        # A result's parts are serialised by _result_parts itself, one copy fewer per chunk.
        calls["PushResult"] = channel.stream_unary(
            contract.method_path("PushResult"),
            response_deserializer=pb.SubmitResultReply.FromString,
        )
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

    def _closed_under_us(self, channel: grpc.aio.Channel | None, method: str) -> _Retry | None:
        """The :class:`_Retry` for a call that gRPC cancelled because :meth:`reconnect` (or
        :meth:`close`) closed its channel; None when it was this task that was cancelled."""
        task = asyncio.current_task()
        cancelling = getattr(task, "cancelling", None)  # Python 3.11+
        if channel is not self._channel and (cancelling is None or cancelling() == 0):
            return _Retry(f"{method}: the channel was closed")
        return None

    def _error(self, method: str, exc: grpc.RpcError) -> Exception:
        """The :class:`_Retry` or :class:`JobError` that says what a failed call means."""
        code = exc.code() if hasattr(exc, "code") else grpc.StatusCode.UNKNOWN
        details = (exc.details() if hasattr(exc, "details") else "") or ""
        if code in _RETRYABLE:
            return _Retry(f"{method}: {code.name}: {details}")
        if code == grpc.StatusCode.UNAUTHENTICATED:
            err = JobError(f"server refused {self.site}: bad credentials")
            err.site = self.site
            return err
        if code == grpc.StatusCode.NOT_FOUND and method == "FetchModel":
            return _Withdrawn(details)
        return JobError(f"{method} failed: {code.name}: {details}", self.site)

    async def _invoke(
        self, method: str, request: Any, timeout: float | None, wait_for_ready: bool = False
    ) -> Any:
        """One call; its reply message, or :class:`_Retry` or a :class:`JobError` that says why not."""
        call, channel = self._call(method), self._channel
        try:
            return await call(
                request, timeout=timeout, metadata=self._metadata, wait_for_ready=wait_for_ready
            )
        except grpc.RpcError as exc:
            raise self._error(method, exc) from None
        except grpc.aio.UsageError as exc:  # the channel was closed under us by reconnect()
            raise _Retry(f"{method}: {exc}") from None
        except asyncio.CancelledError:  # the same, while the call was in flight
            retry = self._closed_under_us(channel, method)
            if retry is None:
                raise
            raise retry from None

    async def _with_retry(self, method: str, attempt: Callable[[], Awaitable[Any]]) -> Any:
        """``await attempt()``, retried with backoff while the server is unreachable."""
        limit = self.retry_timeout
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                return await attempt()
            except _Retry as exc:
                if self._closed and method != "Bye":
                    raise JobError(f"{method}: client is closed", self.site) from None
                if time.monotonic() - start + delay > limit:
                    raise JobError(
                        f"lost the connection to the server at {self.address} "
                        f"for {limit:g} s ({exc})",
                        self.site,
                    ) from None
                log.debug("%s: retrying after %s", self.site, exc)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 1.0)

    async def _call_with_retry(self, method: str, request: Any, timeout: float | None) -> Any:
        """:meth:`_invoke`, retried with backoff while the server is unreachable."""
        return await self._with_retry(method, lambda: self._invoke(method, request, timeout))

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
        request = pb.HelloRequest(stream=self._stream, version=contract.PROTOCOL_VERSION)
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
            except _Retry:
                await asyncio.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
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
        self._tasks = [
            loop.create_task(self._heartbeat_loop(), name=site_thread_name(self.site, "heartbeat")),
            loop.create_task(self._sender_loop(), name=site_thread_name(self.site, "events")),
        ]
        with self._events:
            if self._outbox:  # queued before connect
                self._wake(self._records_ready)
        log.info("%s connected to %s", self.site, self.address)

    async def close(self, timeout: float = 10.0, reason: str | None = None) -> int:
        """Flush events (up to ``timeout`` s), say Bye and disconnect.

        ``reason`` tells the server why this site stops early (it failed); the
        server then fails the run naming the site and the reason.
        Returns how many event records were not delivered (0 on success): those
        not acknowledged, plus those a :meth:`send_events` call gave up queueing.
        """
        if self._closed:
            return self._undelivered()
        if self._connected:
            await self.flush(timeout)
        self._closed = True
        self._stopping = True
        if self._stop is not None:
            self._stop.set()
            self._wake(self._records_ready)
        with self._events:
            self._events.notify_all()
        # A send_events call waiting for room gives up now: let it count what it left.
        deadline = time.monotonic() + 2.0
        while self._blocked and time.monotonic() < deadline:
            await asyncio.sleep(0.02)
        if self._tasks:
            await asyncio.wait(self._tasks, timeout=2.0)
        unacked = self._undelivered()
        if unacked:
            log.warning("%s: closing with %d event records not delivered", self.site, unacked)
        if self._connected:
            try:
                bye = pb.ByeRequest(reason="" if reason is None else str(reason)[:1000])
                await self._invoke("Bye", bye, timeout=5.0)
            except (_Retry, JobError) as exc:
                log.warning("%s: Bye failed: %s", self.site, exc)
        channel, self._channel, self._calls = self._channel, None, {}
        if channel is not None:
            await self._drop_channel(channel)
        return unacked

    def _undelivered(self) -> int:
        with self._events:
            return len(self._outbox) + self._not_queued

    async def _stopped_within(self, seconds: float) -> bool:
        """Wait up to ``seconds``; True if the link is stopping."""
        assert self._stop is not None
        try:
            await asyncio.wait_for(self._stop.wait(), seconds)
        except asyncio.TimeoutError:
            return False
        return True

    async def _heartbeat_loop(self) -> None:
        request = pb.HeartbeatRequest()
        log.info("%s: heartbeat every %g s", self.site, self.heartbeat_interval)
        while not await self._stopped_within(self.heartbeat_interval):
            if self._polling:
                continue  # a GetTask is open: the server sees the site busy, not silent
            try:
                await self._invoke("Heartbeat", request, timeout=max(self.heartbeat_interval, 1.0))
            except _Retry as exc:
                log.debug("%s: heartbeat failed: %s", self.site, exc)
            except JobError as exc:
                log.warning("%s: heartbeat refused: %s", self.site, exc)

    # ------------------------------------------------------------------ tasks

    async def get_task(self, timeout: float | None = None) -> Task | _EndOfRun | None:
        """The next task, :data:`END` once the server ended the run, or ``None`` after ``timeout`` s.

        ``timeout=None`` waits until there is a task or the run ends. A task's
        model larger than one message is fetched in chunks, resuming where a
        dropped connection broke it off. Raises :class:`JobError` if the server
        stays unreachable for ``retry_timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = contract.LONG_POLL_S
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            self._polling += 1
            try:
                reply = await self._call_with_retry(
                    "GetTask", pb.GetTaskRequest(wait=wait), timeout=wait + 60.0
                )
            finally:
                self._polling -= 1
            if reply.kind == pb.TaskReply.TASK:
                name, task_id = reply.name, reply.task_id
                if not name or not task_id:
                    raise JobError("GetTask: the server sent a task without name or id", self.site)
                frame = reply.model or await self._fetch_model(name, task_id, reply.model_bytes)
                if frame is not None:
                    try:
                        if len(frame) > _OFF_LOOP_BYTES:
                            data = await asyncio.to_thread(decode_model, frame)
                        else:
                            data = decode_model(frame)
                    except ProtocolError as exc:
                        raise JobError(
                            f"task {name}: the server sent bad data: {exc}", self.site
                        ) from None
                    return Task(name, task_id, data)
            elif reply.kind == pb.TaskReply.END:
                return END
            elif reply.kind != pb.TaskReply.NONE:
                raise JobError(f"GetTask: unknown reply kind {reply.kind!r}", self.site)
            if deadline is not None and time.monotonic() >= deadline:
                return None

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
                raise _Retry(f"FetchModel: {exc}") from None
            except asyncio.CancelledError:  # the same, while the call was in flight
                retry = self._closed_under_us(channel, "FetchModel")
                if retry is None:
                    raise
                raise retry from None
            if len(frame) < size:
                raise _Retry(f"FetchModel: {len(frame)} of {size} bytes")  # resume from there

        try:
            await self._with_retry("FetchModel", fetch_rest)
        except _Withdrawn as exc:
            log.info("%s: task %s was withdrawn while its model arrived (%s)", self.site, name, exc)
            return None
        return frame

    async def submit_result(self, task: Task, result: FLModel) -> bool:
        """Send the result of ``task``; True if the server accepted it (False: late or unknown).

        A result larger than one message is streamed in chunks.
        """
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
        if len(frame) <= self._chunk_bytes:
            request = pb.SubmitResultRequest(task_id=task.task_id, model=frame)
            reply = await self._call_with_retry("SubmitResult", request, timeout=300.0)
        else:
            reply = await self._with_retry(
                "PushResult",
                lambda: self._invoke("PushResult", self._result_parts(task, frame), None),
            )
        if not reply.accepted:
            log.warning("%s: the server did not accept the result of task %s", self.site, task.name)
        return bool(reply.accepted)

    def _result_parts(self, task: Task, frame: bytes) -> Iterator[bytes]:
        """The serialised ResultParts of ``frame``: the first names the task and the size."""
        view, step = memoryview(frame), self._chunk_bytes
        first = pb.ResultPart(task_id=task.task_id, model_bytes=len(frame))
        yield first.SerializeToString() + wire_bytes_field(3, view[:step])
        for start in range(step, len(frame), step):
            yield wire_bytes_field(3, view[start : start + step])

    # ------------------------------------------------------------------ events

    def _wake(self, event: asyncio.Event | None) -> None:
        """Set ``event`` for the loop's waiters, from any thread."""
        loop = self._loop
        if event is None or loop is None:
            return
        if threading.get_ident() == self._loop_thread:
            event.set()
        else:
            try:
                loop.call_soon_threadsafe(event.set)
            except RuntimeError:  # the loop is closed: nobody waits any more
                pass

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
        called = time.monotonic()
        with self._produce:
            seq = self._next_seq
            encoded = [
                (seq + i, encode_record({**r, "seq": seq + i})) for i, r in enumerate(records)
            ]
            if not encoded:
                return
            nbytes = 0
            too_big = 0
            for _, payload in encoded:
                size = len(payload)
                nbytes += size
                if size > too_big:
                    too_big = size
            refused: list[int] = []
            if too_big > _BATCH_MAX_BYTES:
                # Refuse only the oversized records; the others are queued as usual.
                refused = [i for i, (_, p) in enumerate(encoded) if len(p) > _BATCH_MAX_BYTES]
                skip = set(refused)
                kept = [r for i, r in enumerate(records) if i not in skip]
                encoded = [(seq + i, encode_record({**r, "seq": seq + i})) for i, r in enumerate(kept)]
                nbytes = sum(len(p) for _, p in encoded)
            self._next_seq = seq + len(encoded)
            self._enqueue(encoded, nbytes, called)
            if refused:
                raise ValueError(
                    f"{len(refused)} event record(s) of up to {too_big:,} bytes are too large "
                    f"and were not sent (records must stay below {_BATCH_MAX_BYTES:,} bytes); "
                    f"the other {len(encoded)} of this call were queued"
                )

    def _enqueue(self, encoded: list[tuple[int, bytes]], nbytes: int, called: float) -> None:
        """Put encoded records into the outbox, waiting for room (holding ``_produce``)."""
        if encoded:
            outbox = self._outbox
            with self._events:
                if (
                    len(outbox) + len(encoded) <= self.max_outbox_records
                    and self._outbox_bytes + nbytes <= self.max_outbox_bytes
                ):
                    was_empty = not outbox
                    outbox.extend(encoded)
                    self._outbox_bytes += nbytes
                    if was_empty or len(outbox) >= self._batch_trigger:
                        self._wake(self._records_ready)
                    return
                self._queue_when_room(encoded, called)

    @property
    def delivery_problem(self) -> str | None:
        """Why records are not being delivered (the server's refusal, a stopped stream), or None."""
        return self._server_refusal or self._sender_error

    def _queue_when_room(self, encoded: list[tuple[int, bytes]], called: float) -> None:
        """Queue ``encoded`` as room appears (called holding both locks); see :meth:`send_events`."""
        outbox = self._outbox
        max_records, max_bytes = self.max_outbox_records, self.max_outbox_bytes
        done = 0
        self._blocked += 1
        self._wake(self._records_ready)  # the sender stops lingering for a blocked producer
        try:
            while True:
                added = 0
                while done < len(encoded) and len(outbox) < max_records:
                    size = len(encoded[done][1])
                    if self._outbox_bytes + size > max_bytes:
                        break
                    outbox.append(encoded[done])
                    self._outbox_bytes += size
                    done += 1
                    added += 1
                if added:
                    self._wake(self._records_ready)
                if done == len(encoded):
                    return
                reason = self._why_no_room(called)
                if reason is not None:
                    # The next call numbers on from the first record not queued: no gap.
                    self._next_seq = encoded[done][0]
                    self._not_queued += len(encoded) - done
                    raise JobError(
                        f"{reason}; {len(encoded) - done} of {len(encoded)} event records "
                        f"of this call were not queued, and {len(outbox)} queued records are "
                        "not acknowledged",
                        self.site,
                    )
                self._events.wait(_ROOM_POLL_S)
        finally:
            self._blocked -= 1

    def _why_no_room(self, called: float) -> str | None:
        """Why a full outbox will not drain; None while waiting is worth it."""
        if self._closed or self._stopping:
            return "the event outbox is full and the client was closed"
        if self._sender_error is not None:
            return f"the event outbox is full and the event stream stopped: {self._sender_error}"
        if not self._connected:
            return (
                f"the event outbox is full ({self.max_outbox_records} records / "
                f"{self.max_outbox_bytes} bytes) and the client is not connected: "
                "call connect() first"
            )
        if threading.get_ident() == self._loop_thread:
            return ("the event outbox is full and send_events was called on the link's own "
                    "event loop, which must go on to make room")
        silent = time.monotonic() - max(called, self._last_reply)
        if silent >= self.retry_timeout:
            why = f": it says {self._server_refusal}" if self._server_refusal else ""
            return (
                f"the event outbox is full and the server at {self.address} acknowledged "
                f"no events for {silent:.1f} s (retry_timeout={self.retry_timeout:g}){why}"
            )
        return None

    async def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued record is acknowledged; return how many are not (0 on success).

        Gives up once the server has acknowledged nothing for ``timeout`` seconds: a busy
        server that keeps acknowledging (many sites flushing at once) is waited for.
        """
        start = time.monotonic()
        self._flushing += 1
        try:
            if self._acked is None:  # never connected
                return self.unacked
            self._wake(self._records_ready)
            while True:
                with self._events:
                    left = len(self._outbox)
                    if not left or self._sender_error is not None or not self._connected:
                        return left
                    remaining = max(start, self._last_reply) + timeout - time.monotonic()
                    if remaining <= 0 or self._stopping:
                        return left
                    self._acked.clear()
                try:
                    await asyncio.wait_for(self._acked.wait(), min(remaining, 1.0))
                except asyncio.TimeoutError:
                    pass
        finally:
            self._flushing -= 1

    @property
    def unacked(self) -> int:
        """Event records queued or sent but not yet acknowledged."""
        with self._events:
            return len(self._outbox)

    async def _next_batch(self) -> list[tuple[int, bytes]] | None:
        """Wait for records, then until ``batch_linger`` s after the last send, unless a
        batch is full (or someone waits on the outbox). None: stop."""
        ready = self._records_ready
        assert ready is not None
        while True:
            with self._events:
                if self._outbox:
                    break
                if self._stopping:
                    return None
                ready.clear()
            await ready.wait()  # woken by the first record queued and by close()
        linger_until = self._last_send + self._batch_linger
        while True:
            with self._events:
                if (len(self._outbox) >= self._batch_trigger or self._flushing
                        or self._blocked or self._stopping):
                    break
                ready.clear()
            remaining = linger_until - time.monotonic()
            if remaining <= 0:
                break
            try:
                await asyncio.wait_for(ready.wait(), remaining)
            except asyncio.TimeoutError:
                break
        batch: list[tuple[int, bytes]] = []
        size = 0
        with self._events:
            for item in itertools.islice(self._outbox, self._batch_max):
                size += len(item[1])
                if batch and size > _BATCH_MAX_BYTES:
                    break
                batch.append(item)
        self._last_send = time.monotonic()
        return batch

    async def _sender_loop(self) -> None:
        try:
            await self._send_until_stopped()
        finally:
            self._wake(self._acked)  # a flush waiting on us looks again

    async def _send_until_stopped(self) -> None:
        delay = 0.05
        log.info("%s: event stream %s open", self.site, self._stream[:8])
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            request = pb.SendEventsRequest(
                stream=self._stream, records=join_records(p for _, p in batch)
            )
            try:
                reply = await self._invoke("SendEvents", request, timeout=30.0)
            except _Retry as exc:
                log.debug("%s: resending %d event records after %s", self.site, len(batch), exc)
                if await self._stopped_within(delay):
                    return
                delay = min(delay * 2, 1.0)
                continue
            except JobError as exc:
                self._stop_stream(f"the server refused event records: {exc}")
                return
            ack, refused = reply.ack, reply.error
            if refused and ack < batch[0][0]:
                # The server could not write them (a full disk): keep them, try again.
                if self._server_refusal is None:
                    log.warning("%s: the server could not save event records (%s); "
                                "keeping them and sending again", self.site, str(refused)[:300])
                self._server_refusal = refused[:300]
                if await self._stopped_within(delay):
                    return
                delay = min(delay * 2, 1.0)
                continue
            delay = 0.05
            if self._server_refusal is not None:
                log.warning("%s: the server saves event records again", self.site)
                self._server_refusal = None
            if ack < batch[0][0] - 1:
                self._stop_stream(
                    f"the server acknowledged seq {ack}, below what it confirmed before "
                    "(did it restart?)"
                )
                return
            with self._events:
                self._last_reply = time.monotonic()
                outbox = self._outbox
                freed = 0
                while outbox and outbox[0][0] <= ack:
                    freed += len(outbox.popleft()[1])
                self._outbox_bytes -= freed
                self._events.notify_all()
            self._wake(self._acked)

    def _stop_stream(self, reason: str) -> None:
        """Give up sending events; flush() then reports what is left."""
        log.error("%s: event stream stopped: %s", self.site, reason)
        with self._events:
            self._sender_error = reason
            self._events.notify_all()
