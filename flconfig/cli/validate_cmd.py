"""``flconfig validate PATH...``: every problem of every job, in one pass."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from ..errors import Problem
from .report import write_json, write_text

ALLOW_HELP = ("also allow component paths under this dotted module prefix "
              "(repeatable; the environment variable FLCONFIG_ALLOW_MODULES does the same)")
PYTHON_PATH_HELP = ("a folder whose modules the job may import and name, as FLARE finds them on "
                    "PYTHONPATH, e.g. the example folder beside the job (repeatable; read "
                    "statically when validating)")
KEEP_UNDEFINED_HELP = ("leave an undefined {variable} as written, with a warning, as FLARE does "
                       "(default: an error; also FLCONFIG_KEEP_UNDEFINED=1)")


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "validate", help="check job folders, app folders or config files",
        description="Check job folders, app folders or config files without running anything. "
                    "Exit 0: no errors; 1: problems found; 2: usage error.")
    parser.add_argument("paths", nargs="+", metavar="PATH", help="job folder, app folder or config file")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--allow-module", action="append", default=[], metavar="PREFIX", help=ALLOW_HELP)
    parser.add_argument("--python-path", action="append", default=[], metavar="DIR", help=PYTHON_PATH_HELP)
    parser.add_argument("--keep-undefined", action="store_true", help=KEEP_UNDEFINED_HELP)
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.set_defaults(func=run)


def validate_paths(paths: list[str], allowed_modules: list[str],
                   python_path: list[str] | None = None) -> list[Problem]:
    """Problems of all ``paths``, sorted by file and position."""
    from ..config.job import inspect_job

    problems: list[Problem] = []
    for path in paths:
        _, found = inspect_job(path, allowed_modules=allowed_modules, python_path=python_path or ())
        problems.extend(found)
    return problems


def run(ns: argparse.Namespace) -> int:
    from ..registry import ALLOW_ENV, Registry

    if ns.keep_undefined:
        from ..config.variables import KEEP_UNDEFINED_ENV

        os.environ[KEEP_UNDEFINED_ENV] = "1"

    try:  # a bad prefix is a usage error, reported before any job is read
        Registry.create(allowed_modules=ns.allow_module)
    except ValueError as exc:
        print(f"flconfig validate: {exc} (from --allow-module or {ALLOW_ENV})", file=sys.stderr)
        return 2
    missing = [d for d in ns.python_path if not Path(d).is_dir()]
    if missing:
        print(f"flconfig validate: --python-path {missing[0]}: no such folder", file=sys.stderr)
        return 2
    problems = validate_paths(ns.paths, ns.allow_module, ns.python_path)
    writer = write_json if ns.format == "json" else write_text
    writer(problems, len(ns.paths), sys.stdout)
    failing = [p for p in problems if p.is_error or ns.strict]
    return 1 if failing else 0
