"""TLS for the link between a job's server and its sites, and for the deployed services:
gRPC credentials from a participant's certificate files, and the check of a caller's
certificate (who it names, of which type, not revoked).

:class:`CertificateGate` is how a server learns who is calling: the name and type in the
caller's certificate (checked by TLS against the project CA), never anything the caller
says, and never a revoked certificate.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)


def channel_credentials(files: Mapping[str, str]) -> Any:
    """gRPC channel credentials from TLS file paths (``ca``, ``cert``, ``key``)."""
    import grpc

    return grpc.ssl_channel_credentials(_read(files["ca"]), _read(files["key"]), _read(files["cert"]))


def server_credentials(files: Mapping[str, str]) -> Any:
    """gRPC server credentials requiring a client certificate signed by ``files['ca']``."""
    import grpc

    return grpc.ssl_server_credentials([(_read(files["key"]), _read(files["cert"]))],
                                       root_certificates=_read(files["ca"]), require_client_auth=True)


def job_server_tls(files: Mapping[str, str]) -> tuple[Any, Any]:
    """A job's server over mutual TLS: its gRPC credentials, and the ``peer_check`` of
    :class:`~flconfig.transport.server.CommServer` that refuses any call whose certificate
    is not a (not revoked) client certificate naming the site the call claims."""
    gate = CertificateGate(files["ca"], files.get("crl"))

    def peer_check(context: Any, site: str) -> str | None:
        ident, why = gate.check(context, "client", claimed=site)
        return None if ident is not None else why

    return server_credentials(files), peer_check


def _read(path: str) -> bytes:
    with open(path, "rb") as f:
        return f.read()


@dataclass(frozen=True)
class Identity:
    """Who a certificate says its holder is."""

    name: str
    type: str  # the certificate's OU: server | client | admin
    serial: int
    org: str = ""  # the certificate's O
    role: str = ""  # an admin's role: the certificate's unstructuredName (as FLARE writes it)


class CertificateGate:
    """The caller's identity from its TLS certificate, refusing revoked ones.

    TLS already refused callers without a certificate signed by the project CA, or
    with an expired one (the handshake fails). The gate reads the certificate the
    handshake verified, checks its serial against the CA's revocation list (read
    again whenever the file changes, so a revocation takes effect without a
    restart), and returns the name and type the certificate gives.
    """

    def __init__(self, ca_file: str | Path, crl_file: str | Path | None) -> None:
        from cryptography import x509

        self._ca = x509.load_pem_x509_certificate(Path(ca_file).read_bytes())
        self._crl_file = Path(crl_file) if crl_file else None
        self._lock = threading.Lock()
        self._crl_stamp: tuple[int, int] | None = None
        self._revoked: frozenset[int] = frozenset()
        self._crl_problem: str | None = None
        self._certs: dict[bytes, Identity] = {}  # parsed certificates, by their PEM

    def identity(self, context: Any) -> tuple[Identity | None, str]:
        """The identity of the call ``context``'s peer, or (None, why it has none)."""
        auth = context.auth_context() or {}
        pems = auth.get("x509_pem_cert") or []
        if not pems:
            return None, "no client certificate"
        pem = pems[0]
        ident = self._certs.get(pem)
        if ident is None:
            ident = self._parse(pem)
            if ident is None:
                return None, "an unreadable client certificate"
            if len(self._certs) < 10_000:
                self._certs[pem] = ident
        revoked, problem = self._revocations()
        if problem is not None:
            return None, problem
        if ident.serial in revoked:
            return None, f"the certificate of {ident.name!r} is revoked"
        return ident, ""

    def check(self, context: Any, role: str, claimed: str | None = None) -> tuple[Identity | None, str]:
        """The caller's identity if its certificate is of type ``role`` (and names
        ``claimed``, when given); else (None, why not)."""
        ident, why = self.identity(context)
        if ident is None:
            return None, why
        if ident.type != role:
            article = "an" if role[:1] in "aeiou" else "a"
            return None, (f"{ident.name!r} has a{'n' if ident.type[:1] in 'aeiou' else ''} {ident.type} "
                          f"certificate; this call needs {article} {role} certificate")
        if claimed is not None and ident.name != claimed:
            return None, f"the certificate of {ident.name!r} was used to claim to be {claimed!r}"
        return ident, ""

    def _parse(self, pem: bytes) -> Identity | None:
        from cryptography import x509
        from cryptography.x509.oid import NameOID

        try:
            cert = x509.load_pem_x509_certificate(pem)
            subject = cert.subject
            cn = subject.get_attributes_for_oid(NameOID.COMMON_NAME)
            ou = subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)
            org = subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)
            role = subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)
            return Identity(str(cn[0].value), str(ou[0].value) if ou else "", cert.serial_number,
                            str(org[0].value) if org else "", str(role[0].value) if role else "")
        except (ValueError, IndexError):
            return None

    def _revocations(self) -> tuple[frozenset[int], str | None]:
        if self._crl_file is None:
            return frozenset(), None
        try:
            st = self._crl_file.stat()
            stamp = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        with self._lock:
            if stamp != self._crl_stamp:
                self._crl_stamp = stamp
                self._revoked, self._crl_problem = self._load_crl()
            return self._revoked, self._crl_problem

    def _load_crl(self) -> tuple[frozenset[int], str | None]:
        from cryptography import x509

        assert self._crl_file is not None
        try:
            crl = x509.load_pem_x509_crl(self._crl_file.read_bytes())
        except (OSError, ValueError) as exc:
            # Fail closed: without the list, no one known to be revoked can be told apart.
            log.error("cannot read the revocation list %s (%s); refusing every caller until it is "
                      "readable", self._crl_file, exc)
            return frozenset(), f"the server cannot read its revocation list {self._crl_file.name}"
        if not crl.is_signature_valid(self._ca.public_key()):  # type: ignore[arg-type]
            log.error("the revocation list %s is not signed by the project CA; refusing every caller",
                      self._crl_file)
            return frozenset(), "the server's revocation list is not the project CA's"
        return frozenset(entry.serial_number for entry in crl), None
