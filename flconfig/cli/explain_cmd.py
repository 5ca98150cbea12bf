"""``flconfig explain JOB``: what a job will do, before anything runs."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..validate.explain import as_mermaid, as_text, explain
from ..validate.loader import inspect_job
from . import path_problem
from .validate_cmd import (
    ALLOW_HELP,
    KEEP_UNDEFINED_HELP,
    PYTHON_PATH_HELP,
    add_env_option,
    job_environment,
)

EXAMPLES = """examples:
  flconfig explain my-job                       in the terminal
  flconfig explain my-job --format mermaid      a Mermaid flowchart (renders in GitHub and the docs)
"""


def register(sub: Any) -> None:
    """Add the ``explain`` subcommand."""
    parser = sub.add_parser(
        "explain", help="show what a job will do, before anything runs",
        description="Read and check a job as validate does, then show what it will do: for the "
                    "server and each client app, the workflows in order, the tasks each "
                    "executor serves, the components and who refers to whom by id, and the path "
                    "of every event stream from the component that sends it through the "
                    "converters to the receivers. Nothing is built or run.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("job", metavar="JOB", help="job folder (or app folder)")
    parser.add_argument("--format", choices=("text", "mermaid"), default="text", help="output format")
    parser.add_argument("--allow-module", action="append", default=[], metavar="PREFIX", help=ALLOW_HELP)
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR", help=PYTHON_PATH_HELP)
    parser.add_argument("--keep-undefined", action="store_true", help=KEEP_UNDEFINED_HELP)
    add_env_option(parser)
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Explain the job; 1 when it is invalid (its problems are what validate prints)."""
    problem = path_problem(ns.job) or (None if Path(ns.job).exists() else f"{ns.job}: no such job folder")
    if problem is not None:
        print(f"flconfig explain: {problem}", file=sys.stderr)
        return 2
    try:
        environ = job_environment(ns.env, ns.keep_undefined)
    except ValueError as exc:
        print(f"flconfig explain: {exc}", file=sys.stderr)
        return 2
    job, problems = inspect_job(ns.job, allowed_modules=ns.allow_module, python_path=ns.python_path,
                                environ=environ)
    errors = [p for p in problems if p.is_error]
    if job is None or errors:
        first = errors[0] if errors else None
        where = f"{first.position}: " if first is not None and first.position is not None else ""
        what = first.message if first is not None else "it could not be read"
        print(f"flconfig explain: the job is invalid ({len(errors)} error(s)); the first: {where}{what} "
              f"(flconfig validate {ns.job} lists them all)", file=sys.stderr)
        return 1
    ex = explain(job)
    print(as_mermaid(ex) if ns.format == "mermaid" else as_text(ex))
    return 0
