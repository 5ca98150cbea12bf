"""What both ends of the server-site link agree on.

The link is one gRPC service, ``flconfig.Comm``, with six unary methods whose
requests and responses are raw bytes framed by :mod:`.codec` envelopes (no
generated protobuf code). Every call carries two metadata entries,
``flconfig-site`` and ``flconfig-token``; the server authenticates them on each
call and uses the site name as the caller's only identity.

==============  =======================================  ==========================================
method          request envelope header (body)           response envelope header (body)
==============  =======================================  ==========================================
Hello           ``stream``, ``version``                  ``heartbeat_timeout``, ``long_poll``
GetTask         ``wait`` (seconds the server may hold)   ``kind``: none | task | end; for a task
                                                         ``name``, ``task_id`` (body: model frame)
SubmitResult    ``task_id`` (body: model frame)          ``accepted``
Heartbeat       (empty)                                  ``ended``
SendEvents      ``stream`` (body: record batch)          ``ack``: highest seq delivered
Bye             (empty)                                  (empty)
==============  =======================================  ==========================================
"""

from __future__ import annotations

import re

SERVICE = "flconfig.Comm"
METHODS = ("Hello", "GetTask", "SubmitResult", "Heartbeat", "SendEvents", "Bye")
SITE_METADATA = "flconfig-site"
TOKEN_METADATA = "flconfig-token"

SITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_SITE_NAME = 128

#: Longest time the server holds a GetTask call open waiting for a task (at most half
#: its heartbeat timeout). A task, the end of the run, the server stopping and the
#: caller going away all answer a waiting call at once; a short poll only costs a
#: thousand sites a thousand calls a second.
LONG_POLL_S = 20.0


def method_path(method: str) -> str:
    """The full gRPC path of one of :data:`METHODS`."""
    return f"/{SERVICE}/{method}"


def is_valid_site_name(name: object) -> bool:
    """True when ``name`` may name a site (and so a directory on the server)."""
    return (
        isinstance(name, str)
        and len(name) <= _MAX_SITE_NAME
        and SITE_NAME_RE.fullmatch(name) is not None
    )


def check_site_name(name: object) -> str:
    """Return ``name`` if it is a valid site name, else raise ``ValueError`` saying why."""
    if not is_valid_site_name(name):
        raise ValueError(
            f"bad site name {name!r}: use letters, digits, '.', '_' and '-', "
            f"starting with a letter or digit, at most {_MAX_SITE_NAME} characters"
        )
    return name  # type: ignore[return-value]


def check_token(token: object, site: str) -> str:
    """Return ``token`` if it can travel as gRPC metadata, else raise ``ValueError``."""
    if not isinstance(token, str) or not token or not all(" " < c < "\x7f" for c in token):
        raise ValueError(
            f"the token of site {site!r} must be a non-empty string of printable ASCII"
        )
    return token


def channel_options(max_message_mb: int) -> list[tuple[str, int]]:
    """gRPC options shared by both ends: message size limit, fast reconnects, keepalive."""
    limit = int(max_message_mb) * 1024 * 1024
    return [
        ("grpc.max_send_message_length", limit),
        ("grpc.max_receive_message_length", limit),
        # A site may start before the server: retry the connection quickly
        # instead of gRPC's default backoff, which grows to two minutes.
        ("grpc.initial_reconnect_backoff_ms", 100),
        ("grpc.min_reconnect_backoff_ms", 100),
        ("grpc.max_reconnect_backoff_ms", 1000),
        # Detect a silently dead peer in distributed mode.
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
    ]


def client_options(max_message_mb: int) -> list[tuple[str, int]]:
    """gRPC channel options of a site: the shared ones plus a connection of its own."""
    # gRPC shares one TCP connection among a process's channels to the same
    # address by default; a site's connection must drop and recover on its own.
    return [*channel_options(max_message_mb), ("grpc.use_local_subchannel_pool", 1)]


def server_options(max_message_mb: int) -> list[tuple[str, int]]:
    """gRPC server options: the shared ones plus accepting the clients' keepalive pings."""
    return [
        *channel_options(max_message_mb),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.so_reuseport", 0),
    ]
