"""The transport's small parts on their own: the generic gatekeeper (with an identity found
some other way than the job server's tokens) and the retry policy."""

from __future__ import annotations

import logging
import math
from types import SimpleNamespace
from typing import Any

import grpc
import pytest

from flconfig.transport.gatekeeper import Gatekeeper, Refusal, Refused
from flconfig.transport.retry import RetryPolicy


class _Aborted(Exception):
    pass


class _Context:
    """Just enough of a grpc.ServicerContext: who is calling, and abort."""

    def __init__(self, caller: str) -> None:
        self.caller = caller
        self.aborted: tuple[Any, str] | None = None

    def peer(self) -> str:
        return "ipv4:10.0.0.1:5000"

    def abort(self, code: Any, details: str) -> None:
        self.aborted = (code, details)
        raise _Aborted(details)


def _by_certificate(context: Any, method: str) -> str | Refusal:
    """An identity as a certificate would give it (the deploy service's way)."""
    if context.caller.startswith("revoked:"):
        return Refusal(f"the certificate of {context.caller[8:]!r} is revoked", "PERMISSION_DENIED")
    return context.caller


def test_a_gatekeeper_admits_by_the_identity_its_callable_finds() -> None:
    reports: list[Refused] = []
    gate: Gatekeeper[str] = Gatekeeper(_by_certificate, methods=["/svc/Poll"], report=reports.append)
    assert gate.admit(_Context("site-1"), "Poll") == "site-1"
    assert gate.refused == 0
    context = _Context("revoked:site-2")
    with pytest.raises(_Aborted):
        gate.admit(context, "Poll")
    assert context.aborted == (grpc.StatusCode.PERMISSION_DENIED, "the certificate of 'site-2' is revoked")
    assert gate.refused == 1
    assert reports == [Refused("Poll", "the certificate of 'site-2' is revoked", "ipv4:10.0.0.1:5000", 1)]
    # A later refusal of the handler's own (a role without the right) is counted the same way.
    with pytest.raises(_Aborted):
        gate.refuse(_Context("admin"), "Abort", Refusal("not allowed", "FAILED_PRECONDITION"))
    assert gate.refused == 2 and reports[-1].why == "not allowed"


def test_refusals_are_logged_a_few_times_per_kind_then_once_every_thousand(
    caplog: pytest.LogCaptureFixture,
) -> None:
    gate: Gatekeeper[str] = Gatekeeper(
        _by_certificate, methods=[], kind_of=lambda why: why.split(" of ")[0],
        logger=logging.getLogger("test.gatekeeper"), logged_per_kind=3,
    )  # fmt: skip
    with caplog.at_level("WARNING", logger="test.gatekeeper"):
        for i in range(1000):
            gate.note("Poll", f"the certificate of 'site-{i}' is revoked")
        gate.note("Poll", "another reason")
    lines = [r.getMessage() for r in caplog.records if r.name == "test.gatekeeper"]
    assert len(lines) == 3 + 1 + 1  # 3 of the first kind, its 1000th, the other kind
    assert lines[0] == "refused a call to Poll: the certificate of 'site-0' is revoked (1 refused so far)"
    assert gate.refused == 1001


def test_the_interceptor_refuses_unknown_methods_and_what_screen_refuses() -> None:
    gate: Gatekeeper[str] = Gatekeeper(
        _by_certificate, methods=["/svc/Poll"], max_in_flight=1,
        screen=lambda metadata: None if ("key", "ok") in metadata else Refusal("no key"),
    )  # fmt: skip
    admitted = object()

    def details(method: str, metadata: tuple[tuple[str, str], ...]) -> Any:
        return SimpleNamespace(method=method, invocation_metadata=metadata)

    assert gate.intercept_service(lambda d: admitted, details("/svc/Poll", (("key", "ok"),))) is admitted
    refusing = gate.intercept_service(lambda d: admitted, details("/svc/Poll", ()))
    assert refusing is not None and refusing is not admitted
    # The one refusal slot is taken until that refusal has run: the next is turned away by gRPC.
    assert gate.intercept_service(lambda d: admitted, details("/svc/Other", ())) is None
    context = _Context("x")
    with pytest.raises(_Aborted):
        refusing.stream_unary(iter(()), context)
    assert context.aborted == (grpc.StatusCode.UNAUTHENTICATED, "no key")
    refusing = gate.intercept_service(lambda d: admitted, details("/svc/Other", ()))
    with pytest.raises(_Aborted):
        refusing.stream_unary(iter(()), context)
    assert context.aborted == (grpc.StatusCode.UNIMPLEMENTED, "unknown method")
    assert gate.refused == 3


def test_the_retry_policy_says_what_is_retried_and_how() -> None:
    policy = RetryPolicy()
    assert policy.is_retryable(grpc.StatusCode.UNAVAILABLE)
    assert policy.is_retryable("DEADLINE_EXCEEDED")
    assert not policy.is_retryable(grpc.StatusCode.UNAUTHENTICATED)
    backoff = policy.backoff()
    assert [backoff.next() for _ in range(7)] == [0.05, 0.1, 0.2, 0.4, 0.8, 1.0, 1.0]
    backoff.reset()
    assert backoff.next() == 0.05
    assert policy.within(0.01).backoff().exhausted()  # the first wait already ends too late
    assert not RetryPolicy(deadline=math.inf).backoff().exhausted()
    slow = RetryPolicy(first_delay=1.0, max_delay=30.0, deadline=math.inf).backoff()
    assert [slow.next() for _ in range(7)] == [1, 2, 4, 8, 16, 30, 30]
    with pytest.raises(ValueError):
        RetryPolicy(first_delay=2.0, max_delay=1.0)
