"""A participant's startup kit, as ``flconfig provision`` writes it.

A kit is ``NAME/startup/`` with ``kit.json``, the participant's key and certificate
and the project CA's certificate (the server's kit also holds the CA's revocation
list). :func:`load_kit` reads one and says in one line what is wrong with it. How a
server learns who is calling from the certificates a kit holds is
:class:`flconfig.transport.tls.CertificateGate`.
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FlconfigError
from ..transport.tls import channel_credentials, server_credentials
from .provision import CA_CERT, CRL, TYPES

log = logging.getLogger(__name__)
KIT_FILE = "kit.json"


class KitError(FlconfigError):
    """A startup kit that cannot be used: missing, incomplete, or of the wrong type."""


@dataclass(frozen=True)
class Kit:
    """One participant's startup kit (see the module docstring)."""

    startup: Path  # the kit's startup/ folder
    project: str
    name: str
    type: str  # server | client | admin
    org: str
    server_name: str
    server_host: str
    server_port: int
    #: Whether this participant runs the ``custom/`` code of the jobs it is given.
    allow_custom_code: bool = False
    #: An admin's role (its certificate holds it; this copy is for show).
    role: str = ""
    #: Whether the jobs run here may read files outside the job folder by absolute path
    #: (pretrained checkpoints a config names): off unless the operator turns it on.
    allow_outside_files: bool = False

    @property
    def key_file(self) -> Path:
        return self.startup / f"{self.type}.key"

    @property
    def cert_file(self) -> Path:
        return self.startup / f"{self.type}.crt"

    @property
    def ca_file(self) -> Path:
        return self.startup / CA_CERT

    @property
    def crl_file(self) -> Path:
        return self.startup / CRL

    @property
    def server_address(self) -> str:
        """``host:port`` of the project's server."""
        return f"{self.server_host}:{self.server_port}"

    def tls_files(self) -> dict[str, str]:
        """The kit's TLS files by role (``ca``, ``cert``, ``key``, and ``crl`` on a server),
        for a job process's spec."""
        files = {"ca": str(self.ca_file), "cert": str(self.cert_file), "key": str(self.key_file)}
        if self.type == "server":
            files["crl"] = str(self.crl_file)
        return files

    def channel_credentials(self) -> Any:
        """gRPC credentials of a connection to the server: the CA to check it against, and
        this participant's key and certificate to prove who it is."""
        return channel_credentials(self.tls_files())

    def server_credentials(self) -> Any:
        """gRPC credentials of the server: its key and certificate, and the project CA that
        every caller's certificate must be signed by (callers without one are refused)."""
        return server_credentials(self.tls_files())


def load_kit(path: str | Path, expect: str | None = None) -> Kit:
    """The kit at ``path`` (a participant's folder or its ``startup/``); :class:`KitError`
    saying what is wrong, e.g. a site's kit given to ``flconfig server``."""
    folder = Path(path)
    startup = folder / "startup" if (folder / "startup" / KIT_FILE).is_file() else folder
    kit_file = startup / KIT_FILE
    if not kit_file.is_file():
        raise KitError(f"{folder}: not a startup kit (no startup/{KIT_FILE}); make kits with "
                       "'flconfig provision' or 'flconfig poc prepare'")
    try:
        data = json.loads(kit_file.read_text(encoding="utf-8"))
        server = data["server"]
        kit = Kit(startup, str(data["project"]), str(data["name"]), str(data["type"]),
                  str(data.get("org", "")), str(server["name"]), str(server["host"]),
                  int(server["port"]), bool(data.get("allow_custom_code", False)),
                  str(data.get("role", "")), allow_outside_files=data.get("allow_outside_files", False) is True)
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise KitError(f"{kit_file}: not a valid kit file ({exc})") from None
    if kit.type not in TYPES:
        raise KitError(f"{kit_file}: unknown participant type {kit.type!r}")
    if expect is not None and kit.type != expect:
        raise KitError(f"{folder} is the kit of {kit.type} {kit.name!r}, not of a{'n' if expect[0] in 'aeiou' else ''} "
                       f"{expect}")
    needed = [kit.key_file, kit.cert_file, kit.ca_file] + ([kit.crl_file] if kit.type == "server" else [])
    for file in needed:
        if not file.is_file():
            raise KitError(f"{folder}: the kit lacks {file.name}")
    if os.name == "posix" and kit.key_file.stat().st_mode & 0o077:
        log.warning("%s is readable by others; only its owner should read a private key", kit.key_file)
    return kit
