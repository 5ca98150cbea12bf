"""``flconfig launch``: validate and plan a job, then run its server and sites as processes.

The server is one process. Client sites run one per process while there are no
more sites than cores (and at most :data:`MAX_SOLO_SITES`); beyond that they
share a pool of worker processes, one per core, each site still with its own
connection, token and identity. On Linux, ``flconfig launch`` forks the server
and the workers from one process that imported torch once, while the launcher
checked the job (:mod:`flconfig.launch.processes`); ``--spawn`` starts each as a
new interpreter. With ``--gpus``, each worker process hosts the sites of one GPU and sees
only that GPU (:mod:`flconfig.launch.resources`). With ``--backend ray`` the sites run in
Ray actors across a Ray cluster's nodes instead (:mod:`flconfig.launch.ray_backend`),
watched, stopped and reported as the processes are.
Torch threads are divided between the processes so they never oversubscribe
the cores. With ``tensorboard`` set, a TensorBoard server on the run's
``tb_events`` folder starts before training and, unless asked to stop with
the job, serves until Ctrl-C.
"""

from __future__ import annotations

import contextlib
import errno
import json
import math
import os
import re
import secrets
import select
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TextIO

from ..config.job import Job
from ..config.meta import BACKENDS, NAME_RE
from ..errors import ConfigError, LaunchError, errors_only, storage_message
from ..files import write_atomic
from ..runs import RECORD_FILE, SERVER_FOLDER, RunRecord, ended, new_run_id, write_record
from ..runtime.live_events import EVENT_MARKER
from ..runtime.planner import plan_run
from ..runtime.process_events import process_ended_line, short_list
from ..runtime.spec import END_TIMEOUT, STARTUP_TIMEOUT, STATUS_MARKER, WorkerSpec, wait_for_port
from ..validate.loader import inspect_job
from ..validate.report import write_text
from .live_view import PlainView, View, open_view
from .processes import Process, Zygote, popen_or_fork
from .ray_backend import RAY_MISSING, RayCluster, RayWorker, locate, placement_lines, ray_installed
from .resources import (
    ActorPlan,
    cuda_problem,
    device_for_process,
    gpu_groups,
    plan_actors,
    site_resources,
)

MAX_SOLO_SITES = 8
#: The folder TBAnalyticsReceiver writes to, relative to the server's run directory.
DEFAULT_TB_FOLDER = "tb_events"
#: Seconds TensorBoard may take to start and answer HTTP.
TENSORBOARD_START_TIMEOUT = 90.0
#: Seconds a site (and the server) waits for the connection beyond the worker spec's
#: STARTUP_TIMEOUT, per site starting at once.
CONNECT_TIMEOUT_PER_SITE = 0.25
#: Seconds between two live metric summaries in the terminal.
LIVE_METRICS_INTERVAL = 2.0
#: Seconds the launch waits for Ray to place its actors before it names where they run.
PLACEMENT_WAIT = 30.0
#: What the launcher watches: a process of the job, or a Ray actor hosting sites.
Watched = Process | RayWorker


@dataclass
class LaunchOptions:
    """What ``flconfig launch`` was asked to do."""

    job: Path
    workspace: Path = Path("workspace")
    clients: list[str] | None = None
    num_clients: int | None = None
    #: The run's id: its folder under the workspace's server and each site ("": the job
    #: folder's name and the time it starts, unique in the workspace; see flconfig.runs).
    job_id: str = ""
    device: str | None = None  # None: each learner uses its own configured device
    threads: int | None = None
    processes: int | None = None
    heartbeat_timeout: float | None = None
    allowed_modules: Sequence[str] = ()
    python_path: Sequence[Path] = ()  # folders the job may import from (--python-path)
    #: All of this machine's environment the job's configs may read (--env; flconfig's own
    #: FLCONFIG_* settings): HOCON ${X}, FLARE {$X}, PYTHONPATH. Empty: none.
    environ: Mapping[str, str] = field(default_factory=dict)
    tensorboard: bool = False  # serve the run's TensorBoard files while it runs
    tensorboard_port: int = 0  # 0: any free port
    tensorboard_exit: bool = False  # stop TensorBoard with the job instead of at Ctrl-C
    live_metrics: bool = True  # print each site's latest scalars while the job runs
    #: What a client site keeps between tasks, "keep" or "release" (None: the job's meta
    #: ``site_state``, else "keep"); see :class:`flconfig.runtime.plan.RunPlan`.
    site_state: str | None = None
    #: Fork the server and workers from one process that imported torch once (Linux). The
    #: launching process then becomes the subreaper of its descendants (it adopts, and must
    #: reap, any orphan below it), so only the ``flconfig launch`` command does it by
    #: default; False starts each process as a new interpreter.
    fork: bool = False
    #: "process": the sites in worker processes here; "ray": in Ray actors (``ray_address``:
    #: a running cluster, ``auto`` or host:port; None: a local Ray instance for this launch).
    #: None: the job's meta ``launch.backend``, else "ray" where ``ray_address`` is given,
    #: else "process".
    backend: str | None = None
    ray_address: str | None = None
    #: What each site needs while it trains (Ray): CPUs and GPUs, fractions allowed; None:
    #: the job's ``resource_spec`` for the site, else its meta ``launch.site_cpus`` and
    #: ``site_gpus``, else 1 CPU and no GPU.
    site_cpus: float | None = None
    site_gpus: float | None = None
    #: GPUs the process backend spreads the sites over (site i on gpus[i % n]); empty: none.
    gpus: Sequence[int] = ()
    #: What the launch shows while the job runs (:mod:`flconfig.launch.live_view`): "text", a
    #: live view where ``out`` is a terminal and plain lines elsewhere; "plain", the lines
    #: always; "json", one JSON event a line on ``out`` and the lines on ``err``.
    format: str = "text"
    out: TextIO = field(default_factory=lambda: sys.stdout)
    err: TextIO = field(default_factory=lambda: sys.stderr)


