"""Plain mistakes get one line each, never a traceback: archives that cannot be unpacked
name their member, paths the file system refuses, closed pipes, a missing ``run`` extra,
bad values on the command line, and certificate refusals that say the real reason, on
the server's side and on the caller's."""

from __future__ import annotations

import datetime
import io
import json
import os
import shutil
import signal
import socket
import stat
import subprocess
import sys
import warnings
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO
from harness.deployment import (
    ADMIN,
    Deployment,
    expired_kit,
    flconfig,
    free_port,
    provision_project,
)

from flconfig.deploy.archive import ArchiveError, unpack

ROOT = REPO
JOB = ROOT / "configs" / "tensorboard-streaming"
LONG = "a" * 300


def one_line(result: subprocess.CompletedProcess[str]) -> str:
    """The one line a command wrote on stderr (asserting it wrote exactly one, no traceback)."""
    assert "Traceback" not in result.stderr, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


# ----------------------------------------------------------------------------- archives


def _zip(*names: str) -> bytes:
    """A zip holding ``names`` in order (a name ending in '/' is a folder), as other zip
    tools write them: duplicate names too (zipfile warns, and writes them)."""
    buf = io.BytesIO()
    with warnings.catch_warnings(), zipfile.ZipFile(buf, "w") as zf:
        warnings.simplefilter("ignore")  # "Duplicate name"
        for name in names:
            info = zipfile.ZipInfo(name)
            info.external_attr = ((stat.S_IFDIR | 0o755) if name.endswith("/") else (stat.S_IFREG | 0o644)) << 16
            zf.writestr(info, b"" if name.endswith("/") else b"x")
    return buf.getvalue()


@pytest.mark.parametrize(("names", "said"), [
    (("meta.json", "app/a.py", "app/a.py"), "archive member 'app/a.py': given twice in the archive"),
    (("app/", "app/"), "archive member 'app/': given twice in the archive"),
    (("app/custom", "app/custom/x.py"),
     "archive member 'app/custom': the archive has 'app/custom/x.py' too: a file and a folder of one name"),
    (("app/custom/x.py", "app/custom"),
     "archive member 'app/custom': the archive has 'app/custom/x.py' too: a file and a folder of one name"),
    (("app/", "app"), "archive member 'app': the archive has 'app/' too: a file and a folder of one name"),
    (("ok.txt", f"app/{'n' * 300}.py"), f"archive member 'app/{'n' * 60}"),
    (("ok.txt", f"app/{'é' * 200}"), "a name of 400 bytes, longer than the 255 a file name may have"),
    (("ok.txt", "/".join(["d" * 200] * 25)), "its path is longer than the 4096 bytes a path may have here"),
])
def test_an_archive_member_that_cannot_be_written_is_named_and_nothing_is_written(
        tmp_path: Path, names: tuple[str, ...], said: str) -> None:
    with pytest.raises(ArchiveError) as caught:
        unpack(_zip(*names), tmp_path / "out", max_bytes=1 << 20)
    assert said in str(caught.value)
    assert "\n" not in str(caught.value) and len(str(caught.value)) < 400
    assert not (tmp_path / "out").exists()


def test_a_member_written_without_a_file_type_is_a_plain_file(tmp_path: Path) -> None:
    # zipfile's own writestr(name, data) marks a member 0o600 with no file type bits.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("app/config/a.json", b"{}")
    assert unpack(buf.getvalue(), tmp_path / "out", max_bytes=1 << 20) == ["app/config/a.json"]
    assert (tmp_path / "out" / "app" / "config" / "a.json").read_bytes() == b"{}"


# ----------------------------------------------------------------------------- paths


def test_a_path_too_long_for_the_file_system_is_one_line(tmp_path: Path) -> None:
    for args in (("validate", LONG), ("validate", str(JOB), f"{LONG}/x", "--format", "json"),
                 ("launch", LONG), ("launch", str(JOB), "-w", str(tmp_path / LONG / "ws"))):
        result = flconfig(*args)
        assert result.returncode == 2, args
        line = one_line(result)
        assert line.startswith(f"flconfig {args[0]}: ")
        assert line.endswith(": the name is too long for the file system"), line
        assert f"{'a' * 40}...(300 characters)" in line and "a" * 41 not in line
    assert not any(tmp_path.iterdir())


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kits")
    provision_project(root, {"site-1": True}, free_port())
    return root


