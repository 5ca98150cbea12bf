"""``flconfig server KIT`` and ``flconfig client KIT``: the services of a deployment."""

from __future__ import annotations

import argparse
import logging
import os
import sys
from pathlib import Path

from . import lacks_run_extra


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    server = sub.add_parser(
        "server", help="run a deployed server from its startup kit (mutual TLS; takes jobs from admins)",
        description="Serve the project of the server kit KIT: sites and admins connect over mutual TLS on "
                    "the kit's port; submitted jobs are validated, stored in WORKSPACE/jobs.db, queued and "
                    "run on their sites, their files in WORKSPACE/JOB_ID/.")
    server.add_argument("kit", type=Path, metavar="KIT", help="the server's kit folder (from flconfig provision)")
    server.add_argument("--workspace", type=Path, help="where jobs and the job store go (default: KIT/workspace)")
    server.add_argument("--host", default="0.0.0.0", help="address to listen on (default: every interface)")
    server.add_argument("--port", type=int, help="port to listen on (default: the kit's)")
    server.add_argument("--max-jobs", type=int, default=1, metavar="N",
                        help="jobs that run at once (default 1: the others wait in the queue)")
    server.add_argument("--site-wait", type=float, default=600.0, metavar="S",
                        help="seconds a job waits for its sites to connect before it fails (default 600)")
    server.add_argument("--job-ports", metavar="LO-HI",
                        help="ports the jobs' own servers may listen on, e.g. 8100-8199 (default: any free "
                             "port); open them to the sites with the kit's port")
    server.add_argument("--tensorboard", action="store_true",
                        help="serve TensorBoard on every job's tb_events while the server runs")
    server.add_argument("--tensorboard-port", type=int, default=6006, metavar="PORT")
    server.set_defaults(func=run_server)
    client = sub.add_parser(
        "client", help="run a deployed site from its startup kit (connects to its server, runs its jobs)",
        description="Run the site of the client kit KIT: it connects to the project's server over mutual "
                    "TLS (reconnecting with backoff while it is away), and runs the jobs the server gives "
                    "it, their files in WORKSPACE/JOB_ID/.")
    client.add_argument("kit", type=Path, metavar="KIT", help="the site's kit folder (from flconfig provision)")
    client.add_argument("--workspace", type=Path, help="where its jobs' files go (default: KIT/workspace)")
    client.set_defaults(func=run_client)


def _logging() -> None:
    logging.basicConfig(level=logging.WARNING, stream=sys.stderr,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _kit(path: Path, kind: str):  # type: ignore[no-untyped-def]
    from ..deploy.kit import KitError, load_kit

    try:
        return load_kit(path, kind)
    except KitError as exc:
        print(f"flconfig {kind}: {exc}", file=sys.stderr)
        return None


def _usage_error(ns: argparse.Namespace) -> str | None:
    """What is wrong with ``flconfig server``'s values, or None."""
    import math

    from .launch_cmd import MAX_TIMEOUT_S

    if ns.port is not None and not 0 < ns.port <= 65535:  # the kit's sites connect to it: no "any"
        return f"--port must be a TCP port, 1 to 65535, got {ns.port}"
    if not 0 <= ns.tensorboard_port <= 65535:
        return f"--tensorboard-port must be 0 to 65535 (0: any free port), got {ns.tensorboard_port}"
    if ns.max_jobs < 1:
        return "--max-jobs must be at least 1"
    if not (math.isfinite(ns.site_wait) and 0 <= ns.site_wait <= MAX_TIMEOUT_S):
        return (f"--site-wait must be a number of seconds, 0 to {MAX_TIMEOUT_S} (a year), "
                f"got {ns.site_wait:g}")
    return None


def run_server(ns: argparse.Namespace) -> int:

    problem = _usage_error(ns)
    if problem is not None:
        print(f"flconfig server: {problem}", file=sys.stderr)
        return 2
    if lacks_run_extra("flconfig server", ("grpc", "cryptography")):
        return 2
    from ..deploy.grpclog import watch_handshakes
    from ..deploy.server import DeployServer, ServiceError

    kit = _kit(ns.kit, "server")
    if kit is None:
        return 2
    job_ports = None
    if ns.job_ports:
        lo, _, hi = ns.job_ports.partition("-")
        if not (lo.isdigit() and hi.isdigit() and 0 < int(lo) <= int(hi) < 65536):
            print(f"flconfig server: --job-ports {ns.job_ports}: give a range of ports LO-HI, e.g. 8100-8199",
                  file=sys.stderr)
            return 2
        job_ports = range(int(lo), int(hi) + 1)
    _logging()
    workspace = ns.workspace or kit.startup.parent / "workspace"
    service = DeployServer(kit, workspace, host=ns.host, port=ns.port, max_jobs=ns.max_jobs,
                           site_wait=ns.site_wait, job_ports=job_ports)
    if ns.tensorboard and ns.tensorboard_port and not _port_free("127.0.0.1", ns.tensorboard_port):
        print(f"flconfig server: --tensorboard-port {ns.tensorboard_port}: the port is in use on 127.0.0.1",
              file=sys.stderr)
        return 1
    watch = watch_handshakes(lambda why: service.say(f"refused a TLS connection: {why}"))
    try:
        return _serve(service, ns)
    except ServiceError as exc:
        print(f"flconfig server: {exc}", file=sys.stderr)
        return 1
    finally:
        watch.close()  # every line said so far reaches the terminal before the exit


def _serve(service, ns: argparse.Namespace) -> int:  # type: ignore[no-untyped-def]
    import signal

    from ..deploy.server import ServiceError

    service.start()
    signal.signal(signal.SIGTERM, lambda *_: service.stop_soon())
    tensorboard = None
    if ns.tensorboard:
        tensorboard = _tensorboard(service, ns.tensorboard_port)
        if tensorboard is None:
            service.stop("TensorBoard did not start")
            raise ServiceError("TensorBoard did not start (see above); the server stopped")
    try:
        return int(service.serve())
    finally:
        if tensorboard is not None:
            tensorboard.terminate()


def _port_free(host: str, port: int) -> bool:
    import socket

    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _tensorboard(service, port: int):  # type: ignore[no-untyped-def]
    from ..launch.launcher import LaunchError, _start_tensorboard, _wait_for_tensorboard

    log_file = service.workspace / "tensorboard.log"
    proc = _start_tensorboard(service.workspace, port, log_file)
    try:
        url = _wait_for_tensorboard(proc, log_file, 90.0)
    except LaunchError as exc:
        service.say(str(exc))
        proc.terminate()
        return None
    service.say(f"TensorBoard at {url} (every job's tb_events under {service.workspace})")
    return proc


def run_client(ns: argparse.Namespace) -> int:
    # gRPC's own log of a failed handshake would be a second, raw line: the site says why
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

    if lacks_run_extra("flconfig client", ("grpc", "cryptography")):
        return 2
    from ..deploy.client import SiteService

    kit = _kit(ns.kit, "client")
    if kit is None:
        return 2
    _logging()
    workspace = ns.workspace or kit.startup.parent / "workspace"
    return SiteService(kit, workspace).run()