def plan_workers(sites: Sequence[str], cores: int, processes: int | None = None,
                 apps: Mapping[str, str] | None = None) -> list[list[str]]:
    """Group sites into worker processes: one each while there are no more sites than cores
    (and at most MAX_SOLO_SITES), else a pool of one process per core (at most MAX_SOLO_SITES).

    Each process imports torch once (seconds of CPU): more processes than cores only
    makes them wait for each other. With ``apps`` (site -> the app deployed to it), a
    process hosts the sites of one app only, so no site has another app's ``custom/``
    folder on its import path; each app gets at least one process.
    """
    if processes is None:
        solo = len(sites) <= min(max(1, cores), MAX_SOLO_SITES)
        processes = len(sites) if solo else max(2, min(cores, MAX_SOLO_SITES))
    processes = max(1, min(processes, len(sites)))
    by_app: dict[str, list[str]] = {}
    for site in sites:
        by_app.setdefault(apps.get(site, "") if apps else "", []).append(site)
    groups: list[list[str]] = []
    for members in by_app.values():
        share = max(1, min(len(members), round(processes * len(members) / len(sites))))
        mine: list[list[str]] = [[] for _ in range(share)]
        for i, site in enumerate(members):
            mine[i % share].append(site)
        groups.extend(mine)
    return groups


