"""What the job server does for each call a site makes: Hello, GetTask, FetchModel,
SubmitResult and PushResult, Heartbeat, SendEvents, Bye, and a worker's PollTasks.

Each handler is given the authenticated site's name and the parsed request (see
:mod:`.rpc`, which turns them into gRPC handlers); it reads and changes the
server's :class:`~.state.ServerState` and nothing else of the server.
"""

from __future__ import annotations

import asyncio
import hmac
import logging
import time
from collections.abc import AsyncIterator, Callable, Iterator
from concurrent import futures
from dataclasses import dataclass
from typing import Any, ClassVar

import grpc

from ..errors import StorageError
from . import contract
from . import flconfig_pb2 as pb
from .codec import ProtocolError, decode_model, decode_records
from .rpc import CallContext, Handler, abort
from .state import ALIVE, LEFT, LOST, NEW, PollGroup, ServerState, Task

log = logging.getLogger(__name__)

_NO_TASK: bytes = pb.TaskReply(kind=pb.TaskReply.NONE).SerializeToString()
_END: bytes = pb.TaskReply(kind=pb.TaskReply.END).SerializeToString()
_POLL_NONE: bytes = pb.PollTasksReply().SerializeToString()
_POLL_ENDED: bytes = pb.PollTasksReply(ended=True).SerializeToString()

#: ``on_events(site, records)``: receives a site's event records, once each and in order.
EventsCallback = Callable[[str, list[dict[str, Any]]], None]

#: A SubmitResult's result of at most this many bytes, without records, is taken on the
#: loop: it decodes in less time than the hop to a thread takes.
SMALL_RESULT_BYTES = 64 * 1024


class _StaleStream(Exception):
    """Records of an event stream that is not the site's (it said Hello again since)."""


@dataclass(frozen=True)
class Limits:
    """What the server tells its sites at Hello, and the largest model it takes."""

    heartbeat_timeout: float
    long_poll: float  # longest a GetTask is held open
    max_model_mb: int


