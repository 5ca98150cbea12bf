"""The admin commands of a deployment: ``submit``, ``jobs``, ``abort``, ``logs``, ``download``, ``shutdown``.

Each takes the admin's kit with ``--kit`` (or ``$FLCONFIG_KIT``; with a POC
prepared, its admin kit).
"""

from __future__ import annotations

import argparse
import datetime
import os
import sys
from pathlib import Path
from typing import Any

from ..errors import storage_message
from . import lacks_run_extra, path_problem, shown_path


def _add_kit(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--kit", type=Path, help="the admin's kit folder (default: $FLCONFIG_KIT, else the "
                                                 "POC's admin kit)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    p = sub.add_parser("submit", help="send a job to a deployed server, which validates it before accepting it",
                       description="Send the job folder JOB to the server. The server validates it as "
                                   "'flconfig validate' does and accepts it (printing its id) or refuses it "
                                   "(printing every problem at file:line:col). Exit 0 accepted, 1 refused.")
    p.add_argument("job", type=Path, metavar="JOB")
    _add_kit(p)
    p.set_defaults(func=run_submit)
    p = sub.add_parser("jobs", help="list a deployed server's jobs and connected sites")
    p.add_argument("job_id", nargs="?", metavar="ID", help="show this job only (an id or its start)")
    p.add_argument("--json", action="store_true", help="print the server's answer as JSON")
    _add_kit(p)
    p.set_defaults(func=run_jobs)
    p = sub.add_parser("abort", help="abort a queued or running job")
    p.add_argument("job_id", metavar="ID")
    _add_kit(p)
    p.set_defaults(func=run_abort)
    p = sub.add_parser("logs", help="print a job's server log or a site's log")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("--site", default="server", help="whose log: server (default) or a site name")
    p.add_argument("-f", "--follow", action="store_true", help="keep printing until the job ends")
    _add_kit(p)
    p.set_defaults(func=run_logs)
    p = sub.add_parser("download", help="fetch a job's results: global model, TensorBoard files, "
                                        "cross-site results, logs")
    p.add_argument("job_id", metavar="ID")
    p.add_argument("-o", "--output", type=Path, default=Path("."), metavar="DIR",
                   help="where DIR/ID goes (default: here)")
    _add_kit(p)
    p.set_defaults(func=run_download)
    p = sub.add_parser("shutdown", help="stop a deployed server (running jobs are aborted)")
    p.add_argument("--sites", action="store_true", help="tell every connected site to stop too")
    _add_kit(p)
    p.set_defaults(func=run_shutdown)


def _admin(ns: argparse.Namespace, command: str) -> Any:
    # gRPC's own log of a failed handshake would be a second, raw line: the error says why
    os.environ.setdefault("GRPC_VERBOSITY", "ERROR")

    if lacks_run_extra(f"flconfig {command}", ("grpc",)):
        return None
    from ..deploy.admin import Admin
    from ..deploy.kit import KitError, load_kit
    from ..deploy.poc import ADMIN, poc_dir

    path = ns.kit or (Path(os.environ["FLCONFIG_KIT"]) if os.environ.get("FLCONFIG_KIT") else None)
    if path is None:
        poc = poc_dir() / ADMIN
        if not poc.is_dir():
            print(f"flconfig {command}: give the admin's kit with --kit (or set FLCONFIG_KIT)", file=sys.stderr)
            return None
        path = poc
    try:
        return Admin(load_kit(path, "admin"))
    except KitError as exc:
        print(f"flconfig {command}: {exc}", file=sys.stderr)
        return None


def _run(ns: argparse.Namespace, command: str, body: Any) -> int:
    from ..deploy.admin import AdminError

    admin = _admin(ns, command)
    if admin is None:
        return 2
    try:
        with admin:
            return int(body(admin))
    except AdminError as exc:
        print(f"flconfig {command}: {exc}", file=sys.stderr)
        return 1