def threads_per_process(cores: int, n_processes: int) -> int:
    """Torch threads for each process so that together they use the cores once."""
    return max(1, cores // max(1, n_processes))


def _choose_sites(job: object, opts: LaunchOptions) -> list[str]:
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


def _check_enough_sites(job: Job, sites: list[str]) -> None:
    """LaunchError, before anything starts, where fewer sites would run than the job waits
    for (its meta's ``min_clients``, or an enabled server workflow's): the run could only
    fail once its wait for them timed out."""
    meta_needs = job.meta.min_clients or 0
    workflow_needs = job.workflow_min_clients()
    needs = max(meta_needs, workflow_needs)
    if len(sites) >= needs:
        return
    if meta_needs >= workflow_needs:
        who = f"the job's meta asks for at least {needs} (min_clients)"
    else:
        server = job.server_config
        waiting = [w.id for w in (server.workflows if server else ()) if not w.disabled
                   and w.args.get("min_clients") == workflow_needs]
        name = f"workflow {waiting[0]!r}" if waiting and waiting[0] else "a workflow"
        who = f"{name} waits for {needs} (its min_clients)"
    raise LaunchError(f"{len(sites)} client site(s) would run, and {who}: run at least {needs} (-n {needs})")


def tb_folder(job: object) -> str | None:
    """The folder the server's TensorBoard receiver writes to (relative to its run
    directory), or None when the server config has none.

    A receiver is any enabled server component whose class takes a ``tb_folder``
    argument (TBAnalyticsReceiver and its subclasses).
    """
    config = job.server_config  # type: ignore[attr-defined]
    if config is None:
        return None
    for spec in config.all_specs():
        info = spec.info
        if spec.disabled or info is None or "tb_folder" not in info.args:
            continue
        folder = spec.args.get("tb_folder", DEFAULT_TB_FOLDER)
        return folder if isinstance(folder, str) and folder else DEFAULT_TB_FOLDER
    return None


def launch(opts: LaunchOptions, zygote: Zygote | None = None) -> int:
    """Run the job; returns the process exit code (0 success, 1 job failed, 130 interrupted),
    shown as ``opts.format`` asks (:mod:`flconfig.launch.live_view`).

    With ``opts.fork`` (Linux), the zygote that forks the job's processes starts first,
    so its torch import overlaps the job's check; it exits once they are all started.
    ``zygote``: one the caller started already (``flconfig launch`` does, before it even
    parses its command line), closed here, used or not. CUDA asked for where there is none
    is refused first, before anything starts (once the job's meta is read where the backend
    comes from it)."""
    view = open_view(opts.format, opts.out, opts.err)
    # The launch's own lines go through the view; the sites' latest metrics are lines only
    # where the view shows lines alone (a live view and JSON have them as events).
    opts = replace(opts, out=view.out, live_metrics=opts.live_metrics and isinstance(view, PlainView))
    code = 1
    try:
        if not opts.fork and zygote is not None:
            zygote.close()
            zygote = None
        if opts.backend is not None or opts.ray_address is not None:
            _check_backend(opts, _backend(opts, None))
        if opts.fork and zygote is None:
            zygote = Zygote.start(str(opts.workspace.resolve()))
        code = _launch(opts, zygote, view)
        return code
    except LaunchError as exc:
        view.event({"event": "end", "ok": False, "code": 2, "error": str(exc)})
        raise
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        if zygote is not None:
            zygote.close()
        if not view.ended:  # an invalid job, Ctrl-C, a crash: the end says only how it exited
            view.event({"event": "end", "ok": code == 0, "code": code})
        view.close()


def _backend(opts: LaunchOptions, job: Job | None) -> str:
    """The backend the sites run on: the command line's (``--backend``, or ray where
    ``--ray-address`` is given), else the job's meta ``launch`` (``job`` None: not read yet),
    else process."""
    meta = job.meta.launch.backend if job is not None else None
    return opts.backend or ("ray" if opts.ray_address is not None else None) or meta or "process"


def _check_backend(opts: LaunchOptions, backend: str) -> None:
    """LaunchError where the options do not go with ``backend`` or this machine lacks what
    it needs (Ray; the GPUs or CUDA asked for)."""
    if backend not in BACKENDS:
        raise LaunchError(f"unknown backend {backend!r}: use {' or '.join(BACKENDS)}")
    if backend == "ray":
        if opts.gpus:
            chosen = "--backend ray" if opts.backend or opts.ray_address else "the ray backend (the job's meta)"
            raise LaunchError(f"--gpus places sites on this machine's GPUs (the process backend); "
                              f"with {chosen}, give each site GPUs with --site-gpus")
        if not ray_installed():
            raise LaunchError(RAY_MISSING if opts.backend == "ray" or opts.ray_address is not None
                              else "the job's meta asks for the ray backend (launch.backend), and "
                                   "Ray is not installed: pip install 'flconfig[ray]', or run it with "
                                   "--backend process")
        return
    if opts.ray_address is not None:
        raise LaunchError("--ray-address is for --backend ray")
    for flag, value in (("--site-cpus", opts.site_cpus), ("--site-gpus", opts.site_gpus)):
        if value is not None:
            raise LaunchError(f"{flag} is for --backend ray (the process backend places sites "
                              "with --gpus)")
    problem = cuda_problem(opts.device, opts.gpus)
    if problem is not None:
        raise LaunchError(problem)


def _launch(opts: LaunchOptions, zygote: Zygote | None, view: View) -> int:
    out = opts.out
    workspace = opts.workspace.resolve()
    if not opts.job_id:  # a run of its own: none overwrites another
        opts = replace(opts, job_id=new_run_id(workspace, Path(os.path.abspath(opts.job)).name))
    if not NAME_RE.match(opts.job_id):
        raise LaunchError(f"invalid job id {opts.job_id[:80]!r}: use 1 to 128 letters, digits, "
                          "'.', '_', '-', starting with a letter or digit")
    if (workspace / SERVER_FOLDER / opts.job_id / RECORD_FILE).exists():
        print(f"flconfig: note: run {opts.job_id} exists in {workspace}: its files are replaced "
              "(without --job-id each run gets an id of its own)", file=out, flush=True)
    # Checked for this run (its workspace and job id), so planning it resolves no config twice.
    job, problems = inspect_job(opts.job, allowed_modules=opts.allowed_modules,
                                python_path=opts.python_path, environ=opts.environ,
                                workspace=opts.workspace.resolve(), job_id=opts.job_id)
    if job is None or errors_only(problems):
        write_text(problems, 1, out)
        print("flconfig: the job is invalid; nothing was started", file=out)
        errors = errors_only(problems)
        first = f"; the first: {str(errors[0]).splitlines()[0]}" if errors else ""
        view.event({"event": "end", "ok": False, "code": 1,
                    "error": f"the job is invalid ({len(errors)} error(s)){first}"})
        return 1
    sites = _choose_sites(job, opts)
    _check_enough_sites(job, sites)
    backend = _backend(opts, job)
    if opts.backend is None and opts.ray_address is None:  # the job's meta chose, or no one did
        _check_backend(opts, backend)

    server_config = job.server_config
    heartbeat = opts.heartbeat_timeout
    if heartbeat is None and server_config is not None:
        heartbeat = server_config.doc.data_at(("server", "heart_beat_timeout"))
    heartbeat = 60.0 if heartbeat is None else float(heartbeat)
    if not (math.isfinite(heartbeat) and heartbeat > 0):  # the CLI and the schema refuse these
        raise LaunchError(f"the heartbeat timeout must be a finite number of seconds above 0, "
                          f"got {heartbeat:g}")

    cores = os.cpu_count() or 1
    apps = {site: job.meta.app_for(site) or "" for site in sites}
    cluster: RayCluster | None = None
    actor_plans: list[ActorPlan] = []
    group_gpus: list[int | None] = []
    if backend == "ray":
        cluster = RayCluster(opts.ray_address)
        cluster.connect()
    try:
        if cluster is not None:
            actor_plans, about = _plan_ray(job, sites, apps, cluster, opts)
            groups = [list(plan.sites) for plan in actor_plans]
            threads = opts.threads or threads_per_process(cores, 2)
        else:
            if opts.gpus:
                placed = gpu_groups(sites, opts.gpus, opts.processes, apps)
                groups, group_gpus = [g for _, g in placed], [gpu for gpu, _ in placed]
            else:
                groups = plan_workers(sites, cores, opts.processes, apps=apps)
            threads = opts.threads or threads_per_process(cores, len(groups) + 1)
            about = (f"in {len(groups)} worker process(es), {threads} torch thread(s) each")
        return _run(job, sites, groups, group_gpus, actor_plans, cluster, threads, heartbeat, about,
                    opts, zygote, view)
    finally:
        if cluster is not None:
            cluster.close()


def _plan_ray(job: Job, sites: list[str], apps: Mapping[str, str], cluster: RayCluster,
              opts: LaunchOptions) -> tuple[list[ActorPlan], str]:
    """The Ray actors for ``sites`` on the cluster's resources, and the launch line's words
    for them; LaunchError where the cluster cannot hold a site."""
    defaults = job.meta.launch
    needs = site_resources(sites, job.meta.resource_spec, opts.site_cpus, opts.site_gpus,
                           defaults.site_cpus, defaults.site_gpus)
    nodes = cluster.nodes()
    cpus, gpus = sum(n[0] for n in nodes), sum(n[1] for n in nodes)
    if (opts.device or "").startswith("cuda"):
        if not gpus:
            raise LaunchError(f"--device {opts.device}: the Ray cluster has no GPU")
        if not all(needs[site].gpus for site in sites):
            raise LaunchError(f"--device {opts.device} with --backend ray: give each site a share "
                              "of a GPU with --site-gpus (e.g. 0.5), so Ray assigns it one")
    plans = plan_actors(sites, needs, nodes, opts.processes, apps)
    kinds = sorted({f"{p.cpus:g} CPU" + (f", {p.gpus:g} GPU" if p.gpus else "") for p in plans})
    have = f"{cpus:g} CPU" + (f", {gpus:g} GPU" if gpus else "")
    return plans, (f"in {len(plans)} Ray actor(s) reserving {' or '.join(kinds)} each, on "
                   f"{len(nodes)} Ray node(s) with {have}")


def _run(job: Job, sites: list[str], groups: list[list[str]], group_gpus: list[int | None],
         actor_plans: list[ActorPlan], cluster: RayCluster | None, threads: int, heartbeat: float,
         about: str, opts: LaunchOptions, zygote: Zygote | None, view: View) -> int:
    """:func:`_run_job`, recorded under the workspace (:mod:`flconfig.runs`): a record when it
    starts, completed when it ends, however it ends."""
    workspace = opts.workspace.resolve()
    _make_workspace(workspace, workspace / ".flconfig" / opts.job_id)
    receiver_folder = tb_folder(job)
    run_dir = f"{SERVER_FOLDER}/{opts.job_id}"
    record = RunRecord(opts.job_id, job.name, str(opts.job), time.time(), sites=tuple(sites), pid=os.getpid(),
                       backend="ray" if cluster is not None else "process",
                       tb_folder=f"{run_dir}/{receiver_folder}" if receiver_folder else "")
    write_record(workspace, record)
    code = 1
    try:
        code = _run_job(job, sites, groups, group_gpus, actor_plans, cluster, threads, heartbeat, about,
                        opts, zygote, view)
    except KeyboardInterrupt:
        code = 130
        raise
    finally:
        error = "" if code == 0 else str(_read_status(workspace / run_dir).get("error") or "")
        with contextlib.suppress(OSError):  # a full disk: the run's own message says so
            write_record(workspace, ended(record, code, error))
    return code


def _run_job(job: Job, sites: list[str], groups: list[list[str]], group_gpus: list[int | None],
             actor_plans: list[ActorPlan], cluster: RayCluster | None, threads: int, heartbeat: float,
             about: str, opts: LaunchOptions, zygote: Zygote | None, view: View) -> int:
    """Plan the run, start its server and sites (processes here, or Ray actors), watch them
    until the server ends; the exit code."""
    out = opts.out
    workspace = opts.workspace.resolve()
    receiver_folder = tb_folder(job)
    tb_dir = workspace / "server" / opts.job_id / (receiver_folder or DEFAULT_TB_FOLDER)
    control = workspace / ".flconfig" / opts.job_id
    port_file = control / "server.port"
    port_file.unlink(missing_ok=True)
    # Every site's configuration, resolved for this run and checked once, here: the
    # server and the workers build from the plan and never read the job again.

    try:
        run_plan = plan_run(job, sites, workspace, opts.job_id, environ=opts.environ,
                            site_state=opts.site_state)
    except ConfigError as exc:
        write_text(exc.problems, 1, out)
        print("flconfig: the job is invalid for this run; nothing was started", file=out)
        return 1
    plan_file = control / "plan.json"
    plan_text = run_plan.to_json()
    _write_private(plan_file, plan_text)
    spec = WorkerSpec(
        plan=str(plan_file),
        workspace=str(workspace),
        job_id=opts.job_id,
        sites=tuple(sites),
        min_clients=job.meta.min_clients,
        credentials={site: secrets.token_urlsafe(32) for site in sites},
        heartbeat_timeout=heartbeat,
        threads=threads,
        device=opts.device,
        port_file=str(port_file),
        live_metrics_interval=LIVE_METRICS_INTERVAL if opts.live_metrics else 0,
        # A site's wait to connect grows with the number of sites starting at once.
        startup_timeout=STARTUP_TIMEOUT + CONNECT_TIMEOUT_PER_SITE * len(sites),
        # The server reads on its stdin what _watch tells it: a site's process died.
        process_events=True,
        # Reached from the Ray cluster's nodes, or from this machine only.
        host=cluster.server_host() if cluster is not None else "127.0.0.1",
    )
    spec_file = spec.write(control / "spec.json")

    released = "; sites released between tasks" if run_plan.site_state == "release" else ""
    print(f"flconfig: launching job '{job.name}' as run {opts.job_id} with {len(sites)} client site(s) "
          f"{about}; workspace {workspace}{released}", file=out, flush=True)
    view.event({"event": "launch", "job": job.name, "run": opts.job_id, "sites": len(sites),
                "backend": "ray" if cluster is not None else "process", "workers": len(groups),
                "workspace": str(workspace)})
    for gpu in dict.fromkeys(g for g in group_gpus if g is not None):
        on = [site for group, g in zip(groups, group_gpus, strict=True) if g == gpu for site in group]
        print(f"flconfig: GPU {gpu}: {short_list(on)}", file=out, flush=True)
    procs: list[Watched] = []
    started = time.monotonic()
    tensorboard: subprocess.Popen[str] | None = None
    tb_url = ""
    try:
        if opts.tensorboard:
            if receiver_folder is None:
                print("flconfig: note: the server config has no TBAnalyticsReceiver; "
                      "TensorBoard will show no runs", file=out, flush=True)
            # TensorBoard starts alongside the server (it takes seconds to import); the
            # folder exists first so it can serve before any record arrives.
            tb_dir.mkdir(parents=True, exist_ok=True)
            tb_log = control / "tensorboard.log"
            tensorboard = _start_tensorboard(tb_dir, opts.tensorboard_port, tb_log)
            procs.append(tensorboard)
        # Then the zygote imports what the workers need while the server starts (the Ray
        # backend's sites import theirs in their actors).
        server = popen_or_fork(zygote, ["server", "--spec", str(spec_file)], pipe_stdout=True,
                               pipe_stdin=True, prepare_training=cluster is None)
        procs.append(server)
        server_status: dict[str, object] = {}
        pump = threading.Thread(target=_pump, args=(server.stdout, view, server_status), daemon=True)
        pump.start()
        workers: list[tuple[Watched, list[str], Path]] = []
        actors: list[RayWorker] = []
        if cluster is not None:
            # Placed and started by Ray while the server starts; their sites once it listens.
            actors = cluster.start_actors(actor_plans, control)
            procs.extend(actors)
            if zygote is not None:
                zygote.close()
        elif tensorboard is None:
            # Beside the server: they wait for its port, say Hello, then import torch
            # and build while the server starts the first round.
            workers = _start_workers(groups, spec_file, control, procs, zygote, group_gpus)
            _started(view, workers, "process")
            if zygote is not None:
                zygote.close()  # all forked: its memory goes back now
        port = wait_for_port(port_file, STARTUP_TIMEOUT, alive=lambda: server.poll() is None)
        if port is None:
            server.wait(timeout=30)
            pump.join(timeout=5)
            return _finish(workspace, opts.job_id, server.returncode, [], out, started, tb_dir,
                           status=server_status, view=view)
        if tensorboard is not None:
            # Before the sites start: the URL is on screen before training begins.
            tb_url = _wait_for_tensorboard(tensorboard, tb_log, TENSORBOARD_START_TIMEOUT)
            print(f"flconfig: TensorBoard at {tb_url}", file=out, flush=True)
        if actors:
            ready = spec.with_address(f"{spec.host}:{port}")
            for actor in actors:
                actor.start(ready, plan_text)
            locate(actors, timeout=PLACEMENT_WAIT)
            for line in placement_lines(actors):
                print(line, file=out, flush=True)
            workers = [(actor, actor.sites, actor.err_file) for actor in actors]
            _started(view, workers, "actor")
        elif not workers:
            spec.with_address(f"127.0.0.1:{port}").write(spec_file)
            workers = _start_workers(groups, spec_file, control, procs, zygote, group_gpus)
            _started(view, workers, "process")
            if zygote is not None:
                zygote.close()
        # A server whose sites are all gone notices within its heartbeat timeout and then
        # waits up to END_TIMEOUT for Byes: give it that long before stopping it.
        _watch(server, workers, out, grace=heartbeat + END_TIMEOUT + 15.0, tensorboard=tensorboard)
        pump.join(timeout=5)
        deadline = time.monotonic() + 30
        for proc, _, _ in workers:
            try:
                proc.wait(timeout=max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        failures = [(group, proc.wait(), err) for proc, group, err in workers if proc.wait() != 0]
        serving = tensorboard is not None and tensorboard.poll() is None
        code = _finish(workspace, opts.job_id, server.returncode, failures, out, started, tb_dir,
                       tb_url if serving else "", status=server_status, view=view)
        if code == 0 and serving and not opts.tensorboard_exit:
            assert tensorboard is not None
            _serve_until_interrupted(tensorboard, tb_url, out)
        return code
    except KeyboardInterrupt:
        print("\nflconfig: interrupted; stopping every process it started", file=out, flush=True)
        return 130
    finally:
        _stop_all(procs)


def _watch(server: Process, workers: list[tuple[Watched, list[str], Path]],
           out: TextIO, grace: float = 15.0, tensorboard: subprocess.Popen[str] | None = None) -> None:
    """Wait for the server; say when a worker (or TensorBoard) dies, and tell the server
    at once which sites it hosted (:mod:`flconfig.runtime.process_events`); stop a
    server no site is left to talk to."""
    reported: set[int] = set()
    all_gone_since: float | None = None
    said_waiting = False
    while not _exited(server, 0.2):
        if tensorboard is not None and tensorboard.poll() is not None:
            print(f"flconfig: TensorBoard exited with code {tensorboard.returncode}; the job goes on",
                  file=out, flush=True)
            tensorboard = None
        for i, (proc, group, _) in enumerate(workers):
            rc = proc.poll()
            if rc not in (None, 0) and i not in reported:
                reported.add(i)
                if isinstance(proc, RayWorker):
                    print(f"flconfig: {proc.ended(rc)}", file=out, flush=True)
                    _tell_server(server, process_ended_line(group, rc, proc.lost or None))
                else:
                    print(f"flconfig: the process of {', '.join(group)} exited with code {rc}", file=out, flush=True)
                    _tell_server(server, process_ended_line(group, rc))
        if all(proc.poll() is not None for proc, _, _ in workers):
            if all_gone_since is None:
                all_gone_since = time.monotonic()
            gone_for = time.monotonic() - all_gone_since
            if gone_for > 2.0 and not said_waiting:  # a normal end takes well under that
                said_waiting = True
                print("flconfig: every client process has exited; waiting for the server to "
                      f"finish (up to {grace:.0f} s)", file=out, flush=True)
            if gone_for > grace:
                print("flconfig: the server did not finish; stopping it", file=out, flush=True)
                server.terminate()
                server.wait()


def _exited(proc: Process, timeout: float) -> bool:
    """Whether ``proc`` exits within ``timeout`` seconds, noticed as it exits (the end of
    every run waits on it): woken by its pidfd on Linux, else by polling every few ms."""
    if proc.poll() is not None:
        return True
    try:
        pidfd = os.pidfd_open(proc.pid)  # it is ours and not yet reaped: the pid is its own
    except (AttributeError, OSError):
        try:
            proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            return False
        return True
    try:
        select.select([pidfd], [], [], timeout)  # readable once it has exited
    finally:
        os.close(pidfd)
    return proc.poll() is not None


def _tell_server(server: Process, line: str) -> None:
    """Write ``line`` to the server's stdin; nothing if it is gone (its own end says why)."""
    if server.stdin is None:
        return
    try:
        server.stdin.write(line)
        server.stdin.flush()
    except (OSError, ValueError):
        pass


def _make_workspace(workspace: Path, control: Path) -> None:
    """Create the workspace (LaunchError saying why it cannot be one)."""
    for parent in (workspace, *workspace.parents):
        if parent.exists():
            if not parent.is_dir():
                what = "the workspace" if parent == workspace else f"{parent}, on the way to it,"
                raise LaunchError(f"workspace {workspace}: {what} is a file, not a folder")
            break
    try:
        control.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        if exc.errno in (errno.ENOSPC, errno.EDQUOT):
            raise LaunchError(storage_message(exc, workspace)) from None
        raise LaunchError(f"cannot create the workspace {workspace}: {exc.strerror}") from None


#: glibc malloc arenas in a process hosting many sites: glibc gives each of up to 8 × cores
#: threads an arena of its own, and a thousand sites' threads then hold hundreds of MB of
#: freed memory in them (1,024 sites: 2.3 GB with the default, 1.8–1.95 GB with one arena,
#: no slower). The user's own MALLOC_ARENA_MAX wins.
POOLED_MALLOC_ARENAS = "1"


def worker_environment(sites: int) -> dict[str, str]:
    """The environment of a client worker process hosting ``sites`` sites."""
    env = dict(os.environ)
    if sites > 1:
        env.setdefault("MALLOC_ARENA_MAX", POOLED_MALLOC_ARENAS)
    return env


def _started(view: View, workers: Sequence[tuple[Watched, list[str], Path]], kind: str) -> None:
    """The ``workers`` event: the worker processes (or Ray actors) hosting the sites started."""
    view.event({"event": "workers", "kind": kind, "count": len(workers),
                "sites": sum(len(group) for _, group, _ in workers)})


def _start_workers(groups: list[list[str]], spec_file: Path, control: Path,
                   procs: list[Watched], zygote: Zygote | None = None,
                   gpus: Sequence[int | None] = ()) -> list[tuple[Watched, list[str], Path]]:
    """Start one client worker process per group of sites (forked from ``zygote`` if any);
    with ``gpus`` (one per group, or None), each sees only its group's GPU."""
    workers: list[tuple[Watched, list[str], Path]] = []
    for i, group in enumerate(groups):
        err_file = control / f"worker-{i}.err"
        env = worker_environment(len(group))
        gpu = gpus[i] if i < len(gpus) else None
        if gpu is not None:
            env["CUDA_VISIBLE_DEVICES"] = device_for_process(gpu)
        with open(err_file, "w") as err:  # the child keeps its own descriptor
            proc = popen_or_fork(zygote, ["clients", "--spec", str(spec_file), "--sites", ",".join(group)],
                                 env=env, stdout=err)
        procs.append(proc)
        workers.append((proc, group, err_file))
    return workers


def _write_private(path: Path, text: str) -> None:
    """Write ``text`` to ``path``, readable by this user only (tokens inside), all at once."""
    write_atomic(path, text.encode("utf-8"), mode=0o600)


def _pump(stream: TextIO | None, view: View, status: dict[str, object] | None = None) -> None:
    """Hand the server's output to ``view``: its lines, and its live events; its status line
    goes into ``status`` instead."""

    if stream is None:
        return
    for line in stream:
        if line.startswith(EVENT_MARKER):
            try:
                event = json.loads(line[len(EVENT_MARKER):])
            except ValueError:
                continue
            if isinstance(event, dict):
                view.event(event)
            continue
        if line.startswith(STATUS_MARKER):
            if status is not None:
                try:
                    status.update(json.loads(line[len(STATUS_MARKER):]))
                except ValueError:
                    pass
            continue
        view.line(line)


_TB_URL = re.compile(r"^TensorBoard \S+ at (http://\S+) ", re.MULTILINE)


def _start_tensorboard(logdir: Path, port: int, log_file: Path) -> subprocess.Popen[str]:
    """Start TensorBoard on 127.0.0.1 (``port`` 0: any free port), its output in ``log_file``."""
    with open(log_file, "w") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "flconfig.runtime.worker", "tensorboard", "--logdir", str(logdir),
             "--host", "127.0.0.1", "--port", str(port)],
            stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, text=True)


