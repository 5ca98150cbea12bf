"""``flconfig provision``: a project CA, one startup kit per participant, re-runs that add
without invalidating, revocation; the certificates checked with ``cryptography`` and used
for a real mutual-TLS handshake."""

from __future__ import annotations

import json
import ssl
import subprocess
import sys
import threading
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

PROJECT = """name: example
participants:
  - {name: server1, type: server, host: localhost, port: 8002, org: nvidia}
  - {name: site-1, type: client, org: hospital-a}
  - {name: admin@nvidia.com, type: admin, org: nvidia}
"""


def provision(tmp_path: Path, project: str, *args: str) -> subprocess.CompletedProcess[str]:
    (tmp_path / "project.yaml").write_text(project)
    return subprocess.run([sys.executable, "-m", "flconfig", "provision", str(tmp_path / "project.yaml"),
                           "-o", str(tmp_path / "out"), *args], capture_output=True, text=True, timeout=60)


def cert(path: Path) -> x509.Certificate:
    return x509.load_pem_x509_certificate(path.read_bytes())


def test_each_participant_gets_a_kit_whose_certificate_the_ca_signed(tmp_path: Path) -> None:
    proc = provision(tmp_path, PROJECT)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().endswith("added server1, site-1, admin@nvidia.com")
    out = tmp_path / "out"
    ca = cert(out / "ca" / "rootCA.pem")
    for name, kind, usage in (("server1", "server", ExtendedKeyUsageOID.SERVER_AUTH),
                              ("site-1", "client", ExtendedKeyUsageOID.CLIENT_AUTH),
                              ("admin@nvidia.com", "admin", ExtendedKeyUsageOID.CLIENT_AUTH)):
        startup = out / name / "startup"
        mine = cert(startup / f"{kind}.crt")
        mine.verify_directly_issued_by(ca)
        assert mine.subject.get_attributes_for_oid(NameOID.COMMON_NAME)[0].value == name
        assert mine.subject.get_attributes_for_oid(NameOID.ORGANIZATIONAL_UNIT_NAME)[0].value == kind
        assert usage in mine.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        assert (startup / f"{kind}.key").stat().st_mode & 0o077 == 0  # the owner's alone
        assert (startup / "rootCA.pem").read_bytes() == (out / "ca" / "rootCA.pem").read_bytes()
        assert not list(startup.glob("rootCA.key"))  # the CA's key never leaves its folder
        kit = json.loads((startup / "kit.json").read_text())
        assert kit["server"] == {"name": "server1", "host": "localhost", "port": 8002} and kit["type"] == kind
        assert f"flconfig {'submit --kit' if kind == 'admin' else kind} {name}" in (out / name / "README.md").read_text()
    names = cert(out / "server1" / "startup" / "server.crt").extensions.get_extension_for_class(
        x509.SubjectAlternativeName).value.get_values_for_type(x509.DNSName)
    assert "localhost" in names


def test_a_rerun_adds_participants_and_leaves_earlier_certificates_as_they_are(tmp_path: Path) -> None:
    assert provision(tmp_path, PROJECT).returncode == 0
    before = {p: p.read_bytes() for p in (tmp_path / "out").rglob("*.crt")}
    proc = provision(tmp_path, PROJECT + "  - {name: site-2, type: client, org: hospital-b}\n")
    assert proc.returncode == 0, proc.stderr
    assert "added site-2; kept server1, site-1, admin@nvidia.com" in proc.stdout
    assert all(p.read_bytes() == data for p, data in before.items())
    ca = cert(tmp_path / "out" / "ca" / "rootCA.pem")
    cert(tmp_path / "out" / "site-2" / "startup" / "client.crt").verify_directly_issued_by(ca)


def test_a_revoked_participant_is_on_the_crl_the_server_kit_holds(tmp_path: Path) -> None:
    assert provision(tmp_path, PROJECT).returncode == 0
    proc = provision(tmp_path, PROJECT, "--revoke", "site-1")
    assert proc.returncode == 0 and "revoked site-1" in proc.stdout
    crl = x509.load_pem_x509_crl((tmp_path / "out" / "server1" / "startup" / "crl.pem").read_bytes())
    assert crl.is_signature_valid(cert(tmp_path / "out" / "ca" / "rootCA.pem").public_key())
    site1 = cert(tmp_path / "out" / "site-1" / "startup" / "client.crt")
    admin = cert(tmp_path / "out" / "admin@nvidia.com" / "startup" / "admin.crt")
    assert crl.get_revoked_certificate_by_serial_number(site1.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(admin.serial_number) is None
    bad = provision(tmp_path, PROJECT, "--revoke", "site-9")
    assert bad.returncode == 1 and "--revoke site-9: no participant of that name was provisioned here" in bad.stderr


def test_a_new_role_or_org_reissues_the_certificate_and_revokes_the_old_one(tmp_path: Path) -> None:
    """The server trusts an admin's certificate for its role and org: when the project file
    changes either, a kit that still said the old one would keep the old rights."""
    assert provision(tmp_path, PROJECT).returncode == 0
    out = tmp_path / "out"
    old = cert(out / "admin@nvidia.com" / "startup" / "admin.crt")
    assert old.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "nvidia"
    assert old.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)[0].value == "lead"  # the default
    for change in ("org: nvidia}", "org: other, role: member}"):
        project = PROJECT.replace("{name: admin@nvidia.com, type: admin, org: nvidia}",
                                  "{name: admin@nvidia.com, type: admin, " + change)
        proc = provision(tmp_path, project)
        assert proc.returncode == 0, proc.stderr
    assert "reissued admin@nvidia.com (a new role or org; the old certificate is revoked)" in proc.stdout
    new = cert(out / "admin@nvidia.com" / "startup" / "admin.crt")
    assert new.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)[0].value == "other"
    assert new.subject.get_attributes_for_oid(NameOID.UNSTRUCTURED_NAME)[0].value == "member"
    crl = x509.load_pem_x509_crl((out / "server1" / "startup" / "crl.pem").read_bytes())
    assert crl.get_revoked_certificate_by_serial_number(old.serial_number) is not None
    assert crl.get_revoked_certificate_by_serial_number(new.serial_number) is None
    # the server and the site were not touched
    assert "kept server1, site-1" in proc.stdout


