"""``flconfig provision``: a project's certificate authority and one startup kit per participant.

``PROJECT.yaml`` names the project and its participants::

    name: example
    participants:
      - {name: server1, type: server, host: localhost, port: 8002, org: nvidia}
      - {name: site-1, type: client, org: hospital-a}
      - {name: admin@nvidia.com, type: admin, org: nvidia, role: project_admin}

Provisioning into ``DIR`` makes the project CA once (``DIR/ca/``: its key never leaves
that folder) and, for each participant not provisioned before, a key and a certificate
signed by the CA, packed with the CA's certificate into ``DIR/<name>/startup/`` with a
``kit.json`` and a README saying how to start it. Running it again with more
participants adds their kits and leaves every earlier certificate as it is (nothing
already handed out becomes invalid). ``--revoke NAME`` revokes a participant: the CA's
revocation list (``DIR/ca/crl.pem``, copied into the server's kit) names its
certificate, and the server refuses it.

A certificate's common name is the participant's name, its organizational unit its type
(``server``, ``client``, ``admin``), its organization the participant's ``org``, and an
admin's certificate also holds the admin's ``role`` (FLARE's: ``project_admin``,
``org_admin``, ``lead`` — the default — or ``member``; see :mod:`.authz`): the server
takes a caller's identity, org and role from its certificate, never from what the
caller says. An admin whose role changes in the project file gets a new certificate
on the next run, and the old one is revoked.
"""

from __future__ import annotations

import datetime
import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.parsers import load_document
from ..errors import ConfigError, Position, Problem
from .authz import ROLES

#: The participant types, and the name a certificate's OU gives each.
TYPES = ("server", "client", "admin")
#: An admin's role when the project file names none.
DEFAULT_ROLE = "lead"
#: What a participant name may hold (it names files and folders, and a certificate).
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$")
#: Where the CA lives under the output folder, and its files.
CA_DIR, CA_KEY, CA_CERT, CRL, STATE = "ca", "rootCA.key", "rootCA.pem", "crl.pem", "state.json"
#: How long certificates are valid.
CA_DAYS, CERT_DAYS = 3650, 825
DEFAULT_PORT = 8002


@dataclass
class Participant:
    name: str
    type: str
    org: str = ""
    host: str = ""
    port: int = DEFAULT_PORT
    position: Position | None = None
    #: Whether this participant runs the custom/ code of the jobs it is given (kit.json).
    allow_custom_code: bool = False
    #: An admin's role (in its certificate); "" for servers and sites.
    role: str = ""
    #: Whether the jobs it runs may read files outside the job by absolute path (kit.json).
    allow_outside_files: bool = False


@dataclass
class Project:
    name: str
    participants: list[Participant]


@dataclass
class ProvisionResult:
    """What one run did."""

    out: Path
    added: list[str] = field(default_factory=list)
    kept: list[str] = field(default_factory=list)
    revoked: list[str] = field(default_factory=list)
    #: Admins given a new certificate because their role changed (the old one is revoked).
    reissued: list[str] = field(default_factory=list)


#: One label of a host name (RFC 1123): letters, digits and inner hyphens, 1-63 of them
#: (and '_', which container networks' service names hold).
_HOST_LABEL = re.compile(r"^(?!-)[A-Za-z0-9_-]{1,63}(?<!-)$")


def is_host(text: str) -> bool:
    """Whether ``text`` can be a server's address in a kit and its certificate: an IP
    address or a host name (dot-separated labels, at most 253 characters)."""
    import ipaddress

    try:
        ipaddress.ip_address(text)
        return True
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text
    return 0 < len(name) <= 253 and all(_HOST_LABEL.match(label) for label in name.split("."))


