"""``flconfig poc``: a whole deployment on this machine, for trying distributed mode.

``prepare -n N`` provisions a project (a server, sites ``site-1`` … ``site-N`` that
allow custom code, and the admin ``admin@flconfig``) into the POC folder
(``$FLCONFIG_POC_DIR``, default ``/tmp/flconfig/poc``); ``start`` runs the server
and each site as a long-running process of its own (``flconfig server`` /
``flconfig client``, each logging to ``NAME/service.log``); ``stop`` asks the
server to shut itself and its sites down, and stops any that do not. With the POC
running, the admin commands (``submit``, ``jobs``, ``logs`` …) use the POC's admin
kit without ``--kit``.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from ..errors import FlconfigError

SERVER, ADMIN, PROJECT = "server", "admin@flconfig", "poc"
DEFAULT_DIR = Path("/tmp/flconfig/poc")
PID_FILE, LOG_FILE = "service.pid", "service.log"


class PocError(FlconfigError):
    """A POC command that cannot be done; the message says why."""


def poc_dir(given: Path | None = None) -> Path:
    """The POC folder: ``given``, else ``$FLCONFIG_POC_DIR``, else /tmp/flconfig/poc."""
    if given is not None:
        return given
    env = os.environ.get("FLCONFIG_POC_DIR")
    return Path(env) if env else DEFAULT_DIR


def sites_of(folder: Path) -> list[str]:
    """The site kits prepared in ``folder``, in order."""
    names = [p.name for p in folder.iterdir() if p.name.startswith("site-") and (p / "startup").is_dir()]
    return sorted(names, key=lambda n: (len(n), n))


def prepare(folder: Path, n: int, port: int = 8002, force: bool = False) -> list[str]:
    """Provision the POC project into ``folder``; the participants made."""
    from .provision import provision

    if n < 1 or n > 100:
        raise PocError(f"-n must be between 1 and 100, not {n}")
    if folder.exists() and any(folder.iterdir()):
        if not force:
            raise PocError(f"{folder} is already a POC folder; add --force to replace it (its jobs are lost)")
        if running(folder):
            raise PocError(f"the POC in {folder} is running; 'flconfig poc stop' first")
        import shutil

        shutil.rmtree(folder)
    if port == 0:
        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
    folder.mkdir(parents=True, exist_ok=True)
    names = [SERVER, *(f"site-{i}" for i in range(1, n + 1)), ADMIN]
    lines = [f"name: {PROJECT}", "participants:",
             f"  - {{name: {SERVER}, type: server, host: localhost, port: {port}, allow_custom_code: true}}"]
    lines += [f"  - {{name: site-{i}, type: client, allow_custom_code: true}}" for i in range(1, n + 1)]
    lines += [f"  - {{name: '{ADMIN}', type: admin}}"]
    project = folder / "project.yaml"
    project.write_text("\n".join(lines) + "\n")
    provision(project, folder)
    return names


def _pid(folder: Path, name: str) -> int | None:
    try:
        pid = int((folder / name / PID_FILE).read_text().strip())
    except (OSError, ValueError):
        return None
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return None
    except PermissionError:
        return None  # not ours: a pid reused since
    cmdline = Path(f"/proc/{pid}/cmdline")
    if cmdline.exists():  # Linux: make sure it is still this participant's service
        try:
            words = cmdline.read_bytes().split(b"\0")
        except OSError:
            return None
        if b"flconfig" not in words or str(folder / name).encode() not in words:
            return None
    return pid


def running(folder: Path) -> list[str]:
    """The POC's participants whose service runs now."""
    if not (folder / SERVER).is_dir():
        return []
    return [name for name in [SERVER, *sites_of(folder)] if _pid(folder, name) is not None]


def _spawn(folder: Path, name: str, command: str) -> subprocess.Popen[bytes]:
    with open(folder / name / LOG_FILE, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flconfig", command, str(folder / name)],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True)
    (folder / name / PID_FILE).write_text(f"{proc.pid}\n")
    return proc


def start(folder: Path, timeout: float = 60.0) -> list[str]:
    """Start the server, wait until it listens, then start every site; the names started."""
    from .kit import load_kit

    if not (folder / SERVER / "startup").is_dir():
        raise PocError(f"{folder} holds no POC; run 'flconfig poc prepare -n 2' first")
    already = running(folder)
    if already:
        raise PocError(f"the POC in {folder} is already running ({', '.join(already)}); "
                       "'flconfig poc stop' stops it")
    kit = load_kit(folder / SERVER, "server")
    server = _spawn(folder, SERVER, "server")
    deadline = time.monotonic() + timeout
    while True:
        if server.poll() is not None:
            tail = (folder / SERVER / LOG_FILE).read_text(errors="replace").strip().splitlines()[-1:]
            raise PocError(f"the server exited with code {server.returncode}: {tail[0] if tail else ''}")
        try:
            with socket.create_connection(("127.0.0.1", kit.server_port), timeout=1):
                break
        except OSError:
            if time.monotonic() > deadline:
                raise PocError(f"the server did not listen on port {kit.server_port} within {timeout:g} s; "
                               f"see {folder / SERVER / LOG_FILE}") from None
            time.sleep(0.1)
    sites = sites_of(folder)
    for site in sites:
        _spawn(folder, site, "client")
    return [SERVER, *sites]


def stop(folder: Path, timeout: float = 30.0) -> list[str]:
    """Shut the POC down (the server tells its sites); stop whatever is left; the names stopped."""
    from .admin import Admin, AdminError
    from .kit import load_kit

    alive = running(folder)
    if not alive:
        return []
    if SERVER in alive and (folder / ADMIN).is_dir():
        try:
            with Admin(load_kit(folder / ADMIN, "admin"), timeout=10) as admin:
                admin.shutdown(sites=True)
        except AdminError:
            pass  # stopped by signal below
    _wait_stopped(folder, timeout)
    for sig in (signal.SIGTERM, signal.SIGKILL):  # what did not stop when asked
        for name in running(folder):
            pid = _pid(folder, name)
            if pid is not None:
                os.kill(pid, sig)
        _wait_stopped(folder, 10.0)
    for name in alive:
        (folder / name / PID_FILE).unlink(missing_ok=True)
    return alive


def _wait_stopped(folder: Path, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while running(folder) and time.monotonic() < deadline:
        time.sleep(0.2)
