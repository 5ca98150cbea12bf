"""The site end of the link for blocking code: :class:`CommClient`.

A :class:`CommClient` is a :class:`~flconfig.transport.link.SiteLink` run on an
event loop of its own thread (one loop for every CommClient of a process): the
same protocol, outbox and retries, behind methods that block until done. The
worker processes of ``flconfig launch`` run their sites' links as coroutines
directly; a CommClient is for code that is not a coroutine (a test, a tool, a
site of its own).
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Coroutine, Mapping, Sequence
from typing import Any, TypeVar

import grpc

from ..types import FLModel
from . import contract
from .link import END, SiteLink, Task, _EndOfRun
from .retry import RetryPolicy

__all__ = ["END", "CommClient", "Task"]

_T = TypeVar("_T")


class _LoopThread:
    """One event loop on a daemon thread, started on first use, for the process's
    CommClients."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._loop: asyncio.AbstractEventLoop | None = None

    def loop(self) -> asyncio.AbstractEventLoop:
        with self._lock:
            if self._loop is None:
                loop = asyncio.new_event_loop()
                threading.Thread(target=loop.run_forever, name="flconfig-links",
                                 daemon=True).start()
                self._loop = loop
            return self._loop

    def run(self, coro: Coroutine[Any, Any, _T]) -> _T:
        """Run ``coro`` on the loop and wait for its result (or exception)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop()).result()


_LOOP = _LoopThread()


class CommClient:
    """A site's connection to the server, authenticated as ``site`` with ``token``;
    blocking methods over :class:`~flconfig.transport.link.SiteLink`, whose
    documentation says what each does and raises.

    Call :meth:`connect` first and :meth:`close` last (or use ``with``). Any
    thread may call any method; :meth:`send_events` blocks only while the outbox
    is full. The keyword arguments are :class:`SiteLink`'s.
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
        self._link = SiteLink(
            address, site, token, heartbeat_interval,
            max_message_mb=max_message_mb, max_model_mb=max_model_mb,
            retry_timeout=retry_timeout, batch_max=batch_max, batch_linger=batch_linger,
            max_outbox_records=max_outbox_records, max_outbox_bytes=max_outbox_bytes,
            channel_credentials=channel_credentials, share_channel=share_channel, retry=retry,
        )  # fmt: skip

    @property
    def link(self) -> SiteLink:
        """The :class:`SiteLink` this client runs."""
        return self._link

    @property
    def site(self) -> str:
        """The site this client speaks for."""
        return self._link.site

    @property
    def address(self) -> str:
        """The server's ``host:port``."""
        return self._link.address

    @property
    def retry_timeout(self) -> float:
        """How long calls keep retrying while the server is unreachable."""
        return self._link.retry_timeout

    @property
    def retry(self) -> RetryPolicy:
        """How calls are retried (its deadline is :attr:`retry_timeout`)."""
        return self._link.retry

    @property
    def unacked(self) -> int:
        """Event records queued or sent but not yet acknowledged."""
        return self._link.unacked

    @property
    def delivery_problem(self) -> str | None:
        """Why records are not being delivered (the server's refusal, a stopped stream), or None."""
        return self._link.delivery_problem

    @property
    def _channel(self) -> Any:  # the gRPC channel, for tests of channel sharing
        return self._link._channel

    def connect(self, timeout: float = 30) -> None:
        """Say Hello, retrying until the server is up (see :meth:`SiteLink.connect`)."""
        _LOOP.run(self._link.connect(timeout))

    def __enter__(self) -> CommClient:
        self.connect()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self, timeout: float = 10.0, reason: str | None = None) -> int:
        """Flush, say Bye, disconnect; how many records were not delivered
        (see :meth:`SiteLink.close`)."""
        return _LOOP.run(self._link.close(timeout, reason))

    def reconnect(self) -> None:
        """Drop the connection and open a new one (see :meth:`SiteLink.reconnect`)."""
        _LOOP.run(self._link.reconnect())

    def get_task(self, timeout: float | None = None) -> Task | _EndOfRun | None:
        """The next task, :data:`END`, or None after ``timeout`` s (see :meth:`SiteLink.get_task`)."""
        return _LOOP.run(self._link.get_task(timeout))

    def submit_result(self, task: Task, result: FLModel, wait_next: float = 0.0) -> bool:
        """Send the result of ``task``, with the records waiting; with ``wait_next``, the
        next task comes back with it (see :meth:`SiteLink.submit_result`)."""
        return _LOOP.run(self._link.submit_result(task, result, wait_next))

    def send_events(self, records: Sequence[Mapping[str, Any]]) -> None:
        """Queue event records for the server (see :meth:`SiteLink.send_events`)."""
        self._link.send_events(records)

    def flush(self, timeout: float = 30.0) -> int:
        """Wait until every queued record is acknowledged (see :meth:`SiteLink.flush`)."""
        return _LOOP.run(self._link.flush(timeout))