def load_project(path: Path) -> Project:
    """Read and check ``PROJECT.yaml``; ConfigError listing every problem at its line."""

    doc = load_document(path)
    problems = [p for p in doc.problems if p.is_error]
    data = doc.data if isinstance(doc.data, dict) else None
    if problems:
        raise ConfigError(problems)
    if data is None:
        raise ConfigError([doc.problem("schema", "a project file must hold a mapping with 'name' and 'participants'",
                                       ())])

    def bad(message: str, where: tuple[Any, ...], hint: str | None = None) -> None:
        problems.append(doc.problem("schema", message, where, hint))

    name = data.get("name")
    if not isinstance(name, str) or not NAME_RE.match(name):
        bad("'name' must name the project (letters, digits, . _ @ -)", ("name",) if "name" in data else ())
    entries = data.get("participants")
    participants: list[Participant] = []
    if not isinstance(entries, list) or not entries:
        bad("'participants' must be a list of {name, type, ...}", ("participants",) if "participants" in data else ())
        entries = []
    seen: set[str] = set()
    for i, entry in enumerate(entries):
        where = ("participants", i)
        if not isinstance(entry, dict):
            bad("a participant is a mapping {name, type, org, host, port}", where)
            continue
        unknown = sorted(set(entry) - {"name", "type", "org", "host", "port", "role",
                                        "allow_custom_code", "allow_outside_files"})
        for key in unknown:
            bad(f"unknown key {key!r} in a participant", (*where, key),
                "keys: name, type, org, host, port, role, allow_custom_code, allow_outside_files")
        pname, ptype = entry.get("name"), entry.get("type")
        if not isinstance(pname, str) or not NAME_RE.match(pname):
            bad("a participant's 'name' must be 1-64 letters, digits, . _ @ - (it names its kit folder)",
                (*where, "name") if "name" in entry else where)
            continue
        if pname in seen or pname == CA_DIR:
            bad(f"participant name {pname!r} is used twice" if pname in seen
                else f"participant name {pname!r} is reserved for the CA's folder", (*where, "name"))
            continue
        seen.add(pname)
        if ptype not in TYPES:
            bad(f"participant {pname!r}: 'type' must be one of {', '.join(TYPES)}", (*where, "type")
                if "type" in entry else where)
            continue
        port = entry.get("port", DEFAULT_PORT)
        if ptype == "server" and (not isinstance(port, int) or isinstance(port, bool) or not 0 < port < 65536):
            bad(f"server {pname!r}: 'port' must be a TCP port (1-65535)", (*where, "port"))
            continue
        host = entry.get("host", "localhost")
        if not isinstance(host, str) or not is_host(host):
            bad(f"participant {pname!r}: 'host' must be a host name or an IP address, not {host!r}",
                (*where, "host"), "a host name is letters, digits, '-' and '.' (e.g. fl.example.org)")
            continue
        custom = entry.get("allow_custom_code", False)
        if not isinstance(custom, bool):
            bad(f"participant {pname!r}: 'allow_custom_code' must be true or false", (*where, "allow_custom_code"))
            continue
        outside = entry.get("allow_outside_files", False)
        if not isinstance(outside, bool):
            bad(f"participant {pname!r}: 'allow_outside_files' must be true or false", (*where, "allow_outside_files"))
            continue

        role = entry.get("role", DEFAULT_ROLE if ptype == "admin" else "")
        if ptype != "admin" and "role" in entry:
            bad(f"participant {pname!r}: only admins have a role", (*where, "role"),
                "remove 'role': a server's and a site's rights come from their type")
            continue
        if ptype == "admin" and role not in ROLES:
            bad(f"admin {pname!r}: 'role' must be one of {', '.join(ROLES)}, not {role!r}", (*where, "role"),
                "project_admin may do everything; org_admin manages its org's jobs; lead submits and "
                "manages its own jobs; member only looks")
            continue
        participants.append(Participant(pname, ptype, str(entry.get("org", "")), host,
                                        int(port), doc.position(where), custom, str(role), outside))
    servers = [p for p in participants if p.type == "server"]
    if entries and len(servers) != 1 and not problems:
        bad(f"a project has exactly one server; this one has {len(servers)}", ("participants",))
    if problems:
        raise ConfigError(problems)
    return Project(str(name), participants)


