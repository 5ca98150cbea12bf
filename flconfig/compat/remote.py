"""The Client API across processes: a script in a child process, its site's session in the parent.

The site (parent) listens on 127.0.0.1 for one child at a time and hands the child
the address and a random token in the environment variable ``FLCONFIG_CLIENT_API``;
a connection whose first frame does not carry the token is closed unanswered. Each
``nvflare.client`` call in the child is one request to the parent, answered by the
site's :class:`~flconfig.compat.client_session.ClientAPISession`: the semantics are those
of the in-process API, call for call.

Both sides speak in frames (:mod:`flconfig.common.framing`: a JSON header and a
payload); models travel as flconfig's model encoding (safetensors tensors, JSON meta),
never pickled.

The child is :mod:`flconfig.compat.script_process` (``python -m flconfig.compat.script_process
SCRIPT [ARGS...]``, what the site runs).
"""

from __future__ import annotations

import hmac
import secrets
import socket
import threading
from collections.abc import Callable
from typing import Any

from ..common.framing import ChannelClosed, read_frame, send_frame
from ..types import FLModel as Plain
from .client_session import plain_value
from .nvflare.apis.analytix import AnalyticsDataType
from .nvflare.app_common.abstract.fl_model import FLModel

ENV = "FLCONFIG_CLIENT_API"


# --------------------------------------------------------------------------- models


def encode_flare_model(model: Any) -> tuple[dict[str, Any], bytes]:
    """A FLARE FLModel as (header fields, payload): params in the payload."""
    from ..transport.codec import encode_model

    fields = {
        "params_type": model.params_type.value if model.params_type is not None else None,
        "has_params": model.params is not None,
        "metrics": plain_value(model.metrics),
        "meta": plain_value(model.meta),
        "start_round": model.start_round,
        "current_round": model.current_round,
        "total_rounds": model.total_rounds,
    }
    payload = encode_model(Plain(params=dict(model.params))) if model.params is not None else b""
    return fields, payload


def decode_flare_model(fields: dict[str, Any], payload: bytes) -> Any:
    """The FLARE FLModel :func:`encode_flare_model` sent: tensors come back tensors, arrays
    arrays (the site gives the script the exchange format, and converts what it sends)."""
    from ..transport.codec import decode_model

    params = decode_model(payload).params if fields.get("has_params") else None
    return FLModel(params_type=fields.get("params_type"), params=params, metrics=fields.get("metrics"),
                   start_round=fields.get("start_round"), current_round=fields.get("current_round"),
                   total_rounds=fields.get("total_rounds"), meta=fields.get("meta"))


# --------------------------------------------------------------------------- the site's side


