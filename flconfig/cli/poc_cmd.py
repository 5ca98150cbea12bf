"""``flconfig poc prepare|start|stop``: a deployment on this machine (see :mod:`flconfig.deploy.poc`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import FlconfigError
from . import lacks_run_extra


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser("poc", help="a proof-of-concept deployment on this machine: prepare, start, stop",
                            description="Provision (prepare), start and stop a server, N sites and an admin "
                                        "on this machine, each service a process of its own.")
    actions = parser.add_subparsers(dest="action", metavar="ACTION", required=True)
    prepare = actions.add_parser("prepare", help="provision a POC project: server, site-1..site-N, admin")
    prepare.add_argument("-n", "--sites", type=int, default=2, metavar="N", help="number of sites (default 2)")
    prepare.add_argument("--port", type=int, default=8002, help="the server's port (0: any free one)")
    prepare.add_argument("--force", action="store_true", help="replace an existing POC folder")
    for action in (prepare, actions.add_parser("start", help="start the server and every site"),
                   actions.add_parser("stop", help="shut the server and the sites down")):
        action.add_argument("--dir", type=Path, help="the POC folder (default: $FLCONFIG_POC_DIR, "
                                                     "else /tmp/flconfig/poc)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:

    if ns.action == "prepare" and not 0 <= ns.port <= 65535:
        print(f"flconfig poc prepare: --port must be 0 to 65535 (0: any free port), got {ns.port}",
              file=sys.stderr)
        return 2
    if ns.action != "stop" and lacks_run_extra(f"flconfig poc {ns.action}", ("grpc", "cryptography")):
        return 2
    from ..deploy.poc import ADMIN, LOG_FILE, PocError, poc_dir, prepare, start, stop

    folder = poc_dir(ns.dir)
    try:
        if ns.action == "prepare":
            names = prepare(folder, ns.sites, ns.port, ns.force)
            print(f"flconfig: POC prepared in {folder}: {', '.join(names)}")
            print("  start it with: flconfig poc start")
        elif ns.action == "start":
            names = start(folder)
            print(f"flconfig: POC started: {', '.join(names)} (logs: {folder}/<name>/{LOG_FILE})")
            print(f"  submit a job:  flconfig submit JOB      (as {ADMIN})")
            print("  watch it:      flconfig jobs; flconfig logs ID --follow")
        else:
            names = stop(folder)
            print(f"flconfig: POC stopped: {', '.join(names)}" if names else "flconfig: the POC is not running")
    except PocError as exc:
        print(f"flconfig poc {ns.action}: {exc}", file=sys.stderr)
        return 1
    except FlconfigError as exc:
        print(f"flconfig poc {ns.action}: {exc}", file=sys.stderr)
        return 1
    return 0
