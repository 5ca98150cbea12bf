"""The gatekeeper of a gRPC service: who is calling, and refusing those who may not.

One :class:`Gatekeeper` serves any service; what differs is how a caller's
identity is found, which it is given as callables:

- ``screen(metadata)``: a check on a call's headers alone, run by gRPC as soon as
  they arrive, before any request body is read (the job server's site token);
  optional;
- ``identify(context, method)``: the caller's identity, or a :class:`Refusal`,
  from the whole call (its metadata, its TLS certificate), run on the handler's
  thread before the handler reads the request.

It counts every refusal, logs them without flooding the log (each kind of
reason a few times, then one line every 1000), and bounds the refusals in
progress: beyond :data:`MAX_REFUSALS_IN_FLIGHT` gRPC turns calls away from its
own thread, so neither silent callers nor callers with huge bodies can take the
threads honest callers need. gRPC is imported when a call needs it: a service
that defers gRPC may import this module at its top.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any, Generic, NoReturn, TypeVar

log = logging.getLogger(__name__)

#: Most refusals in progress at once; calls beyond it are turned away by gRPC's
#: own thread without a handler thread (status UNIMPLEMENTED).
MAX_REFUSALS_IN_FLIGHT = 8
#: Refused calls logged one by one for each kind of reason; after that, one line every 1000.
REFUSALS_LOGGED = 10

#: A call's metadata, as gRPC gives it: (key, value) pairs.
Metadata = Sequence[tuple[str, Any]]


@dataclass(frozen=True)
class Refusal:
    """Why a call is refused, and the gRPC status it gets (a ``grpc.StatusCode`` name)."""

    why: str
    code: str = "UNAUTHENTICATED"


@dataclass(frozen=True)
class Refused:
    """One refused call, as told to a gatekeeper's ``report``."""

    method: str
    why: str
    peer: str | None  # the caller's address, when the refusal came from a handler
    count: int  # calls refused so far, this one included


def log_refused(logger: logging.Logger) -> Callable[[Refused], None]:
    """The default ``report``: one warning line on ``logger``."""

    def report(refused: Refused) -> None:
        logger.warning("refused a call to %s: %s (%d refused so far)", refused.method[:100],
                       refused.why, refused.count)

    return report


def _one_kind(why: str) -> str:
    return ""


I = TypeVar("I")  # noqa: E741  # the identity a service's identify callable returns


