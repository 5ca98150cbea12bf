"""The job server's gRPC plumbing: a plain handler ``fn(site, request, context)`` made
into the gRPC handler of its method.

Each call is admitted (the caller's site, by the gatekeeper), bounded (control
methods take small requests only), counted as the site's call while it runs
(so a site busy in a call is never taken for lost), its request parsed, and its
reply serialised. No (de)serializers are given to gRPC: requests arrive as bytes
and are parsed here, so a malformed message is refused with INVALID_ARGUMENT and
one log line, like any other bad request, never a traceback.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

import grpc
from google.protobuf.message import DecodeError, Message

from . import contract
from . import flconfig_pb2 as pb
from .codec import ProtocolError
from .state import ServerState

log = logging.getLogger(__name__)

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

#: A method's handler: ``fn(site, request, context)`` (``request``: the parts of a
#: request-streaming method) returns the reply, or an iterator of replies.
Handler = Callable[[str, Any, grpc.ServicerContext], Any]


def abort(context: grpc.ServicerContext, code: grpc.StatusCode, message: str) -> NoReturn:
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


def method_handler(
    method: str,
    fn: Handler,
    admit: Callable[[grpc.ServicerContext, str], str],
    state: ServerState,
) -> Any:
    """The gRPC handler of ``method``: ``admit(context, method)`` names the calling site
    (or aborts the call), then the call is bounded, counted in ``state``, parsed and
    given to ``fn``."""
    control = method in _CONTROL_METHODS

    def begin(request: bytes | None, context: grpc.ServicerContext) -> str:
        site = admit(context, method)
        if control and request is not None and len(request) > MAX_CONTROL_BYTES:
            log.warning("site %s sent a %s request of %d bytes; refused", site, method,
                        len(request))
            abort(context, grpc.StatusCode.INVALID_ARGUMENT,
                  f"{method} requests are limited to {MAX_CONTROL_BYTES} bytes")
        problem = state.begin_call(site, method)
        if problem is not None:
            abort(context, grpc.StatusCode.FAILED_PRECONDITION, problem)
        return site

    def refuse(site: str, context: grpc.ServicerContext, exc: ProtocolError) -> NoReturn:
        log.warning("site %s sent a bad %s request: %s", site, method, exc)
        abort(context, grpc.StatusCode.INVALID_ARGUMENT, str(exc))

    def reply_bytes(reply: bytes | Message) -> bytes:
        return reply if isinstance(reply, bytes) else reply.SerializeToString()

    if method in contract.STREAMING_REQUESTS:

        def handle_stream(requests: Iterator[bytes], context: grpc.ServicerContext) -> bytes:
            site = begin(None, context)
            try:
                parts = (parse(method, data) for data in requests)
                return reply_bytes(fn(site, parts, context))
            except ProtocolError as exc:
                refuse(site, context, exc)
            finally:
                state.end_call(site)

        return grpc.stream_unary_rpc_method_handler(handle_stream)

    if method in contract.STREAMING_REPLIES:

        def handle_replies(request: bytes, context: grpc.ServicerContext) -> Iterator[bytes]:
            site = begin(request, context)
            try:
                for reply in fn(site, parse(method, request), context):
                    yield reply_bytes(reply)
            except ProtocolError as exc:
                refuse(site, context, exc)
            finally:
                state.end_call(site)

        return grpc.unary_stream_rpc_method_handler(handle_replies)

    def handle(request: bytes, context: grpc.ServicerContext) -> bytes:
        site = begin(request, context)
        try:
            return reply_bytes(fn(site, parse(method, request), context))
        except ProtocolError as exc:
            refuse(site, context, exc)
        finally:
            state.end_call(site)

    return grpc.unary_unary_rpc_method_handler(handle)
