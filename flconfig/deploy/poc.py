"""``flconfig poc``: a whole deployment on this machine, for trying distributed mode.

``prepare -n N`` provisions a project (a server, sites ``site-1`` … ``site-N`` that
allow custom code, and the admin ``admin@flconfig``) into the POC folder
(``$FLCONFIG_POC_DIR``, default ``/tmp/flconfig/poc``); ``start`` runs the server
and each site as a long-running process of its own (``flconfig server`` /
``flconfig client``, each logging to ``NAME/service.log``, each started in its own
folder), and returns once the server answers its admin and every site is connected
— or stops them all and says why not; ``stop`` asks the server to shut itself and its
sites down, and stops any that do not. A POC is one machine: every service, and every
job's server, listens on 127.0.0.1 only. With the POC running, the admin commands
(``submit``, ``jobs``, ``logs`` …) use the POC's admin kit without ``--kit``.
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
from .kit import KitError, load_kit
from .provision import NAME_RE, provision

SERVER, ADMIN, PROJECT = "server", "admin@flconfig", "poc"
#: The only address a POC's services listen on.
LOOPBACK = "127.0.0.1"
DEFAULT_DIR = Path("/tmp/flconfig/poc")
PID_FILE, LOG_FILE = "service.pid", "service.log"


class PocError(FlconfigError):
    """A POC command that cannot be done; the message says why."""


def poc_dir(given: Path | None = None) -> Path:
    """The POC folder (absolute): ``given``, else ``$FLCONFIG_POC_DIR``, else /tmp/flconfig/poc."""
    if given is not None:
        return given.resolve()
    env = os.environ.get("FLCONFIG_POC_DIR")
    return Path(env).resolve() if env else DEFAULT_DIR


def sites_of(folder: Path) -> list[str]:
    """The site kits prepared in ``folder``, in order (``site-2`` before ``site-10``)."""
    import json

    names = []
    for entry in folder.iterdir():
        try:
            kit = json.loads((entry / "startup" / "kit.json").read_text())
        except (OSError, ValueError):
            continue
        if isinstance(kit, dict) and kit.get("type") == "client":
            names.append(entry.name)
    return sorted(names, key=lambda n: (len(n), n))


def prepare(folder: Path, n: int, port: int = 8002, force: bool = False,
            sites: list[str] | None = None) -> list[str]:
    """Provision the POC project into ``folder`` (sites ``site-1`` … ``site-N``, or the
    ``sites`` named); the participants made."""

    if sites:
        bad = [s for s in sites if not NAME_RE.match(s) or s in (SERVER, ADMIN, "ca")]
        if bad:
            raise PocError(f"{bad[0]!r} cannot name a POC site")
        n = len(sites)
    if n < 1 or n > 100:
        raise PocError(f"-n must be between 1 and 100, not {n}")
    if folder.exists() and not folder.is_dir():
        raise PocError(f"{folder} is a file, not a folder; give --dir a folder (new or a POC's)")
    if folder.exists() and any(folder.iterdir()):
        if not (folder / "project.yaml").is_file() or not (folder / SERVER / "startup").is_dir():
            raise PocError(f"{folder} is not empty and holds no POC; give a new or empty folder "
                           "(--force replaces only a POC)")
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
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise PocError(f"cannot make the POC folder {folder}: {exc.strerror or exc}") from None
    site_names = list(sites) if sites else [f"site-{i}" for i in range(1, n + 1)]
    names = [SERVER, *site_names, ADMIN]
    lines = [f"name: {PROJECT}", "participants:",
             f"  - {{name: {SERVER}, type: server, host: {LOOPBACK}, port: {port}, allow_custom_code: true, "
             "allow_outside_files: true}"]
    lines += [f"  - {{name: {site}, type: client, allow_custom_code: true, allow_outside_files: true}}" for site in site_names]
    lines += [f"  - {{name: '{ADMIN}', type: admin, role: project_admin}}"]
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


def _spawn(folder: Path, name: str, *args: str) -> subprocess.Popen[bytes]:
    # Started in its own folder: a folder holding another 'flconfig' package (a checkout)
    # must not be what 'python -m flconfig' imports.
    log_file = folder / name / LOG_FILE
    start_at = log_file.stat().st_size if log_file.exists() else 0
    with open(log_file, "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "flconfig", *args[:1], str(folder / name), *args[1:]],
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, cwd=folder / name)
    proc.log_start = start_at  # type: ignore[attr-defined]  # where this run's lines begin
    (folder / name / PID_FILE).write_text(f"{proc.pid}\n")
    return proc


def _why_it_exited(folder: Path, name: str, proc: subprocess.Popen[bytes]) -> str:
    """``NAME exited with code N: its last line of this run's log``."""
    try:
        with open(folder / name / LOG_FILE, "rb") as f:
            f.seek(getattr(proc, "log_start", 0))
            lines = [ln.strip() for ln in f.read().decode(errors="replace").splitlines() if ln.strip()]
    except OSError:
        lines = []
    last = lines[-1] if lines else "it printed nothing"
    return f"{'the server' if name == SERVER else name} exited with code {proc.returncode}: {last[:300]}"


