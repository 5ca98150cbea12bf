"""``flconfig launch JOB``: validate, then run the server and the client sites."""

from __future__ import annotations

import argparse
import errno
import sys
from pathlib import Path

from ..errors import storage_message
from . import path_problem
from .validate_cmd import (
    ALLOW_HELP,
    KEEP_UNDEFINED_HELP,
    PYTHON_PATH_HELP,
    add_env_option,
    job_environment,
)


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "launch", help="validate a job, then run it (server and sites as separate processes)",
        description="Validate a job, then run its server and client sites as separate processes on "
                    "this machine, talking over gRPC on 127.0.0.1. An invalid job is refused and "
                    "nothing starts. Exit 0: the job finished; 1: it failed or was invalid; "
                    "2: usage error; 130: interrupted.")
    parser.add_argument("job", metavar="JOB", help="job folder (or app folder)")
    who = parser.add_mutually_exclusive_group()
    who.add_argument("-n", "--num-clients", type=int, metavar="N",
                     help="run N client sites named site-1..site-N (default: the deploy_map's sites, "
                          "else meta min_clients, at least 2)")
    who.add_argument("--clients", metavar="NAMES", help="comma-separated client site names")
    parser.add_argument("-w", "--workspace", default="workspace", help="workspace folder (default: ./workspace)")
    parser.add_argument("--job-id", metavar="RUN",
                        help="the run's id, its folder under the server and each site (default: the job "
                             "folder's name and the time, so no run overwrites another; flconfig runs "
                             "lists them)")
    parser.add_argument("--device", choices=("cpu", "cuda", "auto"),
                        help="where learners that support it train, overriding their config "
                             "(default: each learner's own device arg)")
    parser.add_argument("--threads", type=int, help="torch threads per process (default: cores / processes)")
    parser.add_argument("--processes", type=int,
                        help="client worker processes (default: one per site up to 8 sites, else the cores)")
    parser.add_argument("--spawn", action="store_true",
                        help="start the server and every worker as a new Python interpreter "
                             "(default on Linux: fork them from one process that imported torch "
                             "once, which saves a torch import per process)")
    parser.add_argument("--site-state", choices=("keep", "release"),
                        help="what a client site keeps between two tasks: 'keep' its components, "
                             "learner and model included, for the whole run (FLARE's semantics), or "
                             "'release' them after each task and build them again from the plan "
                             "before the next, so a learner starts afresh each task (Flower's) and a "
                             "waiting site holds nothing (default: the job's meta site_state, else keep)")
    parser.add_argument("--heartbeat-timeout", type=float,
                        help="seconds of silence before the server gives a site up "
                             "(default: the server config's heart_beat_timeout)")
    parser.add_argument("--allow-module", action="append", default=[], metavar="PREFIX", help=ALLOW_HELP)
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR", help=PYTHON_PATH_HELP)
    parser.add_argument("--keep-undefined", action="store_true", help=KEEP_UNDEFINED_HELP)
    add_env_option(parser)
    placing = parser.add_argument_group("where the sites run (docs/scaling.md)")
    placing.add_argument("--backend", choices=("process", "ray"), default=None,
                         help="process: the sites in worker processes on this machine; ray: in Ray "
                              "actors across a Ray cluster's nodes (pip install 'flconfig[ray]'), the "
                              "server here (default: the job's meta launch.backend, else ray where "
                              "--ray-address is given, else process)")
    placing.add_argument("--ray-address", metavar="ADDR",
                         help="the running Ray cluster to use: 'auto' or HOST:PORT (default: a local "
                              "Ray instance for this launch, shut down at its end); implies --backend ray")
    placing.add_argument("--site-cpus", type=float, metavar="X",
                         help="CPUs each site needs while it trains, with --backend ray (default: the "
                              "site's num_cpus in the job's resource_spec, else the meta's "
                              "launch.site_cpus, else 1)")
    placing.add_argument("--site-gpus", type=float, metavar="Y",
                         help="GPUs each site needs while it trains, with --backend ray; fractions "
                              "share a GPU, e.g. 0.5 (default: the site's num_gpus or num_of_gpus in "
                              "the job's resource_spec, else the meta's launch.site_gpus, else 0)")
    placing.add_argument("--gpus", metavar="0,1,...",
                         help="spread the sites over these GPUs, as FLARE's simulator -gpu does: site i "
                              "on GPU i mod n, each worker process seeing only its GPU "
                              "(CUDA_VISIBLE_DEVICES)")
    seeing = parser.add_argument_group("watching the run")
    seeing.add_argument("--tensorboard", action="store_true",
                        help="serve the run's TensorBoard files on 127.0.0.1 while it runs, and after "
                             "it finishes until Ctrl-C")
    seeing.add_argument("--tensorboard-port", type=int, metavar="PORT",
                        help="port for --tensorboard (default: any free port); implies --tensorboard")
    seeing.add_argument("--tensorboard-exit", action="store_true",
                        help="stop TensorBoard and exit when the job ends instead of serving until "
                             "Ctrl-C; implies --tensorboard")
    seeing.add_argument("--quiet-metrics", action="store_true",
                        help="do not print each site's latest metrics while the job runs (plain lines)")
    seeing.add_argument("--format", choices=("text", "plain", "json"), default="text",
                        help="text: on a terminal, a live view (start-up, a progress bar of the rounds, "
                             "each site's state and latest metrics, records a second), else plain "
                             "lines; plain: the lines always; json: one JSON event a line on stdout "
                             "for scripts, the lines on stderr (docs/launching.md lists the events) "
                             "(default: text)")
    # zygote: the one `flconfig` started for this launch before parsing (cli.early_zygote).
    parser.set_defaults(func=run, zygote=None)


