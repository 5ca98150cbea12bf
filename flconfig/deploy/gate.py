"""Who may call a deployed server's control service, and each call's handling around it.

:class:`DeployGate` holds all of the service's gatekeeping in one place. Who the caller
is — a site's or an admin's certificate, the admin's role against the method's right —
is found by the one :class:`~flconfig.transport.gatekeeper.Gatekeeper` the job server
uses too, given this service's way of finding identity; it also counts and logs the
refusals and turns away unknown methods before a body is read. Here: one instance of a
site at a time (its ``session``), each call's request bytes into its message
(:mod:`.wire`), and the errors of its handler into one-line gRPC statuses, never a
traceback.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterator
from typing import Any, NoReturn

from google.protobuf.message import Message

from ..errors import FlconfigError, storage_message
from ..transport.gatekeeper import Gatekeeper, Refusal, Refused
from ..transport.tls import CertificateGate
from . import authz, wire
from . import store as st
from .provision import DEFAULT_ROLE
from .state import Board

log = logging.getLogger(__name__)
_REFUSALS_LOGGED = 20
#: A site's instance (its ``session``) counts as gone once it has no poll open and made no
#: call for this many seconds; another instance of the site may then take its place.
SESSION_GONE_S = 15.0

#: A call's handler: (the caller, its request, the gRPC context) -> its reply (replies,
#: for a streaming method). The caller is a site's name or an :class:`authz.Admin`.
Handler = Callable[[Any, Any, Any], Any]


class DeployGate:
    """The gatekeeping of the control service (see the module docstring)."""

    def __init__(self, certificates: CertificateGate, org: str, board: Board,
                 say: Callable[[str], None]) -> None:
        self._certificates = certificates
        self._org = org  # the server's: an org_admin's rights are on its own org's sites
        self._board = board
        self._say = say  # a line to the operator, as is
        #: site -> (the session of the instance that speaks for it, when it last called)
        self._sessions: dict[str, tuple[str, float]] = {}
        self.gatekeeper: Gatekeeper[str | authz.Admin] = Gatekeeper(
            self._identify,
            methods=[wire.method_path(m) for m in (*wire.SITE_METHODS, *wire.ADMIN_METHODS)],
            report=self._report, logged_per_kind=_REFUSALS_LOGGED)

    def _identify(self, context: Any, method: str) -> str | authz.Admin | Refusal:
        """The caller: a site's name, or an admin (name, org, role) whose role allows the
        call (the rights on one job are checked by the call itself); else why not."""
        role = "admin" if method in wire.ADMIN_METHODS else "client"
        ident, why = self._certificates.check(context, role)
        if ident is None:
            return Refusal(why, "PERMISSION_DENIED")
        if role != "admin":
            return ident.name
        admin = authz.Admin(ident.name, ident.org, ident.role or DEFAULT_ROLE)
        right = authz.RIGHT_OF[method]
        if right in (authz.SUBMIT, authz.VIEW, authz.OPERATE):
            refused = authz.refusal(admin, right, site_org=self._org)
            if refused is not None:
                return Refusal(refused, "PERMISSION_DENIED")
        return admin

    def _report(self, refused: Refused) -> None:
        peer = refused.peer or "?"  # a refusal before the body is read has no handler's peer
        log.warning("refused %s from %s: %s (%d refused so far)", refused.method, peer, refused.why,
                    refused.count)
        self._say(f"flconfig server: refused {refused.method} from {peer}: {refused.why}")

    def handler(self, method: str, fn: Handler) -> Any:
        """The gRPC handler of ``method``, calling ``fn`` once the caller may (a site's
        method's callers are sites, an admin method's admins)."""
        import grpc

        request_kind = wire.REQUESTS[method]

        def bad(context: Any, why: str) -> NoReturn:
            context.abort(grpc.StatusCode.INVALID_ARGUMENT, why)
            raise AssertionError("unreachable")

        def begin(request: bytes, context: Any) -> tuple[Any, Message]:
            caller = self.gatekeeper.admit(context, method)
            try:
                message = wire.parse(request_kind, request)
            except wire.MessageError as exc:
                log.warning("%s from %s: %s", method, getattr(caller, "name", caller), exc)
                bad(context, f"bad {method} request: {exc}")
            if isinstance(caller, str):  # a site
                why = self.session_refusal(caller, getattr(message, "session", ""))
                if why is not None:
                    self.gatekeeper.refuse(context, method, Refusal(why, "FAILED_PRECONDITION"))
            return caller, message

        if method in wire.STREAMING_REPLIES:
            def stream(request: bytes, context: Any) -> Iterator[bytes]:
                caller, message = begin(request, context)
                for reply in fn(caller, message, context):
                    yield reply.SerializeToString()

            return grpc.unary_stream_rpc_method_handler(stream)

        def unary(request: bytes, context: Any) -> bytes:
            caller, message = begin(request, context)
            name = getattr(caller, "name", caller)
            try:
                reply: Message = fn(caller, message, context)
            except (KeyError, TypeError, ValueError) as exc:
                log.warning("%s from %s: bad request (%s)", method, name, exc)
                bad(context, f"bad {method} request: {exc}")
            except st.StoreError as exc:  # the job store's disk: one line, and an answer
                log.error("%s from %s failed: %s", method, name, exc)
                context.abort(grpc.StatusCode.UNAVAILABLE, str(exc))
            except FlconfigError as exc:  # e.g. a stored job that cannot be packed
                log.warning("%s from %s: %s", method, name, exc)
                context.abort(grpc.StatusCode.FAILED_PRECONDITION, str(exc))
            except OSError as exc:  # the server's disk: full, or a folder it cannot write
                why = storage_message(exc, self._board.workspace)
                log.error("%s from %s failed: %s", method, name, why)
                context.abort(grpc.StatusCode.RESOURCE_EXHAUSTED, why)
            return reply.SerializeToString()

        return grpc.unary_unary_rpc_method_handler(unary)

    def session_refusal(self, site: str, session: str) -> str | None:
        """Why this call of ``site`` comes from an instance that may not speak for it (another
        instance of the site, with its certificate, is connected), or None. One instance at
        a time: two would race on the same jobs. The one connected keeps its place until it
        has been gone for SESSION_GONE_S."""
        session = str(session or "")
        now = time.monotonic()
        with self._board.lock:
            current = self._sessions.get(site)
            if current is None or current[0] == session:
                self._sessions[site] = (session, now)
                return None
            other, seen = current
            if self._board.polling.get(site) or now - seen < SESSION_GONE_S:
                ago = now - seen
                return (f"{site} is already connected from another instance (its last call {ago:.0f} s ago); "
                        "one instance of a site at a time: this one waits until the other has stopped "
                        f"for {SESSION_GONE_S:g} s")
            self._sessions[site] = (session, now)
        self._board.say(f"site {site}: a new instance took over from one gone for {now - seen:.0f} s")
        return None

    def refused(self, method: str, context: Any, why: str) -> None:
        """Count and log a call of ``method`` a handler refuses itself (a job the admin has no
        right on): the gatekeeper's accounting, the handler answers it."""
        self.gatekeeper.note(method, why, context)