def provision(project_file: Path, out: Path, revoke: list[str] | tuple[str, ...] = ()) -> ProvisionResult:
    """Provision ``project_file`` into ``out`` (see the module); ConfigError for a bad
    project file or a revocation of a participant that was never provisioned."""
    project = load_project(project_file)
    out.mkdir(parents=True, exist_ok=True)
    ca_dir = out / CA_DIR
    state = _load_state(ca_dir, project.name, project_file)
    ca_key, ca_cert = _ca(ca_dir, project.name)
    result = ProvisionResult(out)
    server = next(p for p in project.participants if p.type == "server")
    for participant in project.participants:
        known = state["participants"].get(participant.name)
        # What its certificate says besides its name: a change needs a new certificate.
        # (A state written before orgs were recorded keeps its certificates' orgs.)
        same = known is not None and known.get("role", "") == participant.role \
            and known.get("org", participant.org) == participant.org
        if same:
            result.kept.append(participant.name)
            if (out / participant.name / "startup").is_dir():
                _write_kit(out, participant, project, server)
            continue
        if known is not None:  # its role or org changed: its certificate says the old one
            state.setdefault("superseded", []).append(
                {"serial": known["serial"], "when": _now().isoformat(timespec="seconds")})
            result.reissued.append(participant.name)
        serial = _issue(out, participant, project, server, ca_key, ca_cert)
        state["participants"][participant.name] = {"type": participant.type, "serial": serial,
                                                   "role": participant.role, "org": participant.org}
        if known is None:
            result.added.append(participant.name)
    for name in revoke:
        if name not in state["participants"]:
            raise ConfigError([Problem("error", "usage", f"--revoke {name}: no participant of that name was "
                                       "provisioned here", Position(str(project_file)),
                                       hint=f"provisioned: {', '.join(sorted(state['participants']))}")])
        if name not in state["revoked"]:
            state["revoked"][name] = {"serial": state["participants"][name]["serial"],
                                      "when": _now().isoformat(timespec="seconds")}
            result.revoked.append(name)
    _write_crl(out, ca_dir, server.name, state, ca_key, ca_cert)
    _write_private(ca_dir / STATE, json.dumps(state, indent=2).encode())
    return result


# --- the CA -------------------------------------------------------------------------------


def _now() -> datetime.datetime:
    return datetime.datetime.now(datetime.timezone.utc)


def _load_state(ca_dir: Path, project: str, project_file: Path) -> dict[str, Any]:
    path = ca_dir / STATE
    if not path.is_file():
        return {"project": project, "participants": {}, "revoked": {}}
    state: dict[str, Any] = json.loads(path.read_text())
    if state.get("project") != project:
        raise ConfigError([Problem("error", "usage", f"{ca_dir.parent} holds project {state.get('project')!r}, "
                                   f"not {project!r}", Position(str(project_file)),
                                   hint="provision each project into a folder of its own")])
    return state


def _write_private(path: Path, data: bytes) -> None:
    """Write ``data`` readable by its owner only, atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.replace(tmp, path)


def _write_public(path: Path, data: bytes) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def _pem_key(key: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _pem_cert(cert: Any) -> bytes:
    from cryptography.hazmat.primitives import serialization

    return cert.public_bytes(serialization.Encoding.PEM)  # type: ignore[no-any-return]


def _ca(ca_dir: Path, project: str) -> tuple[Any, Any]:
    """The project CA's key and certificate, made the first time."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key_file, cert_file = ca_dir / CA_KEY, ca_dir / CA_CERT
    if key_file.is_file() and cert_file.is_file():
        key = serialization.load_pem_private_key(key_file.read_bytes(), password=None)
        return key, x509.load_pem_x509_certificate(cert_file.read_bytes())
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{project} root CA"),
                      x509.NameAttribute(NameOID.ORGANIZATION_NAME, project)])
    now = _now()
    cert = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=CA_DAYS))
            .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
            .add_extension(x509.KeyUsage(digital_signature=False, content_commitment=False, key_encipherment=False,
                                         data_encipherment=False, key_agreement=False, key_cert_sign=True,
                                         crl_sign=True, encipher_only=False, decipher_only=False), critical=True)
            .sign(key, hashes.SHA256()))
    _write_private(key_file, _pem_key(key))
    _write_public(cert_file, _pem_cert(cert))
    return key, cert


