"""The contract of a deployed server's control service, ``flconfig.Deploy``.

Sites and admins call it over mutual TLS on the server's kit port; the caller's
identity and role are its certificate's (see :class:`~flconfig.transport.tls.CertificateGate`).
A message is one frame: ``b"FLCD" | u32 header length | JSON object | blob`` — the
blob carries a job folder or a download (zip archives), never pickle. Jobs' own
traffic (tasks, results, records) goes to the job's :mod:`flconfig.transport`
server, on a port of its own, with the same certificates.

Site methods (a ``client`` certificate):

- ``Poll {jobs: {id: state}}`` → ``{deploy: [...], start: [...], abort: [...]}``, held up
  to :data:`POLL_S` until there is something to do;
- ``FetchJob {job_id}`` → blob: the job folder, as a zip;
- ``Report {job_id, state, reason}``: ``accepted`` / ``refused`` (before a run),
  ``finished`` / ``failed`` (after);
- ``PushLog {job_id, offset}`` + blob: the next bytes of the site's log of the job.

Admin methods (an ``admin`` certificate): ``Submit``, ``Jobs``, ``Abort``, ``Logs``,
``Download`` (streams chunks), ``Shutdown``.
"""

from __future__ import annotations

import json
import struct
from typing import Any

SERVICE = "flconfig.Deploy"
SITE_METHODS = ("Poll", "FetchJob", "Report", "PushLog")
ADMIN_METHODS = ("Submit", "Jobs", "Abort", "Logs", "Download", "Shutdown")
#: Methods whose replies stream (chunks of :data:`CHUNK_BYTES`).
STREAMING_REPLIES = frozenset({"Download"})
MAGIC = b"FLCD"
#: Largest JSON header of a frame.
MAX_HEADER = 1024 * 1024
#: Largest job folder a submission may carry, zipped.
MAX_JOB_BYTES = 256 * 1024 * 1024
#: Largest gRPC message of the service (a job folder plus its header).
MAX_MESSAGE_BYTES = MAX_JOB_BYTES + 2 * MAX_HEADER
CHUNK_BYTES = 4 * 1024 * 1024
#: Longest a site's Poll is held waiting for work.
POLL_S = 10.0
#: Largest piece of a log one PushLog or Logs call carries.
LOG_CHUNK = 1024 * 1024


class FrameError(ValueError):
    """Bytes that are not a frame of this contract."""


def encode(header: dict[str, Any], blob: bytes = b"") -> bytes:
    """One frame: ``header`` as JSON, then ``blob``."""
    data = json.dumps(header, separators=(",", ":")).encode("utf-8")
    return b"".join((MAGIC, struct.pack(">I", len(data)), data, blob))


def decode(frame: bytes) -> tuple[dict[str, Any], bytes]:
    """(header, blob) of ``frame``; :class:`FrameError` if it is not one."""
    if len(frame) < 8 or frame[:4] != MAGIC:
        raise FrameError("not a flconfig deploy frame")
    (size,) = struct.unpack(">I", frame[4:8])
    if size > MAX_HEADER or 8 + size > len(frame):
        raise FrameError("bad frame header length")
    try:
        header = json.loads(frame[8:8 + size].decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise FrameError("the frame header is not JSON") from None
    if not isinstance(header, dict):
        raise FrameError("the frame header is not a JSON object")
    return header, frame[8 + size:]


def method_path(method: str) -> str:
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