class Gatekeeper(Generic[I]):
    """Admits a service's calls by the identity ``identify`` finds, refusing the others.

    ``methods``: the full method paths (``/package.Service/Method``) the service
    has; the interceptor refuses any other with UNIMPLEMENTED. ``screen``: see the
    module docstring. ``kind_of(why)``: what a refusal is counted under for the
    log's cap (a caller cycling through names must not get a fresh allowance of
    log lines for each); by default all refusals are one kind. ``report``: told
    of each refusal that is to be logged (by default a warning on this module's
    logger, or on ``logger``).

    Install it as a gRPC server interceptor (``interceptors=[gatekeeper]``) for
    the checks before a body is read, and call :meth:`admit` first in every
    handler.
    """

    def __init__(
        self,
        identify: Callable[[Any, str], I | Refusal],
        *,
        methods: Collection[str],
        screen: Callable[[Metadata], Refusal | None] | None = None,
        kind_of: Callable[[str], str] = _one_kind,
        report: Callable[[Refused], None] | None = None,
        logger: logging.Logger | None = None,
        max_in_flight: int = MAX_REFUSALS_IN_FLIGHT,
        logged_per_kind: int = REFUSALS_LOGGED,
    ) -> None:
        self._identify = identify
        self._methods = frozenset(methods)
        self._screen = screen
        self._kind_of = kind_of
        self._report = report or log_refused(logger or log)
        self._max_in_flight = max_in_flight
        self._logged_per_kind = logged_per_kind
        self._lock = threading.Lock()
        self._in_flight = 0
        #: Calls refused so far (no or bad credentials, unknown method, ...).
        self.refused = 0
        self._by_kind: dict[str, int] = {}

    # ------------------------------------------------------------------ before the body

    def intercept_service(self, continuation: Any, handler_call_details: Any) -> Any:
        """gRPC's interceptor hook: refuse unknown methods, and calls ``screen`` refuses,
        on the call's headers alone."""
        refusal = self.screen_call(handler_call_details)
        if refusal is None:
            return continuation(handler_call_details)
        return self._refuse_early(*refusal)

    def screen_call(self, handler_call_details: Any) -> tuple[str, Refusal] | None:
        """(method, refusal) for a call to an unknown method or one ``screen`` refuses, on
        its headers alone; None for a call that may go on to its handler. (What
        :meth:`intercept_service` checks, for an interceptor of another kind: the job
        server's ``grpc.aio`` one.)"""
        method = str(handler_call_details.method)
        if method not in self._methods:
            return method, Refusal("unknown method", "UNIMPLEMENTED")
        if self._screen is not None:
            refusal = self._screen(handler_call_details.invocation_metadata)
            if refusal is not None:
                return method, refusal
        return None

    def take_refusal_slot(self, method: str, refusal: Refusal) -> Callable[[], None] | None:
        """Count a refusal before the body and take a slot for answering it: the slot's
        release, to call once the call is answered; None when all
        :data:`MAX_REFUSALS_IN_FLIGHT` are taken (gRPC then answers it itself)."""
        if not self._count(method, refusal.why, None, take_slot=True):
            return None

        def release() -> None:
            with self._lock:
                self._in_flight -= 1

        return release

    def _refuse_early(self, method: str, refusal: Refusal) -> Any:
        import grpc

        release = self.take_refusal_slot(method, refusal)
        if release is None:
            return None  # gRPC answers UNIMPLEMENTED from its own thread
        code = grpc.StatusCode[refusal.code]

        def refuse(request_iterator: Any, context: Any) -> bytes:
            try:
                context.abort(code, refusal.why)
            finally:
                release()
            raise AssertionError("unreachable")

        # Request-streaming, so gRPC does not wait for (or buffer) a body before
        # running it; the body is never read.
        return grpc.stream_unary_rpc_method_handler(refuse)

    # ------------------------------------------------------------------ in the handler

    def admit(self, context: Any, method: str) -> I:
        """The caller's identity; else the call is counted, logged and aborted with the
        refusal's status."""
        who = self._identify(context, method)
        if isinstance(who, Refusal):
            self.refuse(context, method, who)
        return who

    def refuse(self, context: Any, method: str, refusal: Refusal) -> NoReturn:
        """Count, log and abort a call a handler refuses (a role without the right, ...)."""
        import grpc

        self.note(method, refusal.why, context)
        context.abort(grpc.StatusCode[refusal.code], refusal.why)
        raise AssertionError("unreachable")  # context.abort always raises

    def note(self, method: str, why: str, context: Any = None) -> None:
        """Count and log a refused call without aborting it (the caller answers it)."""
        self._count(method, why, None if context is None else str(context.peer()))

    # ------------------------------------------------------------------ accounting

    def _count(self, method: str, why: str, peer: str | None, take_slot: bool = False) -> bool:
        """Count a refusal and report it (each kind of reason a few times, never a flood);
        with ``take_slot``, also take a refusal slot: False when none is free."""
        kind = self._kind_of(why)
        with self._lock:
            self.refused += 1
            count = self.refused
            same = self._by_kind[kind] = self._by_kind.get(kind, 0) + 1
            slot = take_slot and self._in_flight < self._max_in_flight
            if slot:
                self._in_flight += 1
        if same <= self._logged_per_kind or same % 1000 == 0:
            self._report(Refused(method, why, peer, count))
        return slot
