"""How a caller retries a gRPC call: which failures are worth another try, how long it
waits between tries, and for how long it keeps trying.

One :class:`RetryPolicy` says all three; :meth:`RetryPolicy.backoff` gives the
schedule of one series of tries. The site's link (:mod:`.link`) and the blocking
client over it (:mod:`.client`) retry by it. Status codes are named, not
imported: this module does not import gRPC.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field, replace
from typing import Any

#: Worth another try: the connection dropped, the server is (re)starting, or the
#: caller closed the channel itself to reconnect.
RETRYABLE_CODES: frozenset[str] = frozenset({"UNAVAILABLE", "CANCELLED", "DEADLINE_EXCEEDED"})


class Retryable(Exception):
    """A call failed in a way worth retrying (the message says how)."""


@dataclass(frozen=True)
class RetryPolicy:
    """Which failures are retried, the backoff between tries, and how long to keep trying.

    The wait starts at ``first_delay`` seconds and grows by ``factor`` up to
    ``max_delay``; a series of tries gives up once the next wait would end more
    than ``deadline`` seconds after the first try (``math.inf``: never; a caller
    that retries until told to stop just does not ask).
    """

    #: Names of the ``grpc.StatusCode`` values worth another try.
    retryable: frozenset[str] = field(default=RETRYABLE_CODES)
    first_delay: float = 0.05
    max_delay: float = 1.0
    factor: float = 2.0
    deadline: float = 60.0

    def __post_init__(self) -> None:
        if not 0 < self.first_delay <= self.max_delay:
            raise ValueError("RetryPolicy: need 0 < first_delay <= max_delay")
        if self.factor < 1:
            raise ValueError("RetryPolicy: factor must be >= 1")
        if not self.deadline >= 0:
            raise ValueError("RetryPolicy: deadline must be >= 0")

    def is_retryable(self, code: Any) -> bool:
        """Whether a call that failed with ``code`` (a ``grpc.StatusCode`` or its name)
        is worth another try."""
        return str(getattr(code, "name", code)) in self.retryable

    def within(self, deadline: float) -> RetryPolicy:
        """The same policy, giving up after ``deadline`` seconds."""
        return replace(self, deadline=float(deadline))

    def backoff(self) -> Backoff:
        """The schedule of one series of tries, starting now."""
        return Backoff(self)


class Backoff:
    """One series of tries under a :class:`RetryPolicy`: the next wait, and whether
    the series has run out of time."""

    def __init__(self, policy: RetryPolicy) -> None:
        self.policy = policy
        self.started = time.monotonic()
        #: The wait before the next try.
        self.delay = policy.first_delay

    def next(self) -> float:
        """The wait before the next try; the one after is longer (up to ``max_delay``)."""
        delay = self.delay
        self.delay = min(delay * self.policy.factor, self.policy.max_delay)
        return delay

    def reset(self) -> None:
        """Start again from ``first_delay`` (a try succeeded)."""
        self.started = time.monotonic()
        self.delay = self.policy.first_delay

    def exhausted(self) -> bool:
        """Whether the next wait would end past the policy's deadline."""
        return time.monotonic() - self.started + self.delay > self.policy.deadline