def run_submit(ns: argparse.Namespace) -> int:
    def body(admin: Any) -> int:
        answer = admin.submit(ns.job, shown=str(ns.job))
        report = str(answer.get("report", ""))
        if not answer.get("ok"):
            sys.stdout.write(report)
            print("flconfig: the server refused the job; nothing was queued")
            return 1
        lines = [line for line in report.splitlines() if line.strip()]
        for line in lines[:-1]:  # warnings; the summary line is replaced by ours
            print(line)
        print(f"flconfig: job {answer['job_id']} submitted ({answer.get('queued', 1)} queued)")
        return 0

    return _run(ns, "submit", body)


def _when(stamp: Any) -> str:
    if not stamp:
        return "-"
    return datetime.datetime.fromtimestamp(float(stamp)).strftime("%Y-%m-%d %H:%M:%S")


def run_jobs(ns: argparse.Namespace) -> int:
    def body(admin: Any) -> int:
        import json

        job_id = admin.resolve(ns.job_id) if ns.job_id else None
        answer = admin.jobs(job_id)
        if ns.json:
            print(json.dumps(answer, indent=2))
            return 0
        print(f"sites connected: {', '.join(answer['sites']) or 'none'}; at most {answer['max_jobs']} "
              "job(s) run at once")
        jobs = answer["jobs"]
        if not jobs:
            print("no jobs")
        for job in jobs:
            took = ""
            if job["started_at"] and job["ended_at"]:
                took = f" in {float(job['ended_at']) - float(job['started_at']):.1f} s"
            print(f"{job['id']}  {job['name']:<24} {job['state']:<9} submitted {_when(job['submitted_at'])} "
                  f"by {job['submitter']}{took}"
                  + (f"  sites: {', '.join(job['sites'])}" if job["sites"] else ""))
            if job["error"]:
                print(f"    {job['error']}")
            if job.get("note"):
                print(f"    ({job['note']})")
        return 0

    return _run(ns, "jobs", body)


def run_abort(ns: argparse.Namespace) -> int:
    def body(admin: Any) -> int:
        job_id = admin.resolve(ns.job_id)
        admin.abort(job_id)
        print(f"flconfig: job {job_id} is being aborted")
        return 0

    return _run(ns, "abort", body)


def run_logs(ns: argparse.Namespace) -> int:
    def body(admin: Any) -> int:
        out = sys.stdout.buffer

        def write(data: bytes) -> None:
            out.write(data)
            out.flush()

        admin.logs(admin.resolve(ns.job_id), ns.site, ns.follow, write)
        return 0

    return _run(ns, "logs", body)


def _output_problem(folder: Path) -> str | None:
    """Why the results cannot go into ``folder`` (made if missing), or None."""

    problem = path_problem(folder)
    if problem:
        return problem
    existing = folder
    while not existing.exists() and existing.parent != existing:
        existing = existing.parent
    where = f"{shown_path(folder)}: " + ("" if existing == folder else f"{shown_path(existing)} ")
    if not existing.is_dir():
        return where + ("is " if existing != folder else "") + "a file, not a folder"
    if not os.access(existing, os.W_OK | os.X_OK):
        return where + ("is " if existing != folder else "") + "a folder this user cannot write in"
    return None


def run_download(ns: argparse.Namespace) -> int:
    problem = _output_problem(ns.output)
    if problem:
        print(f"flconfig download: -o {problem}", file=sys.stderr)
        return 2

    def body(admin: Any) -> int:

        job_id = admin.resolve(ns.job_id)
        try:
            folder = admin.download(job_id, ns.output)
        except OSError as exc:  # the results are the server's; the disk they go to is ours
            print(f"flconfig download: {storage_message(exc, ns.output / job_id)}", file=sys.stderr)
            return 1
        files = sorted(p.relative_to(folder).as_posix() for p in folder.rglob("*") if p.is_file())
        print(f"flconfig: downloaded {len(files)} file(s) into {folder}")
        for name in files[:40]:
            print(f"  {name}")
        if len(files) > 40:
            print(f"  ... and {len(files) - 40} more")
        return 0

    return _run(ns, "download", body)


def run_shutdown(ns: argparse.Namespace) -> int:
    def body(admin: Any) -> int:
        admin.shutdown(ns.sites)
        print("flconfig: the server is shutting down" + (" with its sites" if ns.sites else ""))
        return 0

    return _run(ns, "shutdown", body)
