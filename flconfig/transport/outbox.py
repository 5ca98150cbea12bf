"""A site's event outbox: the analytics records waiting until the server acknowledges them,
and the stream that sends them in batches.

An :class:`Outbox` belongs to one :class:`~flconfig.transport.link.SiteLink`.
Producer threads (the site's components) put records in with :meth:`Outbox.put`;
the link's event loop runs :meth:`Outbox.run`, which sends them in batches
and resends whatever the server has not acknowledged. A record leaves the
outbox only once the server acknowledged its ``seq`` (it acknowledges only
records it wrote), so none is acknowledged but not written, and none is lost
to a dropped connection. The outbox is bounded: a producer faster than the
server, or one whose server is unreachable, waits for room (back-pressure)
instead of growing without limit, and gives up with an error only when waiting
can no longer help.
"""

from __future__ import annotations

import asyncio
import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from ..errors import JobError
from . import flconfig_pb2 as pb
from .codec import encode_record, join_records
from .contract import MAX_RECORD_BYTES
from .retry import Retryable, RetryPolicy

log = logging.getLogger(__name__)

#: Largest batch of records, in encoded bytes: well below any sensible max_message_mb.
#: One record is at most this big (:meth:`Outbox.put` refuses bigger ones).
BATCH_MAX_BYTES = MAX_RECORD_BYTES
# How often a put waiting for room looks at the clock (acks wake it sooner).
_ROOM_POLL_S = 0.5

#: Sends one batch: the server's SendEventsReply; raises :class:`~.retry.Retryable`
#: when worth another try, :class:`JobError` when refused.
SendBatch = Callable[[pb.SendEventsRequest], Awaitable[Any]]
#: Waits up to the seconds given; True if the link is stopping meanwhile.
Pause = Callable[[float], Awaitable[bool]]