class Bridge:
    """Serves one site's session to its script's process (one connection at a time).

    ``on_closed(reason)`` is called when a connected child goes away.
    """

    def __init__(self, session: Any, on_closed: Callable[[str], None]) -> None:
        self.session = session
        self.token = secrets.token_hex(32)
        self._on_closed = on_closed
        self._server = socket.create_server(("127.0.0.1", 0))
        self._server.settimeout(0.5)
        self.address = self._server.getsockname()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._serve, daemon=True, name="flconfig-client-api-bridge")

    @property
    def env_value(self) -> str:
        host, port = self.address[:2]
        return f"{host}:{port}:{self.token}"

    def start(self, thread_name: str) -> None:
        self._thread.name = thread_name
        self._thread.start()

    def close(self) -> None:
        self._stop.set()
        self._server.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._server.accept()
            except TimeoutError:
                continue
            except OSError:
                return
            with conn:
                conn.settimeout(None)
                reason = self._session_with(conn)
                self._on_closed(reason)  # said before the peer sees the connection close

    def _session_with(self, conn: socket.socket) -> str:
        try:
            conn.settimeout(10)
            hello, _ = read_frame(conn, max_header=4096, max_payload=0)  # nothing big before the token
            if not hmac.compare_digest(str(hello.get("token", "")), self.token):
                return "a connection without the job's token was refused"
            conn.settimeout(None)
            send_frame(conn, {"ok": True})
            while True:
                request, payload = read_frame(conn)
                try:
                    reply, data = self._call(request, payload)
                    send_frame(conn, {"ok": True, **reply}, data)
                except Exception as exc:  # the script gets the error at its call
                    send_frame(conn, {"ok": False, "type": type(exc).__name__, "error": str(exc)})
        except (ChannelClosed, OSError, ValueError) as exc:
            return str(exc) or type(exc).__name__

    def _call(self, request: dict[str, Any], payload: bytes) -> tuple[dict[str, Any], bytes]:
        session, method = self.session, request.get("method")
        if method in ("receive", "is_running"):
            model = session.receive(request.get("timeout")) if method == "receive" else (
                session.receive(None) if session.is_running() else None)
            if method == "is_running":
                return {"value": model is not None}, b""
            if model is None:
                return {"model": None}, b""
            fields, data = encode_flare_model(model)
            return {"model": fields}, data
        if method == "send":
            model = decode_flare_model(request["model"], payload)
            session.send(model, bool(request.get("clear_cache", True)))
            return {}, b""
        if method == "log":
            session.log(request["key"], request["value"], AnalyticsDataType(request["data_type"]),
                        **request.get("kwargs", {}))
            return {}, b""
        if method == "init":
            session.init(request.get("rank"), request.get("config"))
            return {}, b""
        if method in ("is_train", "is_evaluate", "is_submit_model", "get_site_name", "get_job_id",
                      "get_task_name", "get_config", "system_info", "clear"):
            return {"value": getattr(session, method)()}, b""
        raise ValueError(f"unknown Client API call {method!r}")


# --------------------------------------------------------------------------- the script's side


class RemoteSession:
    """What ``nvflare.client`` calls in the script's process: each call asks the site."""

    def __init__(self, address: str) -> None:
        host, port, token = address.rsplit(":", 2)
        self._sock = socket.create_connection((host, int(port)))
        self._lock = threading.Lock()
        send_frame(self._sock, {"token": token})
        reply, _ = read_frame(self._sock)
        if not reply.get("ok"):
            raise RuntimeError("the site refused this process's Client API connection")

    def _ask(self, request: dict[str, Any], payload: bytes = b"") -> tuple[dict[str, Any], bytes]:
        with self._lock:
            send_frame(self._sock, request, payload)
            reply, data = read_frame(self._sock)
        if not reply.get("ok"):
            kinds = {"TypeError": TypeError, "ValueError": ValueError, "ScriptStopped": RuntimeError}
            raise kinds.get(str(reply.get("type")), RuntimeError)(reply.get("error", ""))
        return reply, data

    def _value(self, method: str) -> Any:
        return self._ask({"method": method})[0].get("value")

    def init(self, rank: Any = None, config: Any = None) -> None:
        self._ask({"method": "init", "rank": None if rank is None else str(rank), "config": config})

    def receive(self, timeout: float | None = None) -> Any:
        reply, data = self._ask({"method": "receive", "timeout": timeout})
        fields = reply.get("model")
        return None if fields is None else decode_flare_model(fields, data)

    def is_running(self) -> bool:
        return bool(self._value("is_running"))

    def send(self, model: Any, clear_cache: bool = True) -> None:
        if not isinstance(model, FLModel):
            raise TypeError(f"flare.send() takes an FLModel, got {type(model).__name__}")
        fields, data = encode_flare_model(model)
        self._ask({"method": "send", "model": fields, "clear_cache": clear_cache}, data)

    def log(self, key: str, value: Any, data_type: Any, **kwargs: Any) -> None:
        self._ask({"method": "log", "key": key, "value": plain_value(value),
                   "data_type": getattr(data_type, "value", data_type), "kwargs": plain_value(kwargs)})

    def __getattr__(self, method: str) -> Callable[[], Any]:
        if method in ("is_train", "is_evaluate", "is_submit_model", "get_site_name", "get_job_id",
                      "get_task_name", "get_config", "system_info", "clear"):
            return lambda: self._value(method)
        raise AttributeError(method)

    def close(self) -> None:
        self._sock.close()