def _wait_for_tensorboard(proc: subprocess.Popen[str], log_file: Path, timeout: float) -> str:
    """The URL TensorBoard serves at, once it answers HTTP; LaunchError if it does not start."""
    import urllib.error
    import urllib.request

    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy
    deadline = time.monotonic() + timeout
    url = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        if not url:
            found = _TB_URL.search(log_file.read_text(errors="replace"))
            url = found.group(1) if found else ""
        if url:
            try:
                with opener.open(url + "data/environment", timeout=2) as reply:
                    if reply.status == 200:
                        return url
            except (urllib.error.URLError, OSError):
                pass
        time.sleep(0.1)
    lines = [line.strip() for line in log_file.read_text(errors="replace").splitlines() if line.strip()]
    errors = [line.split(":", 1)[1].strip() for line in lines if line.startswith(("ERROR:", "Error:"))]
    if proc.poll() is not None:
        why = f"{errors[-1]} (exit code {proc.returncode})" if errors else f"it exited with code {proc.returncode}"
    else:
        why = f"it did not answer within {timeout:.0f} s"
    detail = "" if errors else "".join(f"\n    {line}" for line in lines[-3:])
    raise LaunchError(f"TensorBoard did not start: {why}; its log: {log_file}{detail}")


def _serve_until_interrupted(tensorboard: subprocess.Popen[str], url: str, out: TextIO) -> None:
    """Keep TensorBoard serving after the job until Ctrl-C (or until it exits)."""
    print(f"flconfig: TensorBoard keeps serving {url}; press Ctrl-C to stop it", file=out, flush=True)
    try:
        while tensorboard.poll() is None:
            time.sleep(0.2)
        print(f"flconfig: TensorBoard exited with code {tensorboard.returncode}", file=out, flush=True)
    except KeyboardInterrupt:
        print("\nflconfig: stopping TensorBoard", file=out, flush=True)


