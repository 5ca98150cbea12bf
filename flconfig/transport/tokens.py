"""How the job server finds who is calling: the site name and token in a call's metadata,
and, with mutual TLS, the caller's certificate.

:class:`SiteTokens` gives the job server's :class:`~.gatekeeper.Gatekeeper` its
``screen`` (the token, on the headers alone) and its ``identify`` (the token
again, and the certificate check, on the whole call).
"""

from __future__ import annotations

import hmac
from collections.abc import Callable, Mapping
from typing import Any

from . import contract
from .gatekeeper import Metadata, Refusal

#: ``peer_check(context, site)``: why the caller's certificate does not prove it is
#: ``site``, or None when it does.
PeerCheck = Callable[[Any, str], "str | None"]


def _site_of(metadata: Metadata | None) -> tuple[Any, Any]:
    site = token = None
    for key, value in metadata or ():
        if key == contract.SITE_METADATA:
            site = value
        elif key == contract.TOKEN_METADATA:
            token = value
    return site, token


def refusal_kind(why: str) -> str:
    """What a refusal is counted under for the log's cap: its reason without the site
    named (a caller cycling through site names must not get a fresh allowance of log
    lines for each)."""
    return why.partition(" for site ")[0].partition(" was used ")[0]


class SiteTokens:
    """The sites of a job and their tokens (``credentials``: site name → token), and the
    certificate check ``peer_check`` when the link is mutual TLS."""

    def __init__(self, credentials: Mapping[str, str], peer_check: PeerCheck | None = None) -> None:
        if not credentials:
            raise ValueError("credentials: at least one site is needed")
        self._tokens: dict[str, bytes] = {}
        for site, token in credentials.items():
            contract.check_site_name(site)
            self._tokens[site] = contract.check_token(token, site).encode("ascii")
        self._peer_check = peer_check
        self._dummy_token = b"\0" * 32  # compared against for unknown sites

    @property
    def names(self) -> frozenset[str]:
        """The sites of the job."""
        return frozenset(self._tokens)

    def screen(self, metadata: Metadata | None) -> Refusal | None:
        """None if ``metadata`` authenticates a site of this job, else the refusal."""
        site, token = _site_of(metadata)
        if not isinstance(site, str) or not isinstance(token, str):
            return Refusal("missing site credentials")
        if not contract.is_valid_site_name(site):
            return Refusal("bad credentials")
        expected = self._tokens.get(site)
        given = token.encode("utf-8", "replace")
        matches = hmac.compare_digest(
            given, expected if expected is not None else self._dummy_token
        )
        if expected is None or not matches:
            return Refusal(f"bad credentials for site {site}")
        return None

    def identify(self, context: Any, method: str) -> str | Refusal:
        """The calling site, or the refusal: its credentials, then its certificate."""
        # The gatekeeper already refused anything without valid credentials before the
        # body was read; checked again here so that no handler can ever run unauthenticated.
        metadata = context.invocation_metadata()
        refusal = self.screen(metadata)
        if refusal is not None:
            return refusal
        site, _ = _site_of(metadata)
        assert isinstance(site, str)
        if self._peer_check is not None:
            problem = self._peer_check(context, site)
            if problem is not None:
                return Refusal(problem, "PERMISSION_DENIED")
        return site
