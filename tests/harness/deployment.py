"""A real deployment for tests: provisioned kits, `flconfig server` and `flconfig client` processes."""

from __future__ import annotations

import datetime
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]  # the repository
SEED_JOB = ROOT / "configs" / "tensorboard-streaming"
ADMIN = "admin@test"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def free_ports(n: int) -> range:
    """``n`` consecutive ports free now."""
    while True:
        base = free_port()
        try:
            for port in range(base + 1, base + n):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", port))
        except OSError:
            continue
        return range(base, base + n)


def wait_for(condition, what: str, timeout: float = 180, context=lambda: "") -> None:  # type: ignore[no-untyped-def]
    """Wait until ``condition()``: a guard against a hang (the test then fails saying what
    never happened, and ``context()``), not a time budget: the budgets are benchmarks'."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise TimeoutError(f"{what} never happened\n{context()}")
        time.sleep(0.2)


def provision_project(out: Path, sites: dict[str, bool], port: int, project: str = "test",
                      server_custom: bool = True) -> Path:
    """Provision server, ``sites`` (name -> allow_custom_code) and ADMIN into ``out``."""
    lines = [f"name: {project}", "participants:",
             f"  - {{name: server, type: server, host: localhost, port: {port}, "
             f"allow_custom_code: {str(server_custom).lower()}}}"]
    lines += [f"  - {{name: {name}, type: client, allow_custom_code: {str(custom).lower()}}}"
              for name, custom in sites.items()]
    lines.append(f"  - {{name: '{ADMIN}', type: admin, role: project_admin}}")
    out.mkdir(parents=True, exist_ok=True)
    project_file = out / "project.yaml"
    project_file.write_text("\n".join(lines) + "\n")
    flconfig("provision", str(project_file), "-o", str(out), check=True)
    return project_file


def flconfig(*args: str, env: dict[str, str] | None = None, check: bool = False,
             timeout: float = 300) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                            timeout=timeout, env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"flconfig {' '.join(args)} exited {result.returncode}:\n{result.stdout}{result.stderr}")
    return result


class Deployment:
    """Kits in ``root``; ``start()`` runs the server and the sites as processes."""

    def __init__(self, root: Path, sites: dict[str, bool], max_jobs: int = 1,
                 server_args: tuple[str, ...] = (), server_custom: bool = True) -> None:
        self.root = root
        self.port = free_port()
        self.server_args = server_args
        self.sites = sites
        self.max_jobs = max_jobs
        provision_project(root, sites, self.port, server_custom=server_custom)
        self.server: subprocess.Popen[bytes] | None = None
        self.clients: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def env(self) -> dict[str, str]:
        return {"FLCONFIG_KIT": str(self.root / ADMIN)}

    @property
    def workspace(self) -> Path:
        return self.root / "server" / "workspace"

    def log(self, name: str = "server") -> str:
        path = self.root / name / "service.log"
        return path.read_text(errors="replace") if path.exists() else ""

    def _spawn(self, command: str, name: str, *extra: str) -> subprocess.Popen[bytes]:
        with open(self.root / name / "service.log", "ab") as log:
            return subprocess.Popen([sys.executable, "-m", "flconfig", command, str(self.root / name), *extra],
                                    stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def start_server(self, *extra: str) -> None:
        self.server = self._spawn("server", "server", "--host", "127.0.0.1", "--max-jobs", str(self.max_jobs),
                                  *self.server_args, *extra)
        server = self.server

        def listening() -> bool:
            if server.poll() is not None:
                raise RuntimeError(f"the server exited with code {server.returncode}:\n{self.log()}")
            return "listening on" in self.log() and self._accepts()

        self.wait_for(listening, "the server to listen", timeout=60)

    def _accepts(self) -> bool:
        try:
            with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                return True
        except OSError:
            return False

    def start_sites(self, *names: str) -> None:
        for name in names or tuple(self.sites):
            self.clients[name] = self._spawn("client", name)

    def start(self) -> Deployment:
        self.start_server()
        self.start_sites()
        self.wait_for(lambda: all(f"site {s} connected" in self.log() for s in self.sites), "sites to connect")
        return self

    def kill_server(self) -> None:
        assert self.server is not None
        self.server.send_signal(signal.SIGKILL)
        self.server.wait()

    def stop(self) -> None:
        procs = [p for p in [self.server, *self.clients.values()] if p is not None]
        for proc in procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()

    def wait_for(self, condition, what: str, timeout: float = 180) -> None:  # type: ignore[no-untyped-def]
        wait_for(condition, what, timeout, lambda: f"--- server\n{self.log()[-3000:]}")

    def admin(self, *args: str, check: bool = False) -> subprocess.CompletedProcess[str]:
        return flconfig(*args, env=self.env, check=check)

    def jobs(self) -> list[dict]:  # type: ignore[type-arg]
        return json.loads(self.admin("jobs", "--json", check=True).stdout)["jobs"]

    def state(self, job_id: str) -> dict:  # type: ignore[type-arg]
        return next(j for j in self.jobs() if j["id"] == job_id)

    def wait_state(self, job_id: str, states: tuple[str, ...], timeout: float = 240) -> dict:  # type: ignore[type-arg]
        found: dict = {}  # type: ignore[type-arg]

        def reached() -> bool:
            found.update(self.state(job_id))
            return found["state"] in states

        self.wait_for(reached, f"job {job_id} to be {'/'.join(states)}", timeout)
        return found

    def submit(self, job: Path) -> str:
        result = self.admin("submit", str(job))
        assert result.returncode == 0, result.stdout + result.stderr
        return result.stdout.strip().splitlines()[-1].split()[2]


def job_variant(src: Path, dest: Path, *, rounds: int | None = None, epochs: int | None = None,
                sites: list[str] | None = None, min_clients: int | None = None,
                heartbeat: float | None = None) -> Path:
    """A copy of the job ``src`` with fewer or more rounds, other sites or another min_clients."""
    shutil.copytree(src, dest)
    meta_file = dest / "meta.json"
    meta = json.loads(meta_file.read_text())
    if sites is not None:
        meta["deploy_map"] = {"app": ["server", *sites]}
    if min_clients is not None:
        meta["min_clients"] = min_clients
    meta_file.write_text(json.dumps(meta, indent=2))
    server = dest / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    if rounds is not None:
        config["num_rounds"] = rounds
    if min_clients is not None:
        config["min_clients"] = min_clients
    if heartbeat is not None:
        config["server"] = {"heart_beat_timeout": heartbeat}
    server.write_text(json.dumps(config, indent=2))
    if epochs is not None:
        client = dest / "app" / "config" / "config_fed_client.json"
        text = json.loads(client.read_text())
        for spec in text.get("components", []) + [e["executor"] for e in text.get("executors", [])]:
            if "epochs" in spec.get("args", {}):
                spec["args"]["epochs"] = epochs
        client.write_text(json.dumps(text, indent=2))
    return dest


def expired_kit(root: Path, source: str, name: str) -> Path:
    """A copy of the kit ``source`` whose certificate, signed by the project CA, expired yesterday."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization

    ca_key = serialization.load_pem_private_key((root / "ca" / "rootCA.key").read_bytes(), None)
    ca_cert = x509.load_pem_x509_certificate((root / "ca" / "rootCA.pem").read_bytes())
    kit = json.loads((root / source / "startup" / "kit.json").read_text())
    dest = root / name / "startup"
    shutil.copytree(root / source / "startup", dest)
    kind = kit["type"]
    cert = x509.load_pem_x509_certificate((dest / f"{kind}.crt").read_bytes())
    key = serialization.load_pem_private_key((dest / f"{kind}.key").read_bytes(), None)
    now = datetime.datetime.now(datetime.timezone.utc)
    expired = (x509.CertificateBuilder().subject_name(cert.subject).issuer_name(ca_cert.subject)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())  # type: ignore[arg-type]
               .not_valid_before(now - datetime.timedelta(days=30))
               .not_valid_after(now - datetime.timedelta(days=1)))
    for ext in cert.extensions:
        expired = expired.add_extension(ext.value, ext.critical)
    (dest / f"{kind}.crt").write_bytes(expired.sign(ca_key, hashes.SHA256()).public_bytes(  # type: ignore[arg-type]
        serialization.Encoding.PEM))
    return root / name
