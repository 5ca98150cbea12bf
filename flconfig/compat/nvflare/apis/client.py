"""FLARE's ``Client``: a site as the server's workflows see it."""

from __future__ import annotations


class Client:
    """A connected site: ``name`` (and FLARE's ``token``, here the name too)."""

    def __init__(self, name: str, token: str | None = None) -> None:
        self.name = name
        self.token = token or name
        self.props: dict = {}  # type: ignore[type-arg]

    def get_fqsn(self) -> str:
        return self.name

    def __repr__(self) -> str:
        return f"Client({self.name!r})"
