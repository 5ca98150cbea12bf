"""The contract of a deployed server's control service, ``flconfig.deploy.Deploy``.

The messages and the service are declared in ``deploy.proto`` beside this module
(``deploy_pb2`` and ``deploy_pb2_grpc`` are generated from it by ``make proto``, and
committed). Sites and admins call it over mutual TLS on the server's kit port; the
caller's identity and role are its certificate's (see
:class:`~flconfig.transport.tls.CertificateGate`). Job folders and downloads travel as
zip archives in ``bytes`` fields, logs as raw bytes; never pickle. Jobs' own traffic
(tasks, results, records) goes to the job's :mod:`flconfig.transport` server, on a port
of its own, with the same certificates.

Site methods (a ``client`` certificate): ``Poll`` (held up to :data:`POLL_S` until there
is something to do), ``FetchJob`` (the job folder, zipped), ``Report`` (``accepted`` /
``refused`` before a run, ``finished`` / ``failed`` after), ``PushLog`` (the next bytes
of the site's log of a job).

Admin methods (an ``admin`` certificate): ``Submit``, ``Jobs``, ``Abort``, ``Logs``,
``Download`` (streams chunks of :data:`CHUNK_BYTES`), ``Shutdown``.

Both ends read each other's messages with :func:`parse`: bytes that are not the
message expected are a :class:`MessageError`, said in one line.
"""

from __future__ import annotations

from typing import TypeVar

from google.protobuf.message import DecodeError, Message

from . import deploy_pb2 as pb

SERVICE = pb.DESCRIPTOR.services_by_name["Deploy"].full_name
SITE_METHODS = ("Poll", "FetchJob", "Report", "PushLog")
ADMIN_METHODS = ("Submit", "Jobs", "Abort", "Logs", "Download", "Shutdown")
#: Methods whose replies stream (chunks of :data:`CHUNK_BYTES`).
STREAMING_REPLIES = frozenset({"Download"})
#: Room for a message's fields besides its bytes.
MAX_HEADER = 1024 * 1024
#: Largest job folder a submission may carry, zipped.
MAX_JOB_BYTES = 256 * 1024 * 1024
#: Largest gRPC message of the service (a job folder plus its other fields).
MAX_MESSAGE_BYTES = MAX_JOB_BYTES + 2 * MAX_HEADER
CHUNK_BYTES = 4 * 1024 * 1024
#: Longest a site's Poll is held waiting for work.
POLL_S = 10.0
#: Largest piece of a log one PushLog or Logs call carries.
LOG_CHUNK = 1024 * 1024

_METHODS = pb.DESCRIPTOR.services_by_name["Deploy"].methods
#: The request message of each method (read from deploy.proto's service).
REQUESTS: dict[str, type[Message]] = {m.name: getattr(pb, m.input_type.name) for m in _METHODS}
#: The reply message of each method (of each reply, for a streaming one).
REPLIES: dict[str, type[Message]] = {m.name: getattr(pb, m.output_type.name) for m in _METHODS}

M = TypeVar("M", bound=Message)


class MessageError(ValueError):
    """Bytes that are not the message of this contract they should be."""


def parse(kind: type[M], data: bytes) -> M:
    """The message ``kind`` in ``data``; :class:`MessageError` if they hold none."""
    try:
        return kind.FromString(data)
    except DecodeError as exc:
        raise MessageError(f"not a valid {kind.__name__} ({exc})") from None


def method_path(method: str) -> str:
    """The gRPC path of ``method`` of the service."""
    return f"/{SERVICE}/{method}"


def options() -> list[tuple[str, int]]:
    """gRPC options of both ends of the control service."""
    return [
        ("grpc.max_send_message_length", MAX_MESSAGE_BYTES),
        ("grpc.max_receive_message_length", MAX_MESSAGE_BYTES),
        ("grpc.initial_reconnect_backoff_ms", 500),
        ("grpc.min_reconnect_backoff_ms", 500),
        ("grpc.max_reconnect_backoff_ms", 5000),
        ("grpc.keepalive_time_ms", 30_000),
        ("grpc.keepalive_timeout_ms", 10_000),
        ("grpc.keepalive_permit_without_calls", 1),
        ("grpc.http2.min_recv_ping_interval_without_data_ms", 10_000),
        ("grpc.use_local_subchannel_pool", 1),
        # A second server on a port in use fails to bind instead of sharing it (gRPC sets
        # SO_REUSEPORT by default, and two services would then split the calls).
        ("grpc.so_reuseport", 0),
    ]


def required(value: str, name: str) -> str:
    """``value`` of the field ``name`` of a request; ValueError if it is not given."""
    if not value:
        raise ValueError(f"no {name}")
    return value