def _usage_error(ns: argparse.Namespace) -> str | None:
    """What is wrong with the command line's values, or None."""
    import math

    if ns.num_clients is not None and ns.num_clients < 1:
        return "--num-clients must be at least 1"
    for flag, value in (("--threads", ns.threads), ("--processes", ns.processes)):
        if value is not None and value < 1:
            return f"{flag} must be at least 1, got {value}"
    timeout = ns.heartbeat_timeout
    if timeout is not None and not (math.isfinite(timeout) and 0 < timeout <= MAX_TIMEOUT_S):
        return (f"--heartbeat-timeout must be a number of seconds above 0 and at most "
                f"{MAX_TIMEOUT_S} (a year), got {timeout:g}")
    for flag, value in (("--site-cpus", ns.site_cpus), ("--site-gpus", ns.site_gpus)):
        if value is not None and ns.backend == "process":
            return f"{flag} is for --backend ray (the process backend places sites with --gpus)"
        if value is not None and not (math.isfinite(value) and value >= 0):
            return f"{flag} must be a number at least 0, got {value:g}"
    if ns.site_cpus is not None and ns.site_cpus == 0:
        return "--site-cpus must be above 0 (an actor's sites train on its CPUs)"
    for folder in ns.python_path:
        if not Path(folder).is_dir():
            return f"--python-path {folder}: no such folder"
    return None


def _port_taken(port: int) -> bool:
    """Whether something listens on (or holds) 127.0.0.1:``port`` now."""
    import socket

    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as TensorBoard binds
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return True
    return False


#: Longest timeout accepted, in seconds (a year; the schemas say the same).
MAX_TIMEOUT_S = 31_536_000


#: Modules running a job needs beyond what validation needs: ``pip install 'flconfig[run]'``.
RUN_MODULES = ("torch", "grpc", "tensorboard", "safetensors", "numpy", "rich")


def missing_run_modules() -> list[str]:
    """The modules of the ``run`` extra that are not installed here (looked up, not imported)."""
    import importlib.util

    missing = []
    for name in RUN_MODULES:
        try:
            found = importlib.util.find_spec(name) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(name)
    return missing


def run(ns: argparse.Namespace) -> int:
    missing = missing_run_modules()
    if missing:
        verb = "is" if len(missing) == 1 else "are"
        print(f"flconfig launch: running jobs needs the 'run' extra, and {', '.join(missing)} "
              f"{verb} not installed: pip install 'flconfig[run]' (validation alone does not need it)",
              file=sys.stderr)
        return 2
    from ..launch.launcher import LaunchError, LaunchOptions, launch
    from ..launch.resources import parse_gpus

    try:  # what the job may read of this machine's environment: only what the user passes
        environ = job_environment(ns.env, ns.keep_undefined)
    except ValueError as exc:
        print(f"flconfig launch: {exc}", file=sys.stderr)
        return 2

    problem = _usage_error(ns) or path_problem(ns.job) or path_problem(ns.workspace)
    if problem is not None:
        print(f"flconfig launch: {problem}", file=sys.stderr)
        return 2
    if ns.tensorboard_port is not None and not 0 <= ns.tensorboard_port <= 65535:
        print("flconfig launch: --tensorboard-port must be 0 to 65535 (0: any free port)",
              file=sys.stderr)
        return 2
    if ns.tensorboard_port and _port_taken(ns.tensorboard_port):
        print(f"flconfig launch: --tensorboard-port {ns.tensorboard_port}: the port is in use on "
              "127.0.0.1; pick another, or 0 for any free port", file=sys.stderr)
        return 2
    if ns.backend == "process" and ns.ray_address is not None:
        print("flconfig launch: --ray-address is for --backend ray", file=sys.stderr)
        return 2
    try:
        gpus = parse_gpus(ns.gpus) if ns.gpus is not None else ()
    except ValueError as exc:
        print(f"flconfig launch: {exc}", file=sys.stderr)
        return 2
    clients = [c.strip() for c in ns.clients.split(",") if c.strip()] if ns.clients else None
    opts = LaunchOptions(
        job=Path(ns.job), workspace=Path(ns.workspace), clients=clients, num_clients=ns.num_clients,
        job_id=ns.job_id or "", device=ns.device, threads=ns.threads, processes=ns.processes, fork=not ns.spawn,
        heartbeat_timeout=ns.heartbeat_timeout, allowed_modules=ns.allow_module,
        python_path=[Path(d) for d in ns.python_path], environ=environ,
        tensorboard=ns.tensorboard or ns.tensorboard_port is not None or ns.tensorboard_exit,
        tensorboard_port=ns.tensorboard_port or 0, tensorboard_exit=ns.tensorboard_exit,
        live_metrics=not ns.quiet_metrics, backend=ns.backend, ray_address=ns.ray_address,
        site_cpus=ns.site_cpus, site_gpus=ns.site_gpus, gpus=gpus, site_state=ns.site_state,
        format=ns.format)
    try:
        return launch(opts, ns.zygote)
    except LaunchError as exc:
        print(f"flconfig launch: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # the workspace: a full disk, no permission, a file in the way

        full = exc.errno in (errno.ENOSPC, errno.EDQUOT)
        where = opts.workspace.resolve() if full or not exc.filename else exc.filename
        print(f"flconfig launch: {storage_message(exc, where)}", file=sys.stderr)
        return 1
