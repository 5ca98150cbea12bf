"""FLARE's ``Shareable``: a dict with headers, what a Learner API task takes and returns."""

from __future__ import annotations

from typing import Any

from .fl_constant import ReservedKey, ReturnCode


class ReservedHeaderKey:
    """Header names FLARE reserves."""

    HEADERS = "__headers__"
    RC = ReservedKey.RC
    COOKIE_JAR = ReservedKey.COOKIE_JAR
    PEER_PROPS = "__peer_props__"
    TASK_NAME = ReservedKey.TASK_NAME
    TASK_ID = ReservedKey.TASK_ID
    CONTENT_TYPE = "__content_type__"
    ERROR = "__error__"


class Shareable(dict):  # type: ignore[type-arg]
    """A dict with headers (``get_header``/``set_header``), a return code and cookies."""

    def __init__(self) -> None:
        super().__init__()
        self[ReservedHeaderKey.HEADERS] = {}

    def _headers(self) -> dict[str, Any]:
        headers = self.get(ReservedHeaderKey.HEADERS)
        if not isinstance(headers, dict):
            headers = self[ReservedHeaderKey.HEADERS] = {}
        return headers

    def set_header(self, key: str, value: Any) -> None:
        self._headers()[key] = value

    def get_header(self, key: str, default: Any = None) -> Any:
        return self._headers().get(key, default)

    def get_return_code(self, default: str = ReturnCode.OK) -> Any:
        return self.get_header(ReservedHeaderKey.RC, default)

    def set_return_code(self, rc: str) -> None:
        self.set_header(ReservedHeaderKey.RC, rc)

    def add_cookie(self, name: str, data: Any) -> None:
        jar = self.get_cookie_jar()
        if not jar:
            jar = {}
            self.set_header(ReservedHeaderKey.COOKIE_JAR, jar)
        jar[name] = data

    def get_cookie_jar(self) -> Any:
        return self.get_header(ReservedHeaderKey.COOKIE_JAR)

    def set_cookie_jar(self, jar: Any) -> None:
        self.set_header(ReservedHeaderKey.COOKIE_JAR, jar)

    def get_cookie(self, name: str, default: Any = None) -> Any:
        jar = self.get_cookie_jar()
        return jar.get(name, default) if isinstance(jar, dict) else default

    def set_peer_props(self, props: dict[str, Any]) -> None:
        self.set_header(ReservedHeaderKey.PEER_PROPS, props)

    def get_peer_props(self) -> Any:
        return self.get_header(ReservedHeaderKey.PEER_PROPS)

    def get_peer_prop(self, key: str, default: Any) -> Any:
        props = self.get_peer_props()
        return props.get(key, default) if isinstance(props, dict) else default


def make_reply(rc: str, headers: dict[str, Any] | None = None) -> Shareable:
    """An empty Shareable carrying return code ``rc`` (and ``headers``)."""
    reply = Shareable()
    reply.set_return_code(rc)
    for key, value in (headers or {}).items():
        reply.set_header(key, value)
    return reply