def start(folder: Path, timeout: float = 60.0) -> list[str]:
    """Start the server and every site, on 127.0.0.1; return their names once the server
    answers its admin and every site is connected to it. :class:`PocError` saying which
    service failed and why (its exit and last log line, or what it never did in
    ``timeout`` seconds) — and everything started is stopped again."""
    from .admin import Admin, AdminError

    folder = folder.resolve()
    if not (folder / SERVER / "startup").is_dir():
        raise PocError(f"{folder} holds no POC; run 'flconfig poc prepare -n 2' first")
    already = running(folder)
    if already:
        raise PocError(f"the POC in {folder} is already running ({', '.join(already)}); "
                       "'flconfig poc stop' stops it")
    try:
        kit = load_kit(folder / ADMIN, "admin")
    except KitError as exc:
        raise PocError(str(exc)) from None
    sites = sites_of(folder)
    started: dict[str, subprocess.Popen[bytes]] = {}
    try:
        started[SERVER] = _spawn(folder, SERVER, "server", "--host", LOOPBACK)
        deadline = time.monotonic() + timeout
        with Admin(kit, timeout=5) as admin:
            last = ""
            while True:  # the server answers its admin over mutual TLS
                if started[SERVER].poll() is not None:
                    raise PocError(_why_it_exited(folder, SERVER, started[SERVER]))
                try:
                    admin.jobs()
                    break
                except AdminError as exc:
                    last = str(exc)
                if time.monotonic() > deadline:
                    raise PocError(f"the server did not answer within {timeout:g} s ({last}); "
                                   f"see {folder / SERVER / LOG_FILE}")
                time.sleep(0.2)
            for site in sites:
                started[site] = _spawn(folder, site, "client")
            while True:  # every site is connected
                for name, proc in started.items():
                    if proc.poll() is not None:
                        raise PocError(_why_it_exited(folder, name, proc))
                try:
                    connected = set(admin.jobs()["sites"])
                except AdminError as exc:
                    connected, last = set(), str(exc)
                missing = [s for s in sites if s not in connected]
                if not missing:
                    break
                if time.monotonic() > deadline:
                    raise PocError(f"{', '.join(missing)} did not connect to the server within {timeout:g} s; "
                                   f"see {folder / missing[0] / LOG_FILE}")
                time.sleep(0.2)
    except BaseException:
        _stop_started(folder, started)
        raise
    return [SERVER, *sites]


def _stop_started(folder: Path, started: dict[str, subprocess.Popen[bytes]]) -> None:
    for proc in started.values():
        if proc.poll() is None:
            proc.terminate()
    for name, proc in started.items():
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        (folder / name / PID_FILE).unlink(missing_ok=True)


def stop(folder: Path, timeout: float = 30.0) -> list[str]:
    """Shut the POC down (the server tells its sites); stop whatever is left; the names stopped."""
    from .admin import Admin, AdminError

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
