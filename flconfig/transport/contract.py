"""What both ends of the server-site link agree on.

The messages and the service are defined in ``flconfig.proto`` beside this
module (``flconfig_pb2`` and ``flconfig_pb2_grpc`` are generated from it, and
committed): one gRPC service, ``flconfig.Comm``. Every call carries two
metadata entries, ``flconfig-site`` and ``flconfig-token``; the server
authenticates them on each call and uses the site name as the caller's only
identity. Models travel as model frames and event records as record batches
(:mod:`.codec`), inside ``bytes`` fields.

A model frame of at most :data:`CHUNK_BYTES` travels inside its task or
result message; a larger one is streamed in chunks of that size
(``FetchModel``, ``PushResult``), so the size of a model is capped only by
``max_model_mb``, never by the gRPC message limit ``max_message_mb``.

This module imports neither gRPC nor protobuf: site-name rules and constants
are used by parts that must stay light.
"""

from __future__ import annotations

import json
import re

#: How records are encoded on the wire (compact UTF-8 JSON); the codec writes with it, and
#: :func:`flconfig.tracking.records.check_size` measures with it.
JSON_ENCODER = json.JSONEncoder(ensure_ascii=False, separators=(",", ":"))
#: Largest record, encoded as it travels; the transport refuses bigger ones, so the
#: sender refuses them at the call.
MAX_RECORD_BYTES = 4 * 1024 * 1024

SERVICE = "flconfig.Comm"
#: The service's methods, as ``flconfig.proto`` declares them (a test keeps the two equal).
METHODS = (
    "Hello", "GetTask", "FetchModel", "SubmitResult", "PushResult", "Heartbeat", "SendEvents",
    "Bye", "PollTasks",
)  # fmt: skip
#: Methods whose requests stream (the body arrives in parts).
STREAMING_REQUESTS = frozenset({"PushResult"})
#: Methods whose replies stream.
STREAMING_REPLIES = frozenset({"FetchModel"})
#: The protocol version a site states in its Hello; the server refuses any other.
PROTOCOL_VERSION = 2
#: Model frames larger than this are streamed in chunks of this size.
CHUNK_BYTES = 4 * 1024 * 1024
#: Default and smallest gRPC message limit: a chunk or a record batch (at most
#: 4 MiB) plus its message fields must fit.
DEFAULT_MAX_MESSAGE_MB = 16
MIN_MAX_MESSAGE_MB = 8
#: Default largest model frame a server or site sends or accepts (16 GiB).
DEFAULT_MAX_MODEL_MB = 16 * 1024
SITE_METADATA = "flconfig-site"
TOKEN_METADATA = "flconfig-token"

#: What a poll group's id may be (HelloRequest.poll_group): a worker's random secret.
POLL_GROUP_RE = re.compile(r"^[A-Za-z0-9_-]{16,64}$")

SITE_NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
_MAX_SITE_NAME = 128

#: Longest time the server holds a GetTask call open waiting for a task (at most half
#: its heartbeat timeout). A task, the end of the run, the server stopping and the
#: caller going away all answer a waiting call at once; a short poll only costs a
#: thousand sites a thousand calls a second.
LONG_POLL_S = 20.0
#: Largest SubmitResult (result and records) held while the server waits for the site's
#: next task: gRPC keeps the request on both ends until the call ends, and a thousand
#: sites' results kept through a round would cost more memory than the GetTask they
#: save (a CNN's 40 KB results: +400 MB at 1,024 sites). Larger ones are answered at once.
WAIT_WITH_RESULT_BYTES = 8 * 1024


def wire_bytes_field(number: int, data: bytes | memoryview) -> bytes:
    """``data`` serialised as the protobuf ``bytes`` field ``number`` (tag, length, data).

    Concatenated serialised fields form a serialised message, so a model chunk
    can be framed with one copy of its data instead of three.
    """
    length = len(data)
    prefix = bytearray([(number << 3) | 2])  # wire type 2: length-delimited
    while length >= 0x80:
        prefix.append((length & 0x7F) | 0x80)
        length >>= 7
    prefix.append(length)
    return b"".join((prefix, data))


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


def check_limits(max_message_mb: int, max_model_mb: int) -> None:
    """Raise ``ValueError`` unless the two size limits are whole numbers in range."""
    if type(max_message_mb) is not int or max_message_mb < MIN_MAX_MESSAGE_MB:
        raise ValueError(f"max_message_mb must be an int >= {MIN_MAX_MESSAGE_MB}")
    if type(max_model_mb) is not int or max_model_mb < 1:
        raise ValueError("max_model_mb must be an int >= 1")


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
        # Calls that arrive faster than the server takes them up wait in gRPC's core; by
        # default it cancels those beyond 1,000, and thousands of sites polling at once
        # (a round's start) exceed that.
        ("grpc.server.max_pending_requests", 1 << 20),
        ("grpc.server.max_pending_requests_hard_limit", 1 << 20),
    ]