def _as_unprivileged(args: list[str]) -> list[str]:
    """``args`` run without root's power to write anywhere (as a user would be)."""
    if os.geteuid() != 0:
        return args
    if shutil.which("setpriv") is None:
        pytest.skip("running as root without setpriv: every folder is writable")
    caps = "-dac_override,-dac_read_search"
    return ["setpriv", f"--inh-caps={caps}", f"--bounding-set={caps}", *args]


def test_download_into_a_file_or_a_folder_it_cannot_write_is_one_line(kits: Path, tmp_path: Path) -> None:
    env = {"FLCONFIG_KIT": str(kits / ADMIN)}
    (tmp_path / "results.txt").write_text("x")
    cases = {str(tmp_path / "results.txt"): f"{tmp_path / 'results.txt'}: a file, not a folder",
             str(tmp_path / "results.txt" / "sub"):
                 f"{tmp_path / 'results.txt' / 'sub'}: {tmp_path / 'results.txt'} is a file, not a folder",
             str(tmp_path / LONG): "the name is too long for the file system"}
    for output, said in cases.items():
        result = flconfig("download", "0123", "-o", output, env=env)
        assert result.returncode == 2
        assert one_line(result).startswith("flconfig download: -o ") and said in result.stderr
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o555)
    try:
        for output in (locked, locked / "new" / "deeper"):
            result = subprocess.run(_as_unprivileged([sys.executable, "-m", "flconfig", "download", "0123",
                                                      "-o", str(output)]),
                                    capture_output=True, text=True, timeout=60, env={**os.environ, **env})
            assert result.returncode == 2
            assert one_line(result) == (f"flconfig download: -o {output}: "
                                        + ("" if output == locked else f"{locked} is ")
                                        + "a folder this user cannot write in")
    finally:
        locked.chmod(0o755)
    assert list(locked.iterdir()) == []


# ----------------------------------------------------------------------------- closed pipes


