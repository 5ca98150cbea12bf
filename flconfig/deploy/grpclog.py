"""Refused TLS connections, logged as what they are.

gRPC refuses a caller without a certificate of the project CA (none, another CA's,
an expired one) during the TLS handshake, before any handler runs, and says so
only in its own log on the process's stderr. :func:`watch_handshakes` passes
that stream through and turns each failed handshake into one line saying why.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from collections.abc import Callable

_REASONS = (
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the caller sent no certificate"),
    ("CERTIFICATE_EXPIRED", "its certificate has expired"),
    ("certificate has expired", "its certificate has expired"),
    ("CERTIFICATE_VERIFY_FAILED", "its certificate is not signed by the project CA"),
    ("BAD_SIGNATURE", "its certificate is not signed by the project CA"),
    ("unable to get local issuer", "its certificate is not signed by the project CA"),
    ("WRONG_VERSION_NUMBER", "it does not speak TLS"),
    ("HTTP_REQUEST", "it does not speak TLS"),
)
_HANDSHAKE = re.compile(r"Handshake failed", re.IGNORECASE)


def reason_of(line: str) -> str:
    """Why a gRPC handshake-failure line says the connection was refused."""
    for marker, why in _REASONS:
        if marker in line:
            return why
    return line.rsplit(":", 1)[-1].strip()[:200] or "TLS handshake failed"


def watch_handshakes(report: Callable[[str], None]) -> None:
    """Pass the process's stderr (fd 2) through a pipe, calling ``report(reason)`` for
    each failed TLS handshake gRPC logs there; other lines go on to stderr unchanged."""
    read_fd, write_fd = os.pipe()
    original = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as source, os.fdopen(original, "wb", buffering=0) as sink:
            for raw in source:
                line = raw.decode("utf-8", "replace")
                if _HANDSHAKE.search(line):
                    report(reason_of(line))
                else:
                    sink.write(raw)

    threading.Thread(target=pump, name="grpc-log", daemon=True).start()
