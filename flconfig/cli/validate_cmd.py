"""``flconfig validate PATH...``: every problem of every job, in one pass."""

from __future__ import annotations

import argparse
import os
import re
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

from ..config.variables import KEEP_UNDEFINED_ENV
from ..errors import Problem
from ..registry import ALLOW_ENV, Registry
from ..validate.loader import inspect_job
from ..validate.report import write_json, write_text
from . import path_problem

ALLOW_HELP = ("also allow component paths under this dotted module prefix "
              "(repeatable; the environment variable FLCONFIG_ALLOW_MODULES does the same)")
PYTHON_PATH_HELP = ("a folder whose modules the job may import and name, as FLARE finds them on "
                    "PYTHONPATH, e.g. the example folder beside the job (repeatable; read "
                    "statically when validating)")
KEEP_UNDEFINED_HELP = ("leave an undefined {variable} as written, with a warning, as FLARE does "
                       "(default: an error; also FLCONFIG_KEEP_UNDEFINED=1)")
ENV_HELP = ("let the job's configs read the environment variable NAME (HOCON ${NAME}, FLARE {$NAME}), "
            "from your environment, or set it to VALUE (repeatable). Without it a config reads no "
            "environment, as on the server and the sites of a deployment")

_ENV_NAME = re.compile(r"[^\s=]+")


def add_env_option(parser: argparse.ArgumentParser) -> None:
    """``--env NAME`` / ``--env NAME=VALUE``, for the commands that read a job on this machine."""
    parser.add_argument("--env", action="append", default=[], metavar="NAME[=VALUE]", help=ENV_HELP)


def job_environment(items: Sequence[str], keep_undefined: bool = False,
                    own: Mapping[str, str] | None = None) -> dict[str, str]:
    """All of the environment a job read on this machine may see: the ``--env`` items, and
    flconfig's own settings (``FLCONFIG_ALLOW_MODULES``, ``FLCONFIG_KEEP_UNDEFINED``) from
    ``own`` (default: this process's environment). Raises ValueError for a bad item."""

    source = os.environ if own is None else own
    env: dict[str, str] = {}
    for item in items:
        name, eq, value = item.partition("=")
        if not _ENV_NAME.fullmatch(name):
            raise ValueError(f"--env {item[:80]!r}: expected NAME or NAME=VALUE")
        if eq:
            env[name] = value
        elif name in source:
            env[name] = source[name]
        else:
            raise ValueError(f"--env {name[:80]}: {name[:80]} is not set in your environment "
                             f"(set it, or give its value: --env {name[:80]}=VALUE)")
    for setting in (ALLOW_ENV, KEEP_UNDEFINED_ENV):
        if setting in source and setting not in env:
            env[setting] = source[setting]
    if keep_undefined:
        env[KEEP_UNDEFINED_ENV] = "1"
    return env


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
    add_env_option(parser)
    parser.add_argument("--strict", action="store_true", help="treat warnings as errors")
    parser.set_defaults(func=run)


def validate_paths(paths: list[str], allowed_modules: list[str],
                   python_path: list[str] | None = None,
                   environ: Mapping[str, str] | None = None) -> list[Problem]:
    """Problems of all ``paths``, sorted by file and position; ``environ`` is all the
    environment the jobs may read (None: none)."""

    problems: list[Problem] = []
    for path in paths:
        _, found = inspect_job(path, allowed_modules=allowed_modules, python_path=python_path or (),
                               environ=environ)
        problems.extend(found)
    return problems


def run(ns: argparse.Namespace) -> int:
    try:
        environ = job_environment(ns.env, ns.keep_undefined)
    except ValueError as exc:
        print(f"flconfig validate: {exc}", file=sys.stderr)
        return 2
    try:  # a bad prefix is a usage error, reported before any job is read
        Registry.create(allowed_modules=ns.allow_module, environ=environ)
    except ValueError as exc:
        print(f"flconfig validate: {exc} (from --allow-module or {ALLOW_ENV})", file=sys.stderr)
        return 2

    unusable = next(filter(None, map(path_problem, ns.paths)), None)
    if unusable:  # e.g. a name too long for the file system: no job can be there
        print(f"flconfig validate: {unusable}", file=sys.stderr)
        return 2
    missing = [d for d in ns.python_path if not Path(d).is_dir()]
    if missing:
        print(f"flconfig validate: --python-path {missing[0]}: no such folder", file=sys.stderr)
        return 2
    problems = validate_paths(ns.paths, ns.allow_module, ns.python_path, environ)
    writer = write_json if ns.format == "json" else write_text
    writer(problems, len(ns.paths), sys.stdout)
    failing = [p for p in problems if p.is_error or ns.strict]
    return 1 if failing else 0