def _stop_all(procs: list[Watched]) -> None:
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
    """One line: how the final global model scored at each site (the PyTorch persistor's
    ``SRV_FL_global_model.pt``, else the server's first model, e.g. NumPy's ``SRV_server``)."""
    try:
        results = json.loads(results_file.read_text())
        server_models = sorted({m for models in results.values() for m in models if m.startswith("SRV_")})
        name = "SRV_FL_global_model.pt" if "SRV_FL_global_model.pt" in server_models else (
            server_models[0] if server_models else "")
        scores = [f"{site} {', '.join(f'{v:.3f}' for v in models[name].values())}"
                  for site, models in results.items() if name in models]
    except (ValueError, TypeError, AttributeError, OSError):
        return "  (cross-site results unreadable)"
    if not scores:
        return "  (no global model scores)"
    label = "global model" if name == "SRV_FL_global_model.pt" else f"global model ({name})"
    return f"  {label} validated at: " + ", ".join(scores)


def _read_status(run_dir: Path) -> dict[str, object]:
    try:
        status = json.loads((run_dir / "status.json").read_text())
    except (OSError, ValueError):
        return {"ok": False}
    return status if isinstance(status, dict) else {"ok": False}


def _site_errors(err: Path) -> list[str]:
    """The ``site: error`` lines a worker printed last (see ``run_clients``)."""
    try:
        lines = err.read_text(errors="replace").strip().splitlines()
    except OSError:
        return []
    return lines[-5:]