class SiteHandlers:
    """The handlers of the methods a site calls, over ``state``.

    ``on_events`` and ``on_site_failed`` may be set after construction (the
    server's attributes of the same names forward to them).
    """

    def __init__(
        self,
        state: ServerState,
        limits: Limits,
        on_events: EventsCallback | None = None,
        on_site_failed: Callable[[str, str], None] | None = None,
        *,
        blocking: futures.Executor | None = None,
    ) -> None:
        self._state = state
        self._limits = limits
        # Where work that may block runs (decoding a large result): not the loop.
        self._blocking = blocking
        self.on_events = on_events
        self.on_site_failed = on_site_failed

    #: The methods whose handlers may block (a receiver writing records, decoding a
    #: result, a callback of the runtime's), run on worker threads, never on the loop,
    #: unless their request is at most this many bytes (-1: always on a thread). A
    #: Bye without a reason (an empty request) calls nothing of the runtime's. SubmitResult
    #: runs on the loop and sends what may block to a thread itself (see submit_result).
    BLOCKING: ClassVar[dict[str, int]] = {"SendEvents": -1, "Bye": 0}

    def by_method(self) -> dict[str, Handler]:
        """The handler of each method of the contract, by method name (``get_task``,
        ``submit_result`` and ``push_result`` are coroutine functions, run on the server's event loop)."""
        return {
            "Hello": self.hello,
            "GetTask": self.get_task,
            "FetchModel": self.fetch_model,
            "SubmitResult": self.submit_result,
            "PushResult": self.push_result,
            "Heartbeat": self.heartbeat,
            "SendEvents": self.send_events,
            "Bye": self.bye,
            "PollTasks": self.poll_tasks,
        }

    def hello(self, site: str, request: Any, context: CallContext) -> pb.HelloReply:
        """Hello: the site is alive; a new client instance starts its event sequence again."""
        if request.version != contract.PROTOCOL_VERSION:
            abort(
                context,
                grpc.StatusCode.FAILED_PRECONDITION,
                f"site {site} speaks protocol version {request.version}; this server speaks "
                f"{contract.PROTOCOL_VERSION} (run the same flconfig version on both ends)",
            )
        stream = request.stream
        if not 0 < len(stream) <= 64:
            raise ProtocolError("Hello: 'stream' must be 1 to 64 characters")
        group = request.poll_group
        if group and not contract.POLL_GROUP_RE.fullmatch(group):
            raise ProtocolError("Hello: 'poll_group' must be 16 to 64 letters, digits, '-' or '_'")
        state = self._state
        with state.cond:
            st = state.site(site)
            st.state = ALIVE
            # Authenticated by its own token, the site joins its worker's poll (or none).
            state.join_group(st, group or None)
            state.changed()
        with st.events_lock:
            if st.stream != stream:
                # A new client instance: its event sequence starts again at 1.
                st.stream, st.last_seq = stream, 0
        log.info("site %s connected from %s", site, context.peer())
        limits = self._limits
        return pb.HelloReply(
            heartbeat_timeout=limits.heartbeat_timeout,
            long_poll=limits.long_poll,
            chunk_bytes=contract.CHUNK_BYTES,
            max_model_bytes=limits.max_model_mb * 1024 * 1024,
            poll_group=bool(group),
        )

    async def get_task(self, site: str, request: Any, context: CallContext) -> bytes:
        """GetTask, a long poll: the site's next task, "end" once the run ended, or none.

        It waits on the server's event loop, holding no thread: a task for the site (or
        the run's end) wakes it; a cancelled call stops it."""
        return await self._next_task(site, request.wait, context)

    async def _next_task(self, site: str, wait: float, context: CallContext) -> bytes:
        """The serialised TaskReply of ``site``'s next task, waiting up to ``wait`` seconds
        (at most the long poll) for one: GetTask's answer, and SubmitResult's ``next``."""
        if wait != wait:
            raise ProtocolError("'wait' must be a number")
        self._state.long_polls += 1  # on the loop: no lock needed
        try:
            return await self._wait_for_task(site, wait, context)
        finally:
            self._state.long_polls -= 1

    async def _wait_for_task(self, site: str, wait: float, context: CallContext) -> bytes:
        """:meth:`_next_task`'s wait."""
        deadline = time.monotonic() + min(max(wait, 0.0), self._limits.long_poll)
        state = self._state
        st = state.sites[site]
        while True:
            with state.cond:
                if state.ended:
                    return _END
                while st.tasks and st.tasks[0].closed:
                    st.tasks.popleft()
                if st.tasks:
                    task = st.tasks.popleft()
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or state.stopping or not context.is_active():
                    return _NO_TASK
                # Cleared under the lock: a wake for what comes after this check is
                # scheduled on the loop after it, so it is never missed.
                polls = st.polls
                if polls is None:
                    polls = st.polls = asyncio.Event()
                polls.clear()
            try:
                await asyncio.wait_for(polls.wait(), remaining)
            except TimeoutError:
                pass
        log.debug("site %s fetched task %s (%s)", site, task.name, task.task_id)
        return task.reply

    async def poll_tasks(self, site: str, request: Any, context: CallContext) -> bytes:
        """PollTasks, one long poll for all the sites of a worker: the tasks of the members
        of the caller's poll group, as soon as any has one; "ended" once the run ended; or
        none within the wait. Refused unless the caller (authenticated by its own token)
        joined the group it names: a poll reaches only the sites that joined the group
        themselves, each by a Hello with its own token.

        While it is open, every member counts as alive. A reply carries each task's
        frame once with the members it is for, and at most about one chunk of frames:
        what does not fit stays for the next poll."""
        wait = request.wait
        if wait != wait:
            raise ProtocolError("PollTasks: 'wait' must be a number")
        state = self._state
        with state.cond:
            st = state.sites[site]
            group = st.group
            if group is None or not hmac.compare_digest(group.group_id.encode(),
                                                        request.group.encode()):
                log.warning("site %s polled for a poll group it has not joined; refused", site)
                abort(context, grpc.StatusCode.PERMISSION_DENIED,
                      f"site {site} has not joined this poll group (its Hello names the "
                      "group it polls for)")
            group.open_polls += 1
            if group.revive:
                group.revive = False
                revived = [state.sites[name] for name in group.members]
                back = [s.name for s in revived if s.state == LOST and not s.process_ended]
                for name in back:
                    state.sites[name].state = ALIVE
                if back:
                    state.changed()
                    log.warning("sites %s are back", ", ".join(sorted(back)))
        state.long_polls += 1
        try:
            return await self._group_tasks(group, wait, context)
        finally:
            state.long_polls -= 1
            with state.cond:
                group.open_polls -= 1
                group.last_seen = time.monotonic()

    async def _group_tasks(self, group: PollGroup, wait: float, context: CallContext) -> bytes:
        """The serialised PollTasksReply of ``group``'s next tasks, waiting up to ``wait``
        seconds (at most the long poll) for one."""
        deadline = time.monotonic() + min(max(wait, 0.0), self._limits.long_poll)
        state = self._state
        while True:
            with state.cond:
                if state.ended:
                    return _POLL_ENDED
                taken = self._take_ready(group)
                if taken:
                    break
                remaining = deadline - time.monotonic()
                if remaining <= 0 or state.stopping or not context.is_active():
                    return _POLL_NONE
                group.polls.clear()  # under the lock, as in _next_task
            try:
                await asyncio.wait_for(group.polls.wait(), remaining)
            except TimeoutError:
                pass
        parts = []
        for task, sites in taken.items():
            polled = contract.wire_bytes_field(1, task.reply) + b"".join(
                contract.wire_bytes_field(2, name.encode()) for name in sites)
            parts.append(contract.wire_bytes_field(1, polled))
            log.debug("sites %s fetched task %s (%s)", ", ".join(sites), task.name, task.task_id)
        return b"".join(parts)

    def _take_ready(self, group: PollGroup) -> dict[Task, list[str]]:
        """Take the next task of each member of ``group`` that has one, up to about a chunk
        of distinct task frames (the first always); hold the state's cond."""
        sites = self._state.sites
        taken: dict[Task, list[str]] = {}
        size = 0
        for name in list(group.ready):
            tasks = sites[name].tasks
            while tasks and tasks[0].closed:
                tasks.popleft()
            if not tasks:
                del group.ready[name]
                continue
            task = tasks[0]
            names = taken.get(task)
            if names is None:
                if taken and size + len(task.reply) > contract.CHUNK_BYTES:
                    continue  # the next poll takes it
                names = taken[task] = []
                size += len(task.reply)
            names.append(name)
            tasks.popleft()
            if not tasks:
                del group.ready[name]
        return taken

    def fetch_model(
        self, site: str, request: Any, context: CallContext
    ) -> Iterator[bytes]:
        """The model frame of an open task sent to ``site``, in chunks, from ``offset``."""
        with self._state.cond:
            task = self._state.tasks.get(request.task_id)
            if task is None or task.closed or site not in task.targets:
                abort(context, grpc.StatusCode.NOT_FOUND,
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

    async def submit_result(
        self, site: str, request: Any, context: CallContext
    ) -> bytes | pb.SubmitResultReply:
        """SubmitResult: a result that fits in one message. The site's event records it
        carries are written first (as SendEvents writes them; the reply acknowledges
        them); with ``wait`` the reply waits for the site's next task, and carries it (not for
        a request above :data:`~.contract.WAIT_WITH_RESULT_BYTES`, which gRPC would hold).

        Records and results above :data:`SMALL_RESULT_BYTES` are taken on a worker thread
        (writing records and decoding may block), never on the loop."""
        wait = request.wait
        if wait != wait:
            raise ProtocolError("SubmitResult: 'wait' must be a number")
        reply: pb.SubmitResultReply
        if request.records or len(request.model) > SMALL_RESULT_BYTES:
            loop = asyncio.get_running_loop()
            reply = await loop.run_in_executor(self._blocking, self._intake, site, request)
        else:
            reply = self._intake(site, request)
        if wait <= 0 or len(request.model) + len(request.records) > contract.WAIT_WITH_RESULT_BYTES:
            return reply  # no ``next``: the site asks with a GetTask
        # The next task's reply, already serialised, goes in as field 2 (``next``) as is.
        head: bytes = reply.SerializeToString()
        return head + contract.wire_bytes_field(2, await self._next_task(site, wait, context))

    def _intake(self, site: str, request: Any) -> pb.SubmitResultReply:
        """The records and the result of a SubmitResult, taken; its reply without ``next``."""
        ack, refused = 0, ""
        if request.records:
            try:
                ack, refused = self._write_records(site, request.stream, request.records)
            except _StaleStream as exc:
                refused = str(exc)  # the site's own SendEvents learns it; the result counts
        reply = self._take_result(site, request.task_id, lambda: request.model)
        if request.records:
            reply.ack, reply.error = ack, refused
        return reply

    async def push_result(
        self, site: str, parts: AsyncIterator[Any], context: CallContext
    ) -> pb.SubmitResultReply:
        """PushResult: a result in parts; the first names the task and the size. The parts
        are read on the loop as they arrive; the whole is decoded on a worker thread."""
        first = await anext(parts, None)
        if first is None:
            raise ProtocolError("PushResult: no parts")
        size = first.model_bytes
        max_model_mb = self._limits.max_model_mb
        if size > max_model_mb * 1024 * 1024:
            log.warning("site %s pushed a result of %.1f MiB, above max_model_mb=%d; refused",
                        site, size / 2**20, max_model_mb)
            abort(context, grpc.StatusCode.RESOURCE_EXHAUSTED,
                  f"a result of {size / 2**20:.1f} MiB is above this server's "
                  f"max_model_mb={max_model_mb}")
        with self._state.cond:
            verdict, task = self._check_result(site, first.task_id)
            if task is not None:  # a live view shows the site sending until its result is in
                self._state.sites[site].pushing = task.task_id
        if task is None:  # not read at all: nothing of it would be kept
            return pb.SubmitResultReply(accepted=verdict)
        frame = bytearray(first.data)
        async for part in parts:
            if len(frame) + len(part.data) > size:
                raise ProtocolError(f"PushResult: more than the {size} bytes announced")
            frame += part.data
        if len(frame) != size:
            raise ProtocolError(f"PushResult: {len(frame)} of the {size} bytes announced")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._blocking, self._take_result, site, first.task_id, lambda: frame
        )

    def _take_result(
        self, site: str, task_id: str, read: Callable[[], bytes | bytearray]
    ) -> pb.SubmitResultReply:
        """Store the result ``read()`` returns, unless the task is late, unknown or done."""
        state = self._state
        with state.cond:
            verdict, task = self._check_result(site, task_id)
        if task is None:  # not read at all: nothing of it would be kept
            return pb.SubmitResultReply(accepted=verdict)
        result = decode_model(read())
        with state.cond:
            verdict, task = self._check_result(site, task_id)
            if task is None:
                return pb.SubmitResultReply(accepted=verdict)
            task.results[site] = result
            task.arrivals.append(site)
            state.cond.notify_all()
        log.debug("site %s returned task %s (%s), rc=%s", site, task.name, task_id, result.rc)
        return pb.SubmitResultReply(accepted=True)

    def _check_result(self, site: str, task_id: str) -> tuple[bool, Task | None]:
        """(accepted, task to store the result in); no task means do not store it."""
        task = self._state.tasks.get(task_id)
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

    def heartbeat(
        self, site: str, request: Any, context: CallContext
    ) -> pb.HeartbeatReply:
        """Heartbeat: the call itself says the site is there; the reply, whether the run ended."""
        return pb.HeartbeatReply(ended=self._state.ended)

    def send_events(
        self, site: str, request: Any, context: CallContext
    ) -> pb.SendEventsReply:
        """SendEvents: deliver the records next in the site's sequence; acknowledge the last
        one written (never one that was not)."""
        try:
            ack, refused = self._write_records(site, request.stream, request.records)
        except _StaleStream as exc:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, str(exc))
        return pb.SendEventsReply(ack=ack, error=refused)

    def _write_records(self, site: str, stream: str, data: bytes) -> tuple[int, str]:
        """Deliver the records of batch ``data`` next in ``site``'s sequence of ``stream``:
        (the last seq written, why records are not written now or "")."""
        records = decode_records(data)
        for record in records:
            seq = record.get("seq")
            if type(seq) is not int or seq < 1:
                raise ProtocolError("event records: every record needs an int 'seq' >= 1")
        state = self._state
        with state.cond:
            st = state.sites[site]
        with st.events_lock:
            if stream != st.stream:
                raise _StaleStream(
                    f"stale event stream: site {site} has reconnected as a new client")
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
            refused = ""
            if fresh:
                try:
                    if self.on_events is not None:
                        self.on_events(site, fresh)
                except StorageError as exc:
                    # Not written, so not acknowledged: the site keeps the records and
                    # sends them again; nothing is lost while the disk is full.
                    refused = exc.message
                    state.note_storage(refused)
                except Exception:
                    # A receiver's bug: the records cannot be saved by sending them
                    # again, so they count as delivered, and the run fails loudly.
                    log.exception("on_events failed for %d records from site %s", len(fresh), site)
                    st.last_seq = expected - 1
                    state.note_failure(f"saving the records of site {site} failed (see the log)")
                else:
                    st.last_seq = expected - 1
                    state.note_storage(None)
            return st.last_seq, refused

    def bye(self, site: str, request: Any, context: CallContext) -> pb.ByeReply:
        """Bye: the site leaves; with a reason, because it failed."""
        reason = request.reason
        if len(reason) > 1000:
            raise ProtocolError("Bye: 'reason' must be at most 1000 characters")
        state = self._state
        with state.cond:
            st = state.site(site)
            state.join_group(st, None)  # its worker's poll no longer answers for it
            if reason:
                st.state = LEFT
                state.state_changes += 1
                st.lost_reason = f"failed: {reason}"
                st.failure = reason
            elif st.state != NEW:
                st.state = LEFT
                state.state_changes += 1
                st.lost_reason = "said Bye"
            state.cond.notify_all()
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
