"""``flconfig launch``: validate a job, then run its server and sites as separate processes.

The server is one process. Client sites run one per process up to
:data:`MAX_SOLO_SITES` sites; beyond that they share a bounded pool of worker
processes, each site still with its own connection, token and identity.
Torch threads are divided between the processes so they never oversubscribe
the cores.
"""

from __future__ import annotations

import json
import os
import secrets
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TextIO

from .errors import Problem, errors_only

MAX_SOLO_SITES = 8
DEFAULT_JOB_ID = "simulate_job"


@dataclass
class LaunchOptions:
    """What ``flconfig launch`` was asked to do."""

    job: Path
    workspace: Path = Path("workspace")
    clients: list[str] | None = None
    num_clients: int | None = None
    job_id: str = DEFAULT_JOB_ID
    device: str | None = None  # None: each learner uses its own configured device
    threads: int | None = None
    processes: int | None = None
    heartbeat_timeout: float | None = None
    allowed_modules: Sequence[str] = ()
    out: TextIO = field(default_factory=lambda: sys.stdout)


class LaunchError(Exception):
    """The job could not be launched (bad options, invalid job); carries the problems."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)


def plan_workers(sites: Sequence[str], cores: int, processes: int | None = None) -> list[list[str]]:
    """Group sites into worker processes: one each up to MAX_SOLO_SITES, else a bounded pool."""
    if processes is None:
        processes = len(sites) if len(sites) <= MAX_SOLO_SITES else max(2, cores)
    processes = max(1, min(processes, len(sites)))
    groups: list[list[str]] = [[] for _ in range(processes)]
    for i, site in enumerate(sites):
        groups[i % processes].append(site)
    return groups


def threads_per_process(cores: int, n_processes: int) -> int:
    """Torch threads for each process so that together they use the cores once."""
    return max(1, cores // max(1, n_processes))


def _choose_sites(job: object, opts: LaunchOptions) -> list[str]:
    from .meta import NAME_RE

    sites = list(opts.clients) if opts.clients else job.client_sites(opts.num_clients)  # type: ignore[attr-defined]
    bad = [s for s in sites if not NAME_RE.match(s) or s == "server"]
    if bad:
        raise LaunchError(f"invalid site name(s): {', '.join(bad)} (use letters, digits, '.', '_', '-')")
    if len(set(sites)) != len(sites):
        raise LaunchError("a site name is given twice")
    named = list(job.meta.client_sites())  # type: ignore[attr-defined]
    if named and opts.clients:
        unknown = [s for s in sites if s not in named]
        if unknown:
            raise LaunchError(f"site(s) {', '.join(unknown)} are not in the job's deploy_map "
                              f"({', '.join(named)})")
    if not sites:
        raise LaunchError("no client sites to run")
    return sites


def launch(opts: LaunchOptions) -> int:
    """Run the job; returns the process exit code (0 success, 1 job failed, 130 interrupted)."""
    from .job import inspect_job
    from .report import write_text

    out = opts.out
    job, problems = inspect_job(opts.job, allowed_modules=opts.allowed_modules)
    if job is None or errors_only(problems):
        write_text(problems, 1, out)
        print("flconfig: the job is invalid; nothing was started", file=out)
        return 1
    sites = _choose_sites(job, opts)
    from .meta import NAME_RE

    if not NAME_RE.match(opts.job_id):
        raise LaunchError(f"invalid job id {opts.job_id!r} (use letters, digits, '.', '_', '-')")
    server_config = job.server_config
    heartbeat = opts.heartbeat_timeout
    if heartbeat is None and server_config is not None:
        heartbeat = server_config.doc.data_at(("server", "heart_beat_timeout"))
    heartbeat = float(heartbeat or 60.0)

    cores = os.cpu_count() or 1
    groups = plan_workers(sites, cores, opts.processes)
    threads = opts.threads or threads_per_process(cores, len(groups) + 1)
    workspace = opts.workspace.resolve()
    control = workspace / ".flconfig" / opts.job_id
    control.mkdir(parents=True, exist_ok=True)
    port_file = control / "server.port"
    port_file.unlink(missing_ok=True)
    spec = {
        "job": str(Path(opts.job).resolve()),
        "workspace": str(workspace),
        "job_id": opts.job_id,
        "sites": sites,
        "min_clients": job.meta.min_clients,
        "credentials": {site: secrets.token_urlsafe(32) for site in sites},
        "heartbeat_timeout": heartbeat,
        "heartbeat_interval": max(0.2, min(5.0, heartbeat / 4)),
        "threads": threads,
        "device": opts.device,
        "allowed_modules": list(opts.allowed_modules),
        "port_file": str(port_file),
    }
    spec_file = control / "spec.json"
    _write_private(spec_file, spec)

    print(f"flconfig: launching job '{job.name}' with {len(sites)} client site(s) in "
          f"{len(groups)} worker process(es), {threads} torch thread(s) each; workspace {workspace}",
          file=out, flush=True)
    procs: list[subprocess.Popen[str]] = []
    started = time.monotonic()
    try:
        server = subprocess.Popen(
            [sys.executable, "-m", "flconfig.runtime.worker", "server", "--spec", str(spec_file)],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, bufsize=1)
        procs.append(server)
        pump = threading.Thread(target=_pump, args=(server.stdout, out), daemon=True)
        pump.start()
        port = _wait_for_port(port_file, server, timeout=120)
        if port is None:
            server.wait(timeout=30)
            pump.join(timeout=5)
            return _finish(workspace, opts.job_id, server.returncode, [], out, started)
        spec["address"] = f"127.0.0.1:{port}"
        _write_private(spec_file, spec)
        workers = []
        for i, group in enumerate(groups):
            err = open(control / f"worker-{i}.err", "w")  # noqa: SIM115 - closed with the process
            proc = subprocess.Popen(
                [sys.executable, "-m", "flconfig.runtime.worker", "clients", "--spec", str(spec_file),
                 "--sites", ",".join(group)], stdout=err, stderr=subprocess.STDOUT, text=True)
            procs.append(proc)
            workers.append((proc, group, control / f"worker-{i}.err"))
        _watch(server, workers, out)
        pump.join(timeout=5)
        deadline = time.monotonic() + 30
        for proc, _, _ in workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        failures = [(group, proc.returncode, err) for proc, group, err in workers if proc.returncode != 0]
        return _finish(workspace, opts.job_id, server.returncode, failures, out, started)
    except KeyboardInterrupt:
        print("\nflconfig: interrupted; stopping every process it started", file=out, flush=True)
        return 130
    finally:
        _stop_all(procs)


def _watch(server: subprocess.Popen[str], workers: list[tuple[subprocess.Popen[str], list[str], Path]],
           out: TextIO, grace: float = 15.0) -> None:
    """Wait for the server; say when a worker dies, and stop a server no site is left to talk to."""
    reported: set[int] = set()
    all_gone_since: float | None = None
    while server.poll() is None:
        time.sleep(0.2)
        for i, (proc, group, _) in enumerate(workers):
            rc = proc.poll()
            if rc not in (None, 0) and i not in reported:
                reported.add(i)
                print(f"flconfig: the process of {', '.join(group)} exited with code {rc}", file=out, flush=True)
        if all(proc.poll() is not None for proc, _, _ in workers):
            all_gone_since = all_gone_since or time.monotonic()
            if time.monotonic() - all_gone_since > grace:
                print("flconfig: every client process has exited; stopping the server", file=out, flush=True)
                server.terminate()
                server.wait()


def _write_private(path: Path, data: dict[str, object]) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(data, f)
    os.replace(tmp, path)


def _pump(stream: TextIO | None, out: TextIO) -> None:
    if stream is None:
        return
    for line in stream:
        out.write(line)
        out.flush()


def _wait_for_port(port_file: Path, server: subprocess.Popen[str], timeout: float) -> int | None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if port_file.exists():
            text = port_file.read_text().strip()
            if text.isdigit():
                return int(text)
        if server.poll() is not None:
            return None
        time.sleep(0.05)
    return None


def _stop_all(procs: list[subprocess.Popen[str]]) -> None:
    alive = [p for p in procs if p.poll() is None]
    for p in alive:
        p.send_signal(signal.SIGTERM)
    deadline = time.monotonic() + 5
    for p in alive:
        try:
            p.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


def _global_model_scores(results_file: Path) -> str:
    """One line: how the final global model scored at each site."""
    try:
        results = json.loads(results_file.read_text())
        scores = [f"{site} {', '.join(f'{v:.3f}' for v in models['SRV_FL_global_model.pt'].values())}"
                  for site, models in results.items() if "SRV_FL_global_model.pt" in models]
    except (ValueError, TypeError, AttributeError, OSError):
        return "  (cross-site results unreadable)"
    return "  global model validated at: " + ", ".join(scores) if scores else "  (no global model scores)"


def _finish(workspace: Path, job_id: str, server_rc: int | None, failures: list[tuple[list[str], int, Path]],
            out: TextIO, started: float) -> int:
    run_dir = workspace / "server" / job_id
    status_file = run_dir / "status.json"
    status = json.loads(status_file.read_text()) if status_file.exists() else {"ok": False}
    elapsed = time.monotonic() - started
    for group, rc, err in failures:
        tail = err.read_text().strip().splitlines()[-5:] if err.exists() else []
        print(f"flconfig: worker for {', '.join(group)} exited with code {rc}", file=out)
        for line in tail:
            print(f"    {line}", file=out)
    if status.get("ok") and server_rc == 0:
        models = sorted(p.name for p in run_dir.glob("*.pt")) + sorted(p.name for p in run_dir.glob("*.safetensors"))
        print(f"flconfig: job finished in {elapsed:.1f} s", file=out)
        if models:
            print(f"  global model:  {run_dir / models[0]}", file=out)
        print(f"  server log:    {run_dir / 'log.txt'}", file=out)
        print(f"  site logs:     {workspace}/<site>/{job_id}/log.txt", file=out)
        tb = run_dir / "tb_events"
        if tb.is_dir():
            print(f"  TensorBoard:   tensorboard --logdir {tb}", file=out)
        cross = run_dir / "cross_site_val" / "cross_val_results.json"
        if cross.exists():
            print(f"  cross-site validation: {cross}", file=out)
            print(_global_model_scores(cross), file=out)
        out.flush()
        return 0
    site = status.get("site") or "server"
    error = status.get("error") or f"the server exited with code {server_rc}"
    print(f"flconfig: job failed after {elapsed:.1f} s: {site}: {error}", file=out)
    print(f"  server log: {run_dir / 'log.txt'}", file=out)
    out.flush()
    return 1