def _finish(workspace: Path, job_id: str, server_rc: int | None, failures: list[tuple[list[str], int, Path]],
            out: TextIO, started: float, tb_dir: Path, tb_url: str = "",
            status: dict[str, object] | None = None, view: View | None = None) -> int:
    """Say how the run ended, and the ``end`` event; the exit code."""
    run_dir = workspace / "server" / job_id
    status = dict(status) if status else _read_status(run_dir)
    elapsed = time.monotonic() - started
    code, status = _judge(server_rc, failures, status)
    if view is not None:  # first: a live view ends its display, and the lines follow it
        end: dict[str, object] = {"event": "end", "ok": code == 0, "code": code, "run": job_id,
                                  "elapsed_s": round(elapsed, 2), "run_dir": str(run_dir),
                                  "server_log": str(run_dir / "log.txt")}
        if code != 0:
            end["site"] = "server" if status.get("site") is None else status.get("site")
            end["error"] = str(status.get("error"))
        models = _models(run_dir)
        if code == 0 and models:
            end["global_model"] = str(run_dir / models[0])
        if tb_dir.is_dir():
            end["tb_events"] = str(tb_dir)
        cross = run_dir / "cross_site_val" / "cross_val_results.json"
        if code == 0 and cross.exists():
            end["cross_site_val"] = str(cross)
        view.event(end)
    _say_finish(workspace, job_id, code, failures, out, elapsed, tb_dir, tb_url, status)
    return code