def _issue(out: Path, participant: Participant, project: Project, server: Participant, ca_key: Any,
           ca_cert: Any) -> str:
    """A key and CA-signed certificate for ``participant``, in its startup kit; its serial (hex)."""
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    attributes = [x509.NameAttribute(NameOID.COMMON_NAME, participant.name),
                  x509.NameAttribute(NameOID.ORGANIZATIONAL_UNIT_NAME, participant.type)]
    if participant.org:
        attributes.append(x509.NameAttribute(NameOID.ORGANIZATION_NAME, participant.org))
    if participant.role:  # as FLARE does: the role in the subject's unstructuredName
        attributes.append(x509.NameAttribute(NameOID.UNSTRUCTURED_NAME, participant.role))
    now = _now()
    builder = (x509.CertificateBuilder().subject_name(x509.Name(attributes)).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(minutes=5))
               .not_valid_after(now + datetime.timedelta(days=CERT_DAYS))
               .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True))
    if participant.type == "server":
        names: list[x509.GeneralName] = [x509.DNSName(participant.host), x509.DNSName("localhost"),
                                         x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
        try:
            names.append(x509.IPAddress(ipaddress.ip_address(participant.host)))
        except ValueError:
            pass
        builder = builder.add_extension(x509.SubjectAlternativeName(list(dict.fromkeys(names))), critical=False)
        usage = [ExtendedKeyUsageOID.SERVER_AUTH]
    else:
        usage = [ExtendedKeyUsageOID.CLIENT_AUTH]
    cert = builder.add_extension(x509.ExtendedKeyUsage(usage), critical=False).sign(ca_key, hashes.SHA256())
    startup = out / participant.name / "startup"
    _write_private(startup / f"{participant.type}.key", _pem_key(key))
    _write_public(startup / f"{participant.type}.crt", _pem_cert(cert))
    _write_public(startup / CA_CERT, _pem_cert(ca_cert))
    _write_kit(out, participant, project, server)
    return format(cert.serial_number, "x")


def _write_kit(out: Path, participant: Participant, project: Project, server: Participant) -> None:
    """The kit's kit.json and README (rewritten on every run: they hold no secret, and
    settings such as allow_custom_code may change without reissuing a certificate)."""
    startup = out / participant.name / "startup"
    kit: dict[str, Any] = {"project": project.name, "name": participant.name, "type": participant.type, "org": participant.org,
           "server": {"name": server.name, "host": server.host, "port": server.port}}
    if participant.type != "admin":
        kit["allow_custom_code"] = participant.allow_custom_code
        kit["allow_outside_files"] = participant.allow_outside_files
    else:
        kit["role"] = participant.role
    _write_public(startup / "kit.json", (json.dumps(kit, indent=2) + "\n").encode())
    _write_public(out / participant.name / "README.md", _readme(participant, project, server).encode())


def _write_crl(out: Path, ca_dir: Path, server: str, state: dict[str, Any], ca_key: Any, ca_cert: Any) -> None:
    """The CA's revocation list, in the CA folder and the server's kit."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes

    now = _now()
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca_cert.subject).last_update(now)
               .next_update(now + datetime.timedelta(days=CERT_DAYS)))
    for entry in [*state["revoked"].values(), *state.get("superseded", [])]:
        when = datetime.datetime.fromisoformat(entry["when"])
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(int(entry["serial"], 16)).revocation_date(when).build())
    crl = builder.sign(ca_key, hashes.SHA256())
    from cryptography.hazmat.primitives import serialization

    data = crl.public_bytes(serialization.Encoding.PEM)
    _write_public(ca_dir / CRL, data)
    if (out / server / "startup").is_dir():
        _write_public(out / server / "startup" / CRL, data)


def _readme(participant: Participant, project: Project, server: Participant) -> str:
    start = {"server": f"flconfig server {participant.name}",
             "client": f"flconfig client {participant.name}",
             "admin": f"flconfig submit --kit {participant.name} JOB"}[participant.type]
    what = {"server": f"the server of project {project.name!r}, listening on port {server.port}",
            "client": f"site {participant.name!r} of project {project.name!r}; it connects to "
                      f"{server.host}:{server.port}",
            "admin": f"admin {participant.name!r} of project {project.name!r}, for submitting and "
                     "watching jobs"}[participant.type]
    extra = {"server": "Its jobs' files go to `workspace/JOB_ID/` beside `startup/` (`--workspace` "
                       "moves them); the job store is `workspace/jobs.db`. ",
             "client": "It reconnects on its own when the server is away. It runs the `custom/` code of "
                       "a job only if `allow_custom_code` is true in `startup/kit.json`. ",
             "admin": "`flconfig jobs`, `logs ID --follow`, `download ID`, `abort ID` and `shutdown` take "
                      "the same `--kit`. "}[participant.type]
    return (f"# {participant.name}\n\nThe startup kit of {what}.\n\n"
            f"`startup/` holds its private key ({participant.type}.key: keep it secret, readable by its "
            f"owner only), its certificate ({participant.type}.crt, signed by the project CA) and the CA's "
            f"certificate (rootCA.pem) it checks its peers against.\n\nStart it from the folder above "
            f"this one:\n\n```sh\n{start}\n```\n\n{extra}See flconfig's docs/deploy.md for the rest.\n")