@pytest.mark.parametrize(("project", "said"), [
    ("name: example\nparticipants:\n  - {name: s, type: server}\n  - {name: s, type: client}\n", "used twice"),
    ("name: example\nparticipants:\n  - {name: site-1, type: client}\n", "exactly one server"),
    ("name: example\nparticipants:\n  - {name: s, type: server, port: 99999}\n", "must be a TCP port"),
    ("name: example\nparticipants:\n  - {name: ../evil, type: client}\n  - {name: s, type: server}\n", "'name' must"),
    ("name: example\nparticipants:\n  - {name: s, type: servr}\n", "'type' must be one of server, client, admin"),
    # a host that cannot be a host name or an IP address, at the host's own line:col
    ('name: example\nparticipants:\n  - {name: s, type: server, host: "fl\\nevil"}\n', "3:35: error: participant "
     "'s': 'host' must be a host name or an IP address, not 'fl\\nevil'"),
    ("name: example\nparticipants:\n  - {name: s, type: server, host: fl server}\n", "3:35: error: participant "
     "'s': 'host' must be a host name or an IP address, not 'fl server'"),
    ("name: example\nparticipants:\n  - {name: s, type: server, host: 'x;y'}\n", "'host' must be a host name"),
    ("name: example\nparticipants:\n  - {name: s, type: server, host: -x.org}\n", "'host' must be a host name"),
])
def test_a_bad_project_file_is_one_line_at_its_place(tmp_path: Path, project: str, said: str) -> None:
    proc = provision(tmp_path, project)
    assert proc.returncode == 1
    assert said in proc.stderr and "project.yaml:" in proc.stderr
    assert "Traceback" not in proc.stderr
    assert not (tmp_path / "out").exists()  # nothing is written for a bad project
    assert len([line for line in proc.stderr.splitlines() if ": error: " in line]) == 1


@pytest.mark.parametrize("host", ["fl.example.org", "10.0.0.7", "fl-server_1", "localhost"])
def test_a_host_name_or_address_is_accepted(tmp_path: Path, host: str) -> None:
    proc = provision(tmp_path, PROJECT.replace("host: localhost", f"host: {host}"))
    assert proc.returncode == 0, proc.stderr
    assert json.loads((tmp_path / "out" / "site-1" / "startup" / "kit.json").read_text())["server"]["host"] == host


def test_the_kits_authenticate_each_other_over_mutual_tls(tmp_path: Path) -> None:
    assert provision(tmp_path, PROJECT).returncode == 0
    out = tmp_path / "out"
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(out / "server1/startup/rootCA.pem"))
    server_ctx.load_cert_chain(out / "server1/startup/server.crt", out / "server1/startup/server.key")
    server_ctx.verify_mode = ssl.CERT_REQUIRED
    import socket

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    seen: list[str] = []

    def serve() -> None:
        conn, _ = listener.accept()
        with server_ctx.wrap_socket(conn, server_side=True) as tls:
            peer = tls.getpeercert()
            seen.append(dict(item[0] for item in peer["subject"])["commonName"])
            tls.sendall(b"ok")

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    client_ctx = ssl.create_default_context(cafile=str(out / "site-1/startup/rootCA.pem"))
    client_ctx.load_cert_chain(out / "site-1/startup/client.crt", out / "site-1/startup/client.key")
    with socket.create_connection(("127.0.0.1", port)) as raw, \
            client_ctx.wrap_socket(raw, server_hostname="localhost") as tls:
        assert tls.recv(2) == b"ok"
    thread.join(5)
    listener.close()
    assert seen == ["site-1"]  # the server knows the site by its certificate


def test_reading_files_outside_the_job_is_off_unless_the_project_turns_it_on(tmp_path: Path) -> None:
    from flconfig.deploy.kit import load_kit

    project = PROJECT + "  - {name: site-2, type: client, org: hospital-b, allow_outside_files: true}\n"
    assert provision(tmp_path, project).returncode == 0
    assert load_kit(tmp_path / "out" / "site-1").allow_outside_files is False
    assert load_kit(tmp_path / "out" / "server1").allow_outside_files is False
    assert load_kit(tmp_path / "out" / "site-2").allow_outside_files is True
    (tmp_path / "x").mkdir()
    wrong = provision(tmp_path / "x", PROJECT.replace("org: hospital-a}", "org: hospital-a, allow_outside_files: 1}"))
    assert wrong.returncode != 0
    assert "'allow_outside_files' must be true or false" in wrong.stdout + wrong.stderr