def _models(run_dir: Path) -> list[str]:
    """The models the server saved in its run folder, PyTorch's first."""
    return sorted(p.name for p in run_dir.glob("*.pt")) + sorted(p.name for p in run_dir.glob("*.safetensors"))


def _judge(server_rc: int | None, failures: list[tuple[list[str], int, Path]],
           status: dict[str, object]) -> tuple[int, dict[str, object]]:
    """The exit code of a run whose server said ``status`` and exited ``server_rc``, and the
    status it ended with: failed, if a worker exited 1."""
    # A worker that exited 1 had a site fail (records it could not deliver, a failure on
    # a background thread): the job failed. One killed by a signal was a lost site,
    # which the server already judged against min_clients.
    site_failed = []
    for group, rc, err in failures:
        if rc == 1:
            tail = _site_errors(err)
            site_failed.append(tail[-1] if tail else f"{', '.join(group)}: exited with code 1")
    if status.get("ok") and server_rc == 0 and site_failed:
        status = {"ok": False, "site": "", "error": site_failed[0]}
    if status.get("ok") and server_rc == 0:
        return 0, status
    if not status.get("error"):
        status = {**status, "error": f"the server exited with code {server_rc}"}
    return 1, status


def _say_finish(workspace: Path, job_id: str, code: int, failures: list[tuple[list[str], int, Path]],
                out: TextIO, elapsed: float, tb_dir: Path, tb_url: str, status: dict[str, object]) -> None:
    """Print how the run ended (``code``, ``status``: :func:`_judge`'s)."""
    run_dir = workspace / "server" / job_id
    for group, rc, err in failures:
        print(f"flconfig: worker for {', '.join(group)} exited with code {rc}", file=out)
        for line in _site_errors(err):
            print(f"    {line}", file=out)
    if code == 0:
        models = _models(run_dir)
        print(f"flconfig: job finished in {elapsed:.1f} s", file=out)
        print(f"  run:           {job_id} (flconfig runs {workspace} lists every run)", file=out)
        if models:
            print(f"  global model:  {run_dir / models[0]}", file=out)
        print(f"  server log:    {run_dir / 'log.txt'}", file=out)
        print(f"  site logs:     {workspace}/<site>/{job_id}/log.txt", file=out)
        if tb_url:
            print(f"  TensorBoard:   {tb_url} (serving {tb_dir})", file=out)
        elif tb_dir.is_dir():
            print(f"  TensorBoard:   tensorboard --logdir {tb_dir}", file=out)
        cross = run_dir / "cross_site_val" / "cross_val_results.json"
        if cross.exists():
            print(f"  cross-site validation: {cross}", file=out)
            print(_global_model_scores(cross), file=out)
        out.flush()
        return
    site = status.get("site")
    error = status.get("error")
    where = "" if site == "" else f"{site or 'server'}: "
    print(f"flconfig: job failed after {elapsed:.1f} s: {where}{error}", file=out)
    print(f"  server log: {run_dir / 'log.txt'}", file=out)
    out.flush()