def closed_stdout(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run ``flconfig args`` with its stdout a pipe nobody reads any more (as ``| head -1``
    leaves it once head has its line)."""
    read, write = os.pipe()
    os.close(read)
    try:
        return subprocess.run([sys.executable, "-m", "flconfig", *args], stdout=write, stderr=subprocess.PIPE,
                              text=True, timeout=120, env={**os.environ, **(env or {})})
    finally:
        os.close(write)


@pytest.mark.parametrize("args", [("validate", str(JOB)), ("validate", str(JOB), "--format", "json"),
                                  ("schema", "client"), ("schema", "--list")])
def test_a_closed_pipe_on_the_output_ends_the_command_quietly(args: tuple[str, ...]) -> None:
    result = closed_stdout(*args)
    assert (result.returncode, result.stderr) == (141, "")


# ----------------------------------------------------------------------------- the run extra

#: An interpreter that cannot import grpc or cryptography, as where the run extra is not
#: installed: ``-I`` keeps the environment out, a meta path hook makes the imports fail.
WITHOUT_RUN_EXTRA = """
import sys
class NotInstalled:
    def find_spec(self, name, path=None, target=None):
        if name.partition(".")[0] in ("grpc", "cryptography"):
            raise ModuleNotFoundError(f"No module named {name!r}", name=name)
        return None
sys.meta_path.insert(0, NotInstalled())
from flconfig.cli import main
sys.exit(main(sys.argv[1:]))
"""


def without_run_extra(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-I", "-c", WITHOUT_RUN_EXTRA, *args], capture_output=True,
                          text=True, timeout=60, cwd=cwd)


def test_the_run_extra_is_really_blocked(tmp_path: Path) -> None:
    probe = subprocess.run([sys.executable, "-I", "-c", WITHOUT_RUN_EXTRA.replace(
        "from flconfig.cli import main\nsys.exit(main(sys.argv[1:]))", "import grpc")],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert probe.returncode == 1 and "ModuleNotFoundError: No module named 'grpc'" in probe.stderr


def test_commands_of_the_run_extra_say_which_package_is_missing(kits: Path, tmp_path: Path) -> None:
    (tmp_path / "project.yaml").write_text((kits / "project.yaml").read_text())
    grpc_line = "needs the 'run' extra, and grpcio is not installed: pip install 'flconfig[run]'"
    both_line = "needs the 'run' extra, and grpcio and cryptography are not installed: pip install 'flconfig[run]'"
    cases = {
        ("provision", "project.yaml", "-o", "out"):
            "flconfig provision: needs the 'run' extra, and cryptography is not installed: "
            "pip install 'flconfig[run]'",
        ("poc", "prepare", "--dir", "poc"): f"flconfig poc prepare: {both_line}",
        ("poc", "start", "--dir", "poc"): f"flconfig poc start: {both_line}",
        ("server", str(kits / "server")): f"flconfig server: {both_line}",
        ("client", str(kits / "site-1")): f"flconfig client: {both_line}",
        ("jobs", "--kit", str(kits / ADMIN)): f"flconfig jobs: {grpc_line}",
        ("submit", str(JOB), "--kit", str(kits / ADMIN)): f"flconfig submit: {grpc_line}",
        ("download", "0123", "-o", "results", "--kit", str(kits / ADMIN)): f"flconfig download: {grpc_line}",
    }
    for args, said in cases.items():
        result = without_run_extra(*args, cwd=tmp_path)
        assert result.returncode == 2, (args, result.stderr)
        assert one_line(result) == said
    assert sorted(p.name for p in tmp_path.iterdir()) == ["project.yaml"]  # nothing was made
    # validate and schema need none of it
    assert without_run_extra("validate", str(JOB), cwd=tmp_path).returncode == 0
    assert without_run_extra("schema", "client", cwd=tmp_path).returncode == 0


# ----------------------------------------------------------------------------- bad values


@pytest.mark.parametrize(("args", "said"), [
    (("--port", "-1"), "--port must be a TCP port, 1 to 65535, got -1"),
    (("--port", "0"), "--port must be a TCP port, 1 to 65535, got 0"),
    (("--port", "65536"), "--port must be a TCP port, 1 to 65535, got 65536"),
    (("--site-wait", "nan"), "--site-wait must be a number of seconds, 0 to 31536000 (a year), got nan"),
    (("--site-wait", "inf"), "--site-wait must be a number of seconds, 0 to 31536000 (a year), got inf"),
    (("--site-wait", "-5"), "--site-wait must be a number of seconds, 0 to 31536000 (a year), got -5"),
    (("--tensorboard-port", "-1"), "--tensorboard-port must be 0 to 65535 (0: any free port), got -1"),
    (("--max-jobs", "0"), "--max-jobs must be at least 1"),
])
def test_bad_server_values_are_refused_before_it_starts(kits: Path, args: tuple[str, ...], said: str) -> None:
    result = flconfig("server", str(kits / "server"), *args)
    assert result.returncode == 2
    assert one_line(result) == f"flconfig server: {said}"
    assert not (kits / "server" / "workspace").exists()


@pytest.mark.parametrize("port", ["-1", "65536"])
def test_a_bad_poc_port_is_refused_and_nothing_is_prepared(tmp_path: Path, port: str) -> None:
    result = flconfig("poc", "prepare", "--port", port, "--dir", str(tmp_path / "poc"))
    assert result.returncode == 2
    assert one_line(result) == f"flconfig poc prepare: --port must be 0 to 65535 (0: any free port), got {port}"
    assert not (tmp_path / "poc").exists()


# ----------------------------------------------------------------------------- a running server


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Deployment]:
    """A real server over mutual TLS (no sites: nothing here runs a job)."""
    dep = Deployment(tmp_path_factory.mktemp("deploy"), {"site-1": True})
    dep.start_server()
    yield dep
    dep.stop()


def test_a_closed_pipe_on_an_admin_commands_output_ends_it_quietly(server: Deployment) -> None:
    result = closed_stdout("jobs", env=server.env)
    assert (result.returncode, result.stderr) == (141, "")
    result = closed_stdout("jobs", "--json", env=server.env)
    assert (result.returncode, result.stderr) == (141, "")


def test_a_submitted_archive_that_cannot_be_unpacked_names_its_member(server: Deployment) -> None:
    from flconfig.deploy import deploy_pb2 as pb
    from flconfig.deploy.admin import Admin
    from flconfig.deploy.kit import load_kit

    with Admin(load_kit(server.root / ADMIN)) as admin:
        for names, said in (
                (("meta.json", "app/config/a.json", "app/config/a.json"),
                 "job: archive member 'app/config/a.json': given twice in the archive"),
                (("meta.json", "app", "app/config/a.json"),
                 "job: archive member 'app': the archive has 'app/config/a.json' too: a file and a folder "
                 "of one name"),
                (("meta.json", f"app/{'n' * 300}"), "a name of 300 bytes, longer than the 255")):
            answer = admin.call("Submit", pb.SubmitRequest(path="job", job=_zip(*names)), pb.SubmitReply)
            assert answer.ok is False and said in answer.report
            assert "disk" not in answer.report and "space" not in answer.report
    incoming = server.workspace / ".incoming"
    assert not incoming.exists() or not any(incoming.iterdir())  # nothing half-written


# ----------------------------------------------------------------------------- certificates

def reissued(root: Path, source: str, name: str, *, start_days: int = 0, kind: str | None = None) -> Path:
    """A copy of the kit ``source`` whose certificate the project CA signed again, valid from
    ``start_days`` from now for 30 days; with ``kind``, the key and certificate of that kit
    (e.g. the server's) stand in for the kit's own."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    dest = root / name / "startup"
    shutil.copytree(root / source / "startup", dest)
    own = json.loads((dest / "kit.json").read_text())["type"]
    if kind is not None:  # another participant's certificate in this kit
        shutil.copy(root / kind / "startup" / "server.key", dest / f"{own}.key")
        shutil.copy(root / kind / "startup" / "server.crt", dest / f"{own}.crt")
        return root / name
    ca_key = serialization.load_pem_private_key((root / "ca" / "rootCA.key").read_bytes(), None)
    ca = x509.load_pem_x509_certificate((root / "ca" / "rootCA.pem").read_bytes())
    cert = x509.load_pem_x509_certificate((dest / f"{own}.crt").read_bytes())
    key = serialization.load_pem_private_key((dest / f"{own}.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
               .not_valid_before(now + datetime.timedelta(days=start_days))
               .not_valid_after(now + datetime.timedelta(days=start_days + 30)))
    for ext in cert.extensions:
        builder = builder.add_extension(ext.value, ext.critical)
    (dest / f"{own}.crt").write_bytes(builder.sign(ca_key, hashes.SHA256())  # type: ignore[arg-type]
                                      .public_bytes(serialization.Encoding.PEM))
    return root / name


def _raw_call(server: Deployment, ca: bytes, key: bytes | None, cert: bytes | None) -> None:
    import grpc

    from flconfig.deploy import deploy_pb2 as pb
    from flconfig.deploy import wire

    channel = grpc.secure_channel(f"localhost:{server.port}", grpc.ssl_channel_credentials(ca, key, cert),
                                  options=wire.options())
    try:
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(wire.method_path("Jobs"))(pb.JobsRequest().SerializeToString(), timeout=10)
        assert refused.value.code() == grpc.StatusCode.UNAVAILABLE
    finally:
        channel.close()


def test_the_server_says_why_it_refused_a_certificate(server: Deployment, tmp_path: Path) -> None:
    root = server.root
    startup = root / ADMIN / "startup"
    ca = (startup / "rootCA.pem").read_bytes()
    other = tmp_path / "other"
    provision_project(other, {"site-1": True}, server.port, project="other")
    twin = tmp_path / "twin"  # another CA that bears the project CA's very name
    provision_project(twin, {"site-1": True}, server.port, project="test")
    future = reissued(root, ADMIN, "future-admin", start_days=2)
    expired = expired_kit(root, ADMIN, "expired-admin")
    wrong_role = reissued(root, ADMIN, "server-as-admin", kind="server")

    def files(kit: Path) -> tuple[bytes, bytes]:
        kind = json.loads((kit / "startup" / "kit.json").read_text())["type"]
        return (kit / "startup" / f"{kind}.key").read_bytes(), (kit / "startup" / f"{kind}.crt").read_bytes()

    cases = [
        (None, "the caller sent no certificate"),
        (other / ADMIN, "its certificate is signed by another CA, not the project CA"),
        (twin / ADMIN, "its certificate is signed by another CA of the same name, not the project CA"),
        (expired, "its certificate has expired"),
        (future, "its certificate is not valid yet (its start date is later: check the clocks)"),
        (wrong_role, "its certificate has the wrong role: it is not for a caller (no clientAuth usage), "
                     "e.g. the server's own certificate"),
    ]
    for kit, why in cases:
        key, cert = files(kit) if kit else (None, None)
        _raw_call(server, ca, key, cert)
        line = f"flconfig server: refused a TLS connection: {why}"
        server.wait_for(lambda line=line: line in server.log(), f"the server to say {line!r}")  # type: ignore[misc]


def test_the_caller_says_why_the_handshake_failed(server: Deployment, tmp_path: Path) -> None:
    root = server.root
    other = tmp_path / "other"
    provision_project(other, {"site-1": True}, server.port, project="other")
    at = f"flconfig jobs: the TLS handshake with the server at localhost:{server.port} failed: "
    expired = expired_kit(root, ADMIN, "expired-admin-2")
    future = reissued(root, ADMIN, "future-admin-2", start_days=2)
    cases = [
        (expired, "the server refused this kit's certificate: it expired on "),
        (future, "the server refused this kit's certificate: it is valid only from "),
        (reissued(root, ADMIN, "server-as-admin-2", kind="server"),
         "the server refused this kit's certificate: it has the wrong role: it is not for a caller "
         "(no clientAuth usage), e.g. the server's own"),
        # another project's kit that names this server's address: the caller refuses the server
        (other / ADMIN, "the server's certificate is signed by another CA, not the project CA: is that "
                        "address the project's server?"),
    ]
    for kit, why in cases:
        result = flconfig("jobs", "--kit", str(kit))
        assert result.returncode == 1
        assert one_line(result).startswith(at + why), result.stderr
    # the date said is the certificate's own
    from cryptography import x509

    cert = x509.load_pem_x509_certificate((expired / "startup" / "admin.crt").read_bytes())
    assert f"it expired on {cert.not_valid_after_utc:%Y-%m-%d %H:%M} UTC" in flconfig(
        "jobs", "--kit", str(expired)).stderr


def test_a_site_with_an_expired_certificate_says_so_in_its_log(server: Deployment) -> None:
    kit = expired_kit(server.root, "site-1", "expired-site")
    log = server.root / "expired-site.log"
    with open(log, "wb") as out:
        site = subprocess.Popen([sys.executable, "-m", "flconfig", "client", str(kit)], stdout=out,
                                stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
    try:
        said = ("unreachable (the TLS handshake failed: the server refused this kit's certificate: "
                "it expired on ")
        server.wait_for(lambda: said in log.read_text(), "the site to say why")
    finally:
        site.send_signal(signal.SIGTERM)
        site.wait(timeout=30)
    assert "Handshake failed" not in log.read_text()  # gRPC's own raw line is not repeated
    assert "Traceback" not in log.read_text()


def test_a_busy_tensorboard_port_is_refused_before_anything_starts(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(REPO / "configs" / "tensorboard-streaming"),
                               "-w", str(tmp_path / "ws"), "--tensorboard-port", str(port)],
                              capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == (f"flconfig launch: --tensorboard-port {port}: the port is in use on 127.0.0.1; "
                           "pick another, or 0 for any free port\n")
    assert not (tmp_path / "ws").exists()


def test_fewer_sites_than_the_job_waits_for_are_refused_before_anything_starts(tmp_path: Path) -> None:
    example = REPO / "configs" / "tensorboard-streaming"
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(example), "-w", str(tmp_path / "ws"), "-n", "1"],
                          capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("flconfig launch: 1 client site(s) would run, and the job's meta asks for at least 2 "
                           "(min_clients): run at least 2 (-n 2)\n")
    assert not (tmp_path / "ws" / "server").exists()
    # A workflow that waits for more sites than the meta asks for is named.
    job = tmp_path / "job"
    shutil.copytree(example, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["workflows"][0]["args"]["min_clients"] = 3
    server_file.write_text(json.dumps(server))
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(tmp_path / "ws"), "-n", "2"],
                          capture_output=True, text=True, timeout=120)
    assert done.stderr == ("flconfig launch: 2 client site(s) would run, and workflow 'scatter_and_gather' waits "
                           "for 3 (its min_clients): run at least 3 (-n 3)\n")
