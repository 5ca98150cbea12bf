"""The site end of the link: connect, pull tasks, return results, heartbeat, stream events.

A :class:`CommClient` keeps one gRPC channel to the server. Two background
threads run beside the caller's: one sends heartbeats, so a site busy with a
long task is not taken for lost; one sends event records in batches and
resends whatever the server has not acknowledged, so a dropped connection
loses nothing.
"""

from __future__ import annotations

import itertools
import logging
import threading
import time
import uuid
from collections import deque
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

import grpc

from ..api import FLModel
from ..errors import JobError
from . import comm
from .codec import (
    ProtocolError,
    decode_envelope,
    decode_model,
    encode_envelope,
    encode_model,
    encode_record,
    join_records,
)

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


#: What :meth:`CommClient.get_task` returns once the server has ended the run.
END: Final = _EndOfRun()


# Keep a batch of records well below any sensible max_message_mb.
_BATCH_MAX_BYTES = 4 * 1024 * 1024


class _Retry(Exception):
    """A call failed in a way worth retrying."""


class CommClient:
    """A site's connection to the server, authenticated as ``site`` with ``token``.

    Call :meth:`connect` first and :meth:`close` last (or use ``with``).
    """

    def __init__(
        self,
        address: str,
        site: str,
        token: str,
        heartbeat_interval: float = 5.0,
        *,
        max_message_mb: int = 512,
        retry_timeout: float = 60.0,
        batch_max: int = 2000,
        batch_linger: float = 0.05,
        channel_credentials: grpc.ChannelCredentials | None = None,
    ) -> None:
        self.address = address
        self.site = comm.check_site_name(site)
        comm.check_token(token, site)
        if heartbeat_interval <= 0:
            raise ValueError("heartbeat_interval must be > 0")
        self.heartbeat_interval = float(heartbeat_interval)
        #: How long calls keep retrying while the server is unreachable.
        self.retry_timeout = float(retry_timeout)
        self._metadata = ((comm.SITE_METADATA, site), (comm.TOKEN_METADATA, token))
        self._max_message_mb = max_message_mb
        self._channel_credentials = channel_credentials
        self._batch_max = max(1, batch_max)
        self._batch_linger = batch_linger
        self._stream = uuid.uuid4().hex  # names this client's event sequence on the server

        self._channel_lock = threading.Lock()
        self._channel: grpc.Channel | None = None
        self._calls: dict[str, Any] = {}
        self._connected = False
        self._closed = False
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []

        # Event outbox: (seq, encoded record), oldest first; a record leaves it
        # only when the server acknowledged its seq.
        self._events = threading.Condition()
        self._outbox: deque[tuple[int, bytes]] = deque()
        self._next_seq = 1
        self._flushing = 0
        self._sender_error: str | None = None

    # ------------------------------------------------------------------ connection

    def _open_channel(self) -> None:
        options = comm.client_options(self._max_message_mb)
        if self._channel_credentials is None:
            channel = grpc.insecure_channel(self.address, options=options)
        else:
            channel = grpc.secure_channel(self.address, self._channel_credentials, options=options)
        calls = {
            name: channel.unary_unary(comm.method_path(name)) for name in comm.METHODS
        }  # raw bytes in and out: no (de)serializers
        with self._channel_lock:
            old, self._channel, self._calls = self._channel, channel, calls
        if old is not None:
            old.close()

    def reconnect(self) -> None:
        """Drop the connection and open a new one; calls in flight are retried."""
        self._open_channel()

    def _invoke(
        self, method: str, request: bytes, timeout: float, wait_for_ready: bool = False
    ) -> tuple[dict[str, Any], memoryview]:
        """One call; raises :class:`_Retry` or a :class:`JobError` that says what went wrong."""
        with self._channel_lock:
            call = self._calls.get(method)
        if call is None:
            raise JobError("not connected; call connect() first", self.site)
        try:
            response = call(
                request, timeout=timeout, metadata=self._metadata, wait_for_ready=wait_for_ready
            )
        except grpc.RpcError as exc:
            code = exc.code() if isinstance(exc, grpc.Call) else grpc.StatusCode.UNKNOWN
            details = (exc.details() if isinstance(exc, grpc.Call) else "") or ""
            if code in _RETRYABLE:
                raise _Retry(f"{method}: {code.name}: {details}") from None
            if code == grpc.StatusCode.UNAUTHENTICATED:
                err = JobError(f"server refused {self.site}: bad credentials")
                err.site = self.site
                raise err from None
            raise JobError(f"{method} failed: {code.name}: {details}", self.site) from None
        except ValueError as exc:  # the channel was closed under us by reconnect()
            raise _Retry(f"{method}: {exc}") from None
        try:
            return decode_envelope(response)
        except ProtocolError as exc:
            raise JobError(f"{method}: the server sent a bad reply: {exc}", self.site) from None

    def _call_with_retry(
        self, method: str, request: bytes, timeout: float
    ) -> tuple[dict[str, Any], memoryview]:
        """:meth:`_invoke`, retried with backoff while the server is unreachable."""
        limit = self.retry_timeout
        start = time.monotonic()
        delay = 0.05
        while True:
            try:
                return self._invoke(method, request, timeout)
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
                time.sleep(delay)
                delay = min(delay * 2, 1.0)

    def connect(self, timeout: float = 30) -> None:
        """Say Hello, retrying until the server is up; then start the background threads.

        Raises :class:`JobError` on bad credentials or when ``timeout`` passes.
        """
        if self._connected:
            return
        if self._closed:
            raise JobError("client is closed", self.site)
        self._open_channel()
        request = encode_envelope({"stream": self._stream, "version": 1})
        deadline = time.monotonic() + timeout
        while True:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise JobError(
                    f"could not reach the server at {self.address} within {timeout:g} s", self.site
                )
            try:
                header, _ = self._invoke("Hello", request, min(remaining, 5.0), wait_for_ready=True)
                break
            except _Retry:
                time.sleep(min(0.05, max(0.0, deadline - time.monotonic())))
        server_timeout = header.get("heartbeat_timeout")
        if isinstance(server_timeout, (int, float)) and self.heartbeat_interval >= server_timeout:
            log.warning(
                "%s: heartbeat_interval %g s is not below the server's heartbeat timeout %g s",
                self.site, self.heartbeat_interval, server_timeout,
            )  # fmt: skip
        self._connected = True
        for name, target in (("heartbeat", self._heartbeat_loop), ("events", self._sender_loop)):
            thread = threading.Thread(
                target=target, name=f"flconfig-{self.site}-{name}", daemon=True
            )
            thread.start()
            self._threads.append(thread)
        log.info("%s connected to %s", self.site, self.address)

    def __enter__(self) -> CommClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0) -> int:
        """Flush events (up to ``timeout`` s), say Bye and disconnect.

        Returns how many event records were not acknowledged (0 on success).
        """
        if self._closed:
            with self._events:
                return len(self._outbox)
        unacked = self.flush(timeout) if self._connected else 0
        if unacked:
            log.warning("%s: closing with %d event records not delivered", self.site, unacked)
        self._closed = True
        self._stop.set()
        with self._events:
            self._events.notify_all()
        for thread in self._threads:
            thread.join(timeout=2.0)
        if self._connected:
            try:
                self._invoke("Bye", encode_envelope({}), timeout=5.0)
            except (_Retry, JobError) as exc:
                log.warning("%s: Bye failed: %s", self.site, exc)
        with self._channel_lock:
            channel, self._channel, self._calls = self._channel, None, {}
        if channel is not None:
            channel.close()
        return unacked

    def _heartbeat_loop(self) -> None:
        request = encode_envelope({})
        while not self._stop.wait(self.heartbeat_interval):
            try:
                self._invoke("Heartbeat", request, timeout=max(self.heartbeat_interval, 1.0))
            except _Retry as exc:
                log.debug("%s: heartbeat failed: %s", self.site, exc)
            except JobError as exc:
                log.warning("%s: heartbeat refused: %s", self.site, exc)

    # ------------------------------------------------------------------ tasks

    def get_task(self, timeout: float | None = None) -> Task | _EndOfRun | None:
        """The next task, :data:`END` once the server ended the run, or ``None`` after ``timeout`` s.

        ``timeout=None`` waits until there is a task or the run ends. Raises
        :class:`JobError` if the server stays unreachable for ``retry_timeout``.
        """
        deadline = None if timeout is None else time.monotonic() + timeout
        while True:
            wait = comm.LONG_POLL_S
            if deadline is not None:
                wait = min(wait, max(0.0, deadline - time.monotonic()))
            # A task may be large: allow for its transfer beyond the long poll.
            header, body = self._call_with_retry(
                "GetTask", encode_envelope({"wait": wait}), timeout=wait + 300.0
            )
            kind = header.get("kind")
            if kind == "task":
                name, task_id = header.get("name"), header.get("task_id")
                if not isinstance(name, str) or not isinstance(task_id, str):
                    raise JobError("GetTask: the server sent a task without name or id", self.site)
                try:
                    data = decode_model(body)
                except ProtocolError as exc:
                    raise JobError(
                        f"task {name}: the server sent bad data: {exc}", self.site
                    ) from None
                return Task(name, task_id, data)
            if kind == "end":
                return END
            if kind != "none":
                raise JobError(f"GetTask: unknown reply kind {kind!r}", self.site)
            if deadline is not None and time.monotonic() >= deadline:
                return None

    def submit_result(self, task: Task, result: FLModel) -> bool:
        """Send the result of ``task``; True if the server accepted it (False: late or unknown)."""
        request = encode_envelope({"task_id": task.task_id}, encode_model(result))
        if len(request) > self._max_message_mb * 1024 * 1024:
            raise JobError(
                f"the result of task {task.name} is {len(request) / 2**20:.1f} MiB, "
                f"above max_message_mb={self._max_message_mb}",
                self.site,
            )
        header, _ = self._call_with_retry("SubmitResult", request, timeout=300.0)
        accepted = header.get("accepted") is True
        if not accepted:
            log.warning("%s: the server did not accept the result of task %s", self.site, task.name)
        return accepted

    # ------------------------------------------------------------------ events

    def send_events(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue event records for the server; returns at once.

        Each record is copied and given the next ``seq`` (any ``seq`` it had is
        replaced). Raises ``TypeError`` naming the key of a value JSON cannot
        carry; then none of ``records`` is queued.
        """
        if self._closed:
            raise JobError("send_events after close()", self.site)
        with self._events:
            seq = self._next_seq
            encoded = [
                (seq + i, encode_record({**r, "seq": seq + i})) for i, r in enumerate(records)
            ]
            if not encoded:
                return
            too_big = max(len(e) for _, e in encoded)
            if too_big > _BATCH_MAX_BYTES:
                raise ValueError(
                    f"an event record of {too_big} bytes is too large; "
                    f"records must stay below {_BATCH_MAX_BYTES} bytes"
                )
            was_empty = not self._outbox
            self._outbox.extend(encoded)
            self._next_seq = seq + len(encoded)
            if was_empty or len(self._outbox) >= self._batch_max:
                self._events.notify_all()

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued record is acknowledged; return how many are not (0 on success)."""
        deadline = time.monotonic() + timeout
        with self._events:
            self._flushing += 1
            self._events.notify_all()
            try:
                while self._outbox and self._sender_error is None and self._connected:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0 or self._stop.is_set():
                        break
                    self._events.wait(remaining)
                return len(self._outbox)
            finally:
                self._flushing -= 1

    @property
    def unacked(self) -> int:
        """Event records queued or sent but not yet acknowledged."""
        with self._events:
            return len(self._outbox)

    def _next_batch(self) -> list[tuple[int, bytes]] | None:
        """Wait for records; linger briefly so they travel in batches. None: stop."""
        with self._events:
            while not self._outbox:
                if self._stop.is_set():
                    return None
                self._events.wait(0.5)
            linger_until = time.monotonic() + self._batch_linger
            while (
                len(self._outbox) < self._batch_max
                and not self._flushing
                and not self._stop.is_set()
            ):
                remaining = linger_until - time.monotonic()
                if remaining <= 0:
                    break
                self._events.wait(remaining)
            batch: list[tuple[int, bytes]] = []
            size = 0
            for item in itertools.islice(self._outbox, self._batch_max):
                size += len(item[1])
                if batch and size > _BATCH_MAX_BYTES:
                    break
                batch.append(item)
            return batch

    def _sender_loop(self) -> None:
        delay = 0.05
        while True:
            batch = self._next_batch()
            if batch is None:
                return
            request = encode_envelope({"stream": self._stream}, join_records(p for _, p in batch))
            try:
                header, _ = self._invoke("SendEvents", request, timeout=30.0)
            except _Retry as exc:
                log.debug("%s: resending %d event records after %s", self.site, len(batch), exc)
                if self._stop.wait(delay):
                    return
                delay = min(delay * 2, 1.0)
                continue
            except JobError as exc:
                self._stop_stream(f"the server refused event records: {exc}")
                return
            delay = 0.05
            ack = header.get("ack")
            if type(ack) is not int:
                self._stop_stream(f"bad SendEvents reply {header!r}")
                return
            if ack < batch[0][0] - 1:
                self._stop_stream(
                    f"the server acknowledged seq {ack}, below what it confirmed before "
                    "(did it restart?)"
                )
                return
            with self._events:
                while self._outbox and self._outbox[0][0] <= ack:
                    self._outbox.popleft()
                self._events.notify_all()

    def _stop_stream(self, reason: str) -> None:
        """Give up sending events; flush() then reports what is left."""
        log.error("%s: event stream stopped: %s", self.site, reason)
        with self._events:
            self._sender_error = reason
            self._events.notify_all()
