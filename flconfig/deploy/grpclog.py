"""Failed TLS handshakes, said as what they are: on the server and on the caller's side.

gRPC refuses a caller without a certificate of the project CA (none, another CA's,
an expired one, one of the wrong role) during the TLS handshake, before any handler
runs, and says so only in its own log on the process's stderr. :func:`watch_handshakes`
passes that stream through and turns each failed handshake into one line saying why
(:func:`reason_of`). The caller only learns that the connection closed: :func:`caller_reason`
says why as well as it can, from gRPC's error and the caller's own certificate.
"""

from __future__ import annotations

import datetime
import os
import re
import sys
import threading
from collections.abc import Callable
from pathlib import Path

#: BoringSSL's words for a certificate that did not verify (after CERTIFICATE_VERIFY_FAILED,
#: as gRPC logs them), and ours; ``{use}`` is what the certificate was offered for.
_VERIFY = (
    ("certificate has expired", "has expired"),
    ("certificate is not yet valid", "is not valid yet (its start date is later: check the clocks)"),
    ("unsupported certificate purpose", "has the wrong role: it is not for {use}"),
    ("self signed certificate", "is self-signed, not signed by the project CA"),
    ("self-signed certificate", "is self-signed, not signed by the project CA"),
    ("unable to get local issuer certificate", "is signed by another CA, not the project CA"),
    ("unable to get issuer certificate", "is signed by another CA, not the project CA"),
    ("unable to verify the first certificate", "is signed by another CA, not the project CA"),
    ("certificate signature failure", "is signed by another CA of the same name, not the project CA"),
    ("BAD_SIGNATURE", "is signed by another CA of the same name, not the project CA"),
    ("certificate revoked", "is revoked"),
)
#: Handshake failures that are not about a certificate's content.
_OTHER = (
    ("PEER_DID_NOT_RETURN_A_CERTIFICATE", "the caller sent no certificate"),
    ("WRONG_VERSION_NUMBER", "it does not speak TLS"),
    ("HTTP_REQUEST", "it does not speak TLS"),
    ("NO_SHARED_CIPHER", "it offers no TLS version or cipher the server accepts"),
    ("UNSUPPORTED_PROTOCOL", "it offers no TLS version or cipher the server accepts"),
)
_HANDSHAKE = re.compile(r"Handshake failed", re.IGNORECASE)


def _verify_reason(text: str, use: str) -> str | None:
    for marker, why in _VERIFY:
        if marker in text:
            return why.format(use=use)
    return None


def reason_of(line: str) -> str:
    """Why a gRPC handshake-failure line says the connection was refused."""
    for marker, why in _OTHER:
        if marker in line:
            return why
    verify = _verify_reason(line, "a caller (no clientAuth usage), e.g. the server's own certificate")
    if verify:
        return f"its certificate {verify}"
    if "CERTIFICATE_VERIFY_FAILED" in line:
        return f"its certificate did not verify ({line.rsplit(':', 1)[-1].strip()[:200]})"
    return line.rsplit(":", 1)[-1].strip()[:200] or "TLS handshake failed"


#: What gRPC tells a caller whose connection the server closed during the handshake.
_CLOSED = ("Socket closed", "Connection reset", "Broken pipe", "End of TCP stream")


def caller_reason(details: str, cert_file: Path, ca_file: Path) -> str | None:
    """Why a call whose gRPC error says ``details`` failed in the TLS handshake, said for
    the caller holding ``cert_file`` (checked against ``ca_file``); None when the error
    is no failed handshake (e.g. nothing listening)."""
    if "handshake failed" in details.lower():  # this side refused the server
        if "WRONG_VERSION_NUMBER" in details or "HTTP_REQUEST" in details:
            return "the server does not speak TLS: is that port the project's server?"
        verify = _verify_reason(details, "a server (no serverAuth usage)")
        if verify:
            return f"the server's certificate {verify}: is that address the project's server?"
        if "not in peer certificate" in details or "Peer name" in details:
            return "the server's certificate is not for the host name this kit connects to"
        return f"this side refused the server ({details.rsplit(':', 2)[-2].strip()[:200]})"
    if "failed to connect" not in details or not any(marker in details for marker in _CLOSED):
        return None  # not while connecting: e.g. a server that stopped during the call
    own = certificate_problem(cert_file, ca_file)
    if own:
        return f"the server refused this kit's certificate: {own}"
    return ("the server closed the connection during the TLS handshake: it refused this kit's "
            "certificate (another project's kit, or one it no longer accepts: its log says why)")


