"""The job server's gRPC plumbing: a plain handler ``fn(site, request, context)`` made
into the ``grpc.aio`` handler of its method.

The server runs on one asyncio event loop (see :mod:`.server`): a call that waits
(a long-polling ``GetTask``) is an ``await``, not a thread, so ten thousand sites
waiting for work cost the server no thread each. Each call is admitted (the
caller's site, by the gatekeeper), bounded (control methods take small requests
only), counted as the site's call while it runs (so a site busy in a call is
never taken for lost), its request parsed, and its reply serialised. Handlers
that may block (writing a site's records, decoding a large result, a callback of
the runtime's) run on a few worker threads, never on the loop. No (de)serializers
are given to gRPC: requests arrive as bytes and are parsed here, so a malformed
message is refused with INVALID_ARGUMENT and one log line, like any other bad
request, never a traceback.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from concurrent import futures
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message

from . import contract
from . import flconfig_pb2 as pb
from .codec import ProtocolError
from .gatekeeper import Gatekeeper
from .state import ServerState

log = logging.getLogger(__name__)

#: Largest request of a control method (all but SubmitResult, PushResult and SendEvents).
MAX_CONTROL_BYTES = 64 * 1024
_CONTROL_METHODS = frozenset({"Hello", "GetTask", "FetchModel", "Heartbeat", "Bye", "PollTasks"})
_REQUESTS: dict[str, type[Message]] = {
    "Hello": pb.HelloRequest,
    "GetTask": pb.GetTaskRequest,
    "FetchModel": pb.FetchModelRequest,
    "SubmitResult": pb.SubmitResultRequest,
    "PushResult": pb.ResultPart,
    "Heartbeat": pb.HeartbeatRequest,
    "SendEvents": pb.SendEventsRequest,
    "Bye": pb.ByeRequest,
    "PollTasks": pb.PollTasksRequest,
}


class Aborted(Exception):
    """A handler ends its call with ``code`` and ``message`` (see :func:`abort`)."""

    def __init__(self, code: grpc.StatusCode, message: str) -> None:
        super().__init__(message)
        self.code = code
        self.message = message


class CallContext:
    """What a handler sees of its call, on the loop or on a worker thread: who calls
    (``peer``, ``invocation_metadata``, ``auth_context``), whether the call is still
    there (``is_active``), and ``abort``, which raises :class:`Aborted` for the plumbing
    to end the call with."""

    def __init__(self, context: grpc.aio.ServicerContext) -> None:
        self._context = context

    def peer(self) -> str:
        """The caller's address."""
        return str(self._context.peer())

    def invocation_metadata(self) -> Any:
        """The call's metadata."""
        return self._context.invocation_metadata()

    def auth_context(self) -> Any:
        """The call's TLS identity (mutual TLS)."""
        return self._context.auth_context()

    def is_active(self) -> bool:
        """False once the call was cancelled or ended."""
        return not self._context.done()

    def abort(self, code: grpc.StatusCode, message: str) -> NoReturn:
        """End the call with ``code`` and ``message`` (raises :class:`Aborted`)."""
        raise Aborted(code, message)


#: A method's handler: ``fn(site, request, context)`` (``request``: the parts of a
#: request-streaming method) returns the reply, or an iterator of replies; a coroutine
#: function's reply is awaited on the loop.
Handler = Callable[[str, Any, CallContext], Any]


def abort(context: CallContext, code: grpc.StatusCode, message: str) -> NoReturn:
    """End the call with ``code`` and ``message``."""
    context.abort(code, message)
    raise AssertionError("unreachable")  # context.abort always raises


def parse(method: str, data: bytes) -> Any:
    """The request message of ``method`` in ``data``; :class:`ProtocolError` if it is none."""
    kind = _REQUESTS[method]
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        raise ProtocolError(f"{method}: not a valid {kind.__name__} ({exc})") from None


class AioGatekeeper(grpc.aio.ServerInterceptor):  # type: ignore[misc]  # grpc has no stubs
    """A :class:`~.gatekeeper.Gatekeeper` as a ``grpc.aio`` server interceptor: unknown
    methods, and calls its ``screen`` refuses, are turned away on the call's headers
    alone, before any body is read, and without a thread."""

    def __init__(self, gatekeeper: Gatekeeper[Any]) -> None:
        self._gatekeeper = gatekeeper

    async def intercept_service(
        self,
        continuation: Callable[[grpc.HandlerCallDetails], Awaitable[grpc.RpcMethodHandler]],
        handler_call_details: grpc.HandlerCallDetails,
    ) -> grpc.RpcMethodHandler:
        refusal = self._gatekeeper.screen_call(handler_call_details)
        if refusal is None:
            return await continuation(handler_call_details)
        method, why = refusal
        release = self._gatekeeper.take_refusal_slot(method, why)
        if release is None:
            return None  # type: ignore[return-value]  # gRPC answers UNIMPLEMENTED itself
        code = grpc.StatusCode[why.code]

        async def refuse(request_iterator: Any, context: grpc.aio.ServicerContext) -> bytes:
            try:
                await context.abort(code, why.why)
            finally:
                release()
            raise AssertionError("unreachable")

        # Request-streaming, so gRPC does not wait for (or buffer) a body before
        # running it; the body is never read.
        return grpc.stream_unary_rpc_method_handler(refuse)