class Outbox:
    """The event records of ``site`` waiting for acknowledgement by the server at
    ``address``: at most ``max_records`` records and ``max_bytes`` bytes (encoded),
    sent in batches of at most ``batch_max`` records, each batch ``batch_linger``
    seconds after the one before unless a batch is full (or someone waits). A
    producer waiting for room gives up once the server has answered nothing for
    the ``retry`` policy's deadline; the stream retries by its schedule until the
    link stops.
    """

    def __init__(
        self,
        site: str,
        address: str,
        retry: RetryPolicy,
        *,
        batch_max: int = 2000,
        batch_linger: float = 0.25,
        max_records: int = 200_000,
        max_bytes: int = 256 * 1024 * 1024,
    ) -> None:
        if max_records < 1:
            raise ValueError("max_outbox_records must be >= 1")
        if max_bytes < BATCH_MAX_BYTES:
            # Any single record (at most BATCH_MAX_BYTES) must fit in an empty outbox.
            raise ValueError(f"max_outbox_bytes must be >= {BATCH_MAX_BYTES}")
        self.site = site
        self.address = address
        self.retry = retry
        self._batch_max = max(1, batch_max)
        #: Most event records waiting for acknowledgement; put waits beyond it.
        self.max_records = int(max_records)
        #: Most bytes of encoded event records waiting for acknowledgement.
        self.max_bytes = int(max_bytes)
        # The sender stops lingering for more records at this many: a full outbox gets no more.
        self._batch_trigger = min(self._batch_max, self.max_records)
        self._batch_linger = batch_linger
        self._last_send = 0.0  # when the sender last took a batch
        #: Names this outbox's event sequence on the server (sent at Hello and with each batch).
        self.stream_id = uuid.uuid4().hex

        self._loop: asyncio.AbstractEventLoop | None = None
        self._loop_thread: int | None = None
        self._connected = False  # the link is connected: the stream runs
        self._stopping = False  # read by producer threads

        # (seq, encoded record), oldest first; a record leaves only when the server
        # acknowledged its seq. _events guards the queue and what describes it, for
        # the producer threads; _produce serialises puts, so records enter in seq
        # order even while one put waits. The loop's side waits on asyncio events
        # the producers set thread-safely.
        self._events = threading.Condition()
        self._produce = threading.Lock()
        self._queue: deque[tuple[int, bytes]] = deque()
        self._queued_bytes = 0
        self._next_seq = 1
        self._flushing = 0
        self._blocked = 0  # puts waiting for room
        self._last_reply = time.monotonic()  # when the server last answered SendEvents
        self._not_queued = 0  # records put gave up on (reported by undelivered)
        self._sender_error: str | None = None
        # Why the server answers that it cannot save records (a full disk), while it does.
        self._server_refusal: str | None = None
        #: Set while the site runs a task: its first records linger, to go with its result.
        self.task_running = False
        self._carrying = False  # a result carries the oldest records: the stream waits
        self._records_ready: asyncio.Event | None = None  # the sender has something to do
        self._acked: asyncio.Event | None = None  # an ack (or the sender's end): flush looks

    # ------------------------------------------------------------------ the link's side

    def bind(self, loop: asyncio.AbstractEventLoop, thread: int) -> None:
        """Tie the outbox to the link's loop, running on ``thread`` (once)."""
        self._loop, self._loop_thread = loop, thread
        self._records_ready, self._acked = asyncio.Event(), asyncio.Event()

    def open(self) -> None:
        """The link is connected: the stream may send (records queued before go now)."""
        self._connected = True
        with self._events:
            if self._queue:  # queued before connect
                self._wake(self._records_ready)

    def stop(self) -> None:
        """The link closes: the stream ends, and a put waiting for room gives up."""
        self._stopping = True
        self._wake(self._records_ready)
        with self._events:
            self._events.notify_all()

    @property
    def blocked(self) -> int:
        """Puts now waiting for room."""
        return self._blocked

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

    # ------------------------------------------------------------------ producers

    def put(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue event records, from any thread; see
        :meth:`~flconfig.transport.link.SiteLink.send_events` for what it raises and
        when it waits."""
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
            if too_big > BATCH_MAX_BYTES:
                # Refuse only the oversized records; the others are queued as usual.
                refused = [i for i, (_, p) in enumerate(encoded) if len(p) > BATCH_MAX_BYTES]
                skip = set(refused)
                kept = [r for i, r in enumerate(records) if i not in skip]
                encoded = [(seq + i, encode_record({**r, "seq": seq + i})) for i, r in enumerate(kept)]
                nbytes = sum(len(p) for _, p in encoded)
            self._next_seq = seq + len(encoded)
            self._enqueue(encoded, nbytes, called)
            if refused:
                raise ValueError(
                    f"{len(refused)} event record(s) of up to {too_big:,} bytes are too large "
                    f"and were not sent (records must stay below {BATCH_MAX_BYTES:,} bytes); "
                    f"the other {len(encoded)} of this call were queued"
                )

    def _enqueue(self, encoded: list[tuple[int, bytes]], nbytes: int, called: float) -> None:
        """Put encoded records into the queue, waiting for room (holding ``_produce``)."""
        if encoded:
            queue = self._queue
            with self._events:
                if (
                    len(queue) + len(encoded) <= self.max_records
                    and self._queued_bytes + nbytes <= self.max_bytes
                ):
                    was_empty = not queue
                    queue.extend(encoded)
                    self._queued_bytes += nbytes
                    if was_empty or len(queue) >= self._batch_trigger:
                        self._wake(self._records_ready)
                    return
                self._queue_when_room(encoded, called)

    def _queue_when_room(self, encoded: list[tuple[int, bytes]], called: float) -> None:
        """Queue ``encoded`` as room appears (called holding both locks); see :meth:`put`."""
        queue = self._queue
        max_records, max_bytes = self.max_records, self.max_bytes
        done = 0
        self._blocked += 1
        self._wake(self._records_ready)  # the sender stops lingering for a blocked producer
        try:
            while True:
                added = 0
                while done < len(encoded) and len(queue) < max_records:
                    size = len(encoded[done][1])
                    if self._queued_bytes + size > max_bytes:
                        break
                    queue.append(encoded[done])
                    self._queued_bytes += size
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
                        f"of this call were not queued, and {len(queue)} queued records are "
                        "not acknowledged",
                        self.site,
                    )
                self._events.wait(_ROOM_POLL_S)
        finally:
            self._blocked -= 1

    def _why_no_room(self, called: float) -> str | None:
        """Why a full outbox will not drain; None while waiting is worth it."""
        if self._stopping:
            return "the event outbox is full and the client was closed"
        if self._sender_error is not None:
            return f"the event outbox is full and the event stream stopped: {self._sender_error}"
        if not self._connected:
            return (
                f"the event outbox is full ({self.max_records} records / "
                f"{self.max_bytes} bytes) and the client is not connected: "
                "call connect() first"
            )
        if threading.get_ident() == self._loop_thread:
            return ("the event outbox is full and send_events was called on the link's own "
                    "event loop, which must go on to make room")
        silent = time.monotonic() - max(called, self._last_reply)
        if silent >= self.retry.deadline:
            why = f": it says {self._server_refusal}" if self._server_refusal else ""
            return (
                f"the event outbox is full and the server at {self.address} acknowledged "
                f"no events for {silent:.1f} s (retry_timeout={self.retry.deadline:g}){why}"
            )
        return None

    # ------------------------------------------------------------------ what is left

    @property
    def delivery_problem(self) -> str | None:
        """Why records are not being delivered (the server's refusal, a stopped stream), or None."""
        return self._server_refusal or self._sender_error

    @property
    def unacked(self) -> int:
        """Event records queued or sent but not yet acknowledged."""
        with self._events:
            return len(self._queue)

    def undelivered(self) -> int:
        """Records not acknowledged, plus those a put gave up queueing."""
        with self._events:
            return len(self._queue) + self._not_queued

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
                    left = len(self._queue)
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

    # ------------------------------------------------------------------ the stream

    async def _next_batch(self) -> list[tuple[int, bytes]] | None:
        """Wait for records, then until ``batch_linger`` s after the last send, unless a
        batch is full (or someone waits on the outbox). While a task runs
        (:attr:`task_running`) the first records wait ``batch_linger`` s too: a quick
        task's records then go with its result (:meth:`carry`). None: stop."""
        ready = self._records_ready
        assert ready is not None
        while True:
            while True:
                with self._events:
                    if self._stopping:
                        return None
                    if self._queue and not self._carrying:
                        break
                    ready.clear()
                await ready.wait()  # woken by the first record queued, settle() and stop()
            linger_until = self._last_send + self._batch_linger
            if self.task_running:
                linger_until = max(linger_until, time.monotonic() + self._batch_linger)
            while True:
                with self._events:
                    if (len(self._queue) >= self._batch_trigger or self._flushing
                            or self._blocked or self._stopping or not self._queue
                            or self._carrying):
                        break
                    ready.clear()
                remaining = linger_until - time.monotonic()
                if remaining <= 0:
                    break
                try:
                    await asyncio.wait_for(ready.wait(), remaining)
                except asyncio.TimeoutError:
                    break
            batch = [] if self._carrying else self._oldest(self._batch_max, BATCH_MAX_BYTES)
            if batch:  # else a result carries them
                self._last_send = time.monotonic()
                return batch

    def _oldest(self, most: int, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest queued records, at most ``most`` and ``max_bytes`` bytes (one at least,
        whatever its size, for the stream)."""
        batch: list[tuple[int, bytes]] = []
        size = 0
        with self._events:
            for item in itertools.islice(self._queue, most):
                size += len(item[1])
                if batch and size > max_bytes:
                    break
                batch.append(item)
        return batch

    # ------------------------------------------------------------------ with a result

    def carry(self, max_bytes: int) -> list[tuple[int, bytes]]:
        """The oldest records waiting, for a result to carry to the server (at most one
        batch, and ``max_bytes`` bytes); they stay queued until :meth:`settle`, and the
        stream sends nothing meanwhile (newer records would arrive before them). Empty
        while the stream is stopped or refused by the server, or another result carries."""
        if (not self._connected or self._sender_error is not None or self._server_refusal
                or self._carrying):
            return []
        batch = self._oldest(self._batch_max, min(max_bytes, BATCH_MAX_BYTES))
        if not batch or len(batch[0][1]) > max_bytes:
            return []
        self._carrying = True
        return batch

    def settle(self, carried: list[tuple[int, bytes]], ack: int = 0, refused: str = "") -> None:
        """The end of a call that carried ``carried`` (see :meth:`carry`): the records up to
        ``ack`` leave the queue; the rest (``refused`` says why they were not written, if
        the server said) the stream sends again. Call it whether the call succeeded or not."""
        if not carried:
            return
        self._carrying = False
        if refused and ack < carried[0][0]:
            log.debug("%s: records carried by a result not written: %s", self.site, refused[:300])
        elif ack:
            self._acknowledge(ack)
        self._wake(self._records_ready)

    def _acknowledge(self, ack: int) -> None:
        """The server wrote every record up to ``ack``: they leave the queue."""
        with self._events:
            self._last_reply = time.monotonic()
            queue = self._queue
            freed = 0
            while queue and queue[0][0] <= ack:
                freed += len(queue.popleft()[1])
            self._queued_bytes -= freed
            self._events.notify_all()
        self._wake(self._acked)

    async def run(self, send: SendBatch, pause: Pause) -> None:
        """Send the records in batches until the link stops, resending what the server has
        not acknowledged: ``send(request)`` makes one SendEvents call, ``pause(s)`` waits
        between tries (True: the link stops)."""
        try:
            await self._send_until_stopped(send, pause)
        finally:
            self._wake(self._acked)  # a flush waiting on us looks again

    async def _send_until_stopped(self, send: SendBatch, pause: Pause) -> None:
        backoff = self.retry.backoff()  # no deadline: until the link stops
        log.info("%s: event stream %s open", self.site, self.stream_id[:8])
        while True:
            batch = await self._next_batch()
            if batch is None:
                return
            request = pb.SendEventsRequest(
                stream=self.stream_id, records=join_records(p for _, p in batch)
            )
            try:
                reply = await send(request)
            except Retryable as exc:
                log.debug("%s: resending %d event records after %s", self.site, len(batch), exc)
                if await pause(backoff.next()):
                    return
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
                if await pause(backoff.next()):
                    return
                continue
            backoff.reset()
            if self._server_refusal is not None:
                log.warning("%s: the server saves event records again", self.site)
                self._server_refusal = None
            if ack < batch[0][0] - 1:
                self._stop_stream(
                    f"the server acknowledged seq {ack}, below what it confirmed before "
                    "(did it restart?)"
                )
                return
            self._acknowledge(ack)

    def _stop_stream(self, reason: str) -> None:
        """Give up sending events; flush() then reports what is left."""
        log.error("%s: event stream stopped: %s", self.site, reason)
        with self._events:
            self._sender_error = reason
            self._events.notify_all()