def certificate_problem(cert_file: Path, ca_file: Path) -> str | None:
    """What makes the certificate ``cert_file`` unacceptable to a server of the CA
    ``ca_file`` for a caller, as far as this side can tell; None if nothing is found."""
    try:
        from cryptography import x509
        from cryptography.exceptions import InvalidSignature
        from cryptography.x509.oid import ExtendedKeyUsageOID

        cert = x509.load_pem_x509_certificate(cert_file.read_bytes())
        ca = x509.load_pem_x509_certificate(ca_file.read_bytes())
    except (ImportError, OSError, ValueError):
        return None
    utc = datetime.timezone.utc
    now = datetime.datetime.now(utc)
    # cryptography 42 added the aware *_utc forms; 41 has naive UTC times
    start = getattr(cert, "not_valid_before_utc", None) or cert.not_valid_before.replace(tzinfo=utc)
    end = getattr(cert, "not_valid_after_utc", None) or cert.not_valid_after.replace(tzinfo=utc)
    if start > now:
        return f"it is valid only from {start:%Y-%m-%d %H:%M} UTC (check this machine's clock)"
    if end < now:
        return f"it expired on {end:%Y-%m-%d %H:%M} UTC"
    try:
        usage = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
    except x509.ExtensionNotFound:
        usage = None
    if usage is not None and ExtendedKeyUsageOID.CLIENT_AUTH not in usage:
        return "it has the wrong role: it is not for a caller (no clientAuth usage), e.g. the server's own"
    try:
        cert.verify_directly_issued_by(ca)
    except (InvalidSignature, ValueError, TypeError):
        return "it is not signed by the CA in the kit"
    return None


#: gRPC's own log lines of a port it could not bind: the service says so itself, in one line.
_BIND_FAILURE = re.compile(r"add_port\.cc|Failed to add port")


class HandshakeWatch:
    """The running pass-through of :func:`watch_handshakes`; :meth:`close` puts stderr back
    once every line written so far went through (nothing said at exit is lost)."""

    def __init__(self, original: int, pump: threading.Thread) -> None:
        self._original = original
        self._pump = pump

    def close(self) -> None:
        try:
            sys.stderr.flush()
        except (OSError, ValueError):
            pass
        os.dup2(self._original, 2)  # the pipe's last writer gone: the pump reads to its end
        self._pump.join(timeout=5)


def watch_handshakes(report: Callable[[str], None]) -> HandshakeWatch:
    """Pass the process's stderr (fd 2) through a pipe, calling ``report(reason)`` for
    each failed TLS handshake gRPC logs there; gRPC's lines about a port it could not bind
    are dropped (the service reports that itself); other lines go on to stderr unchanged."""
    read_fd, write_fd = os.pipe()
    original = os.dup(2)
    os.dup2(write_fd, 2)
    os.close(write_fd)
    sys.stderr = os.fdopen(2, "w", buffering=1, closefd=False)

    def pump() -> None:
        with os.fdopen(read_fd, "rb") as source, os.fdopen(os.dup(original), "wb", buffering=0) as sink:
            for raw in source:
                line = raw.decode("utf-8", "replace")
                if _HANDSHAKE.search(line):
                    report(reason_of(line))
                elif not _BIND_FAILURE.search(line):
                    sink.write(raw)

    thread = threading.Thread(target=pump, name="grpc-log", daemon=True)
    thread.start()
    return HandshakeWatch(original, thread)