class Plumbing:
    """Makes the job server's handlers into ``grpc.aio`` handlers: ``admit(context,
    method)`` names the calling site (or aborts the call); calls are counted in
    ``state``; the handlers of the methods in ``on_threads`` run on ``pool`` (they may
    block), unless their request is at most ``on_threads[method]`` bytes (a small
    result decodes faster than a thread hop takes); the others run on the loop."""

    def __init__(
        self,
        admit: Callable[[Any, str], str],
        state: ServerState,
        pool: futures.ThreadPoolExecutor,
        on_threads: Mapping[str, int],
    ) -> None:
        self._admit = admit
        self._state = state
        self._pool = pool
        self._on_threads = on_threads
        #: Calls admitted so far, by method (for the server's log: what its sites cost it).
        self.calls: dict[str, int] = {}

    def handler(self, method: str, fn: Handler) -> grpc.RpcMethodHandler:
        """The ``grpc.aio`` handler of ``method``."""
        control = method in _CONTROL_METHODS
        state = self._state
        on_thread = method in self._on_threads
        small = self._on_threads.get(method, -1)  # requests this small run on the loop
        pool = self._pool

        calls = self.calls
        calls[method] = 0

        def begin(request: bytes | None, context: CallContext) -> str:
            site = self._admit(context, method)
            calls[method] += 1  # on the loop: no lock needed
            if control and request is not None and len(request) > MAX_CONTROL_BYTES:
                log.warning("site %s sent a %s request of %d bytes; refused", site, method,
                            len(request))
                abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                      f"{method} requests are limited to {MAX_CONTROL_BYTES} bytes")
            problem = state.begin_call(site, method)
            if problem is not None:
                abort(context, grpc.StatusCode.FAILED_PRECONDITION, problem)
            return site

        def refused(site: str, exc: ProtocolError) -> Aborted:
            log.warning("site %s sent a bad %s request: %s", site, method, exc)
            return Aborted(grpc.StatusCode.INVALID_ARGUMENT, str(exc))

        def reply_bytes(reply: bytes | Message) -> bytes:
            return reply if isinstance(reply, bytes) else reply.SerializeToString()

        async def run(call: Callable[[], Any], size: int = 0) -> Any:
            """``call()`` on the loop, or on a worker thread; a coroutine it returns is awaited."""
            if on_thread and size > small:
                reply = await asyncio.get_running_loop().run_in_executor(pool, call)
            else:
                reply = call()
            if asyncio.iscoroutine(reply):
                reply = await reply
            return reply

        async def ended(context: grpc.aio.ServicerContext, exc: Aborted) -> NoReturn:
            await context.abort(exc.code, exc.message)
            raise AssertionError("unreachable")

        if method in contract.STREAMING_REQUESTS:

            async def handle_stream(requests: AsyncIterator[bytes],
                                    context: grpc.aio.ServicerContext) -> bytes:
                call = CallContext(context)
                try:
                    site = begin(None, call)
                except Aborted as exc:
                    await ended(context, exc)
                try:
                    # The handler (a coroutine function) reads the parts as they arrive.
                    return reply_bytes(await run(lambda: fn(site, _parsed(method, requests), call)))
                except ProtocolError as exc:
                    await ended(context, refused(site, exc))
                except Aborted as exc:
                    await ended(context, exc)
                finally:
                    state.end_call(site)

            return grpc.stream_unary_rpc_method_handler(handle_stream)

        if method in contract.STREAMING_REPLIES:

            async def handle_replies(request: bytes,
                                     context: grpc.aio.ServicerContext) -> AsyncIterator[bytes]:
                call = CallContext(context)
                try:
                    site = begin(request, call)
                except Aborted as exc:
                    await ended(context, exc)
                try:
                    for reply in fn(site, parse(method, request), call):
                        yield reply_bytes(reply)
                except ProtocolError as exc:
                    await ended(context, refused(site, exc))
                except Aborted as exc:
                    await ended(context, exc)
                finally:
                    state.end_call(site)

            return grpc.unary_stream_rpc_method_handler(handle_replies)

        async def handle(request: bytes, context: grpc.aio.ServicerContext) -> bytes:
            call = CallContext(context)
            try:
                site = begin(request, call)
            except Aborted as exc:
                await ended(context, exc)
            try:
                message = parse(method, request)
                return reply_bytes(await run(lambda: fn(site, message, call), len(request)))
            except ProtocolError as exc:
                await ended(context, refused(site, exc))
            except Aborted as exc:
                await ended(context, exc)
            finally:
                state.end_call(site)

        return grpc.unary_unary_rpc_method_handler(handle)


async def _parsed(method: str, parts: AsyncIterator[bytes]) -> AsyncIterator[Any]:
    """The parts of a request-streaming call, parsed one by one as the handler reads them."""
    async for data in parts:
        yield parse(method, data)


class LoopThread:
    """One asyncio event loop on its own thread, for a server that blocking code starts,
    stops and calls into."""

    def __init__(self, name: str) -> None:
        self.loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._run, name=name, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        asyncio.set_event_loop(self.loop)
        self.loop.run_forever()

    def call(self, coro: Awaitable[Any], timeout: float | None = None) -> Any:
        """Run ``coro`` on the loop and return its result (its exception is raised here)."""
        return asyncio.run_coroutine_threadsafe(coro, self.loop).result(timeout)  # type: ignore[arg-type]

    def close(self, timeout: float = 5.0) -> None:
        """Stop the loop and its thread."""
        if self.loop.is_closed():
            return
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            self.loop.close()
