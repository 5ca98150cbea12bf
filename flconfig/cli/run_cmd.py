"""``flconfig run SCRIPT [ARGS...]``: run a FLARE job script (``job.py``) with flconfig.

The script runs as ``python SCRIPT ARGS...`` would run it, in this process, with FLARE's
job API — ``nvflare.recipe``, ``nvflare.job_config``, the component classes — served by
flconfig (:mod:`flconfig.compat.jobapi`): the job it builds is written as a job folder,
checked (its problems shown at the script's lines), then simulated by flconfig's
launcher, run in a POC or submitted to a deployed server, as the script asks.
"""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from types import TracebackType

from . import RUN_PACKAGES, extra_line, path_problem, shown_path

#: Exceptions flconfig's job API raises for a script's mistake: one line at the script's call.
_USAGE_ERRORS = (ValueError, TypeError, RuntimeError, KeyError, FileNotFoundError, NotImplementedError,
                 ModuleNotFoundError)
_FLCONFIG_DIR = str(Path(__file__).resolve().parents[1]) + os.sep


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "run", help="run a FLARE job script (job.py: the Recipe or Job API) with flconfig",
        description="Run a FLARE job script as 'python SCRIPT ARGS...' would, with FLARE's job API "
                    "(nvflare.recipe, nvflare.job_config and the component classes) served by "
                    "flconfig: the job the script builds is checked before anything starts (its "
                    "problems shown at the script's lines) and run by flconfig (SimEnv: this "
                    "machine; PocEnv: a POC; ProdEnv: a deployed server). The script's own "
                    "arguments follow it; '--export [--export-dir DIR]' exports the job instead of "
                    "running it, as with FLARE. Exit 0: the script ended well; 1: the job was "
                    "invalid or failed, or the script raised; 2: usage error; else the script's "
                    "own exit status.")
    parser.add_argument("--check", action="store_true",
                        help="check every job the script would run, and run none: each is written, "
                             "validated and reported at the script's lines (exit 1 if one is invalid); "
                             "a POC is neither prepared nor started, nothing is submitted")
    parser.add_argument("--keep", metavar="DIR",
                        help="with --check: keep each job checked as a folder in DIR")
    parser.add_argument("script", metavar="SCRIPT", help="the job script (job.py)")
    parser.add_argument("args", nargs=argparse.REMAINDER, metavar="ARGS",
                        help="the script's arguments")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    script = Path(ns.script)
    problem = path_problem(script)
    if problem is not None:
        print(f"flconfig run: {problem}", file=sys.stderr)
        return 2
    if not script.is_file():
        what = "a folder, not a job script" if script.is_dir() else "no such file"
        print(f"flconfig run: {shown_path(script)}: {what}", file=sys.stderr)
        return 2
    if ns.keep and not ns.check:
        print("flconfig run: --keep is for --check", file=sys.stderr)
        return 2
    keep = Path(ns.keep) if ns.keep else None
    if keep is not None and (path_problem(keep) or (keep.exists() and not keep.is_dir())):
        print(f"flconfig run: --keep {shown_path(keep)}: " + (path_problem(keep) or "not a folder"),
              file=sys.stderr)
        return 2
    from ..compat import install, serve_standins
    from ..compat.jobapi import roots, running

    if not install(force=True):
        print("flconfig run: FLARE's own modules are imported in this process already; run the "
              "script in a new one", file=sys.stderr)
        return 2
    serve_standins(True)
    from .run_services import RunServices

    running.use_services(RunServices())
    if ns.check:
        if keep is not None:
            keep.mkdir(parents=True, exist_ok=True)
        running.check_only(keep.resolve() if keep else None)
    path = script.resolve()
    roots.SCRIPT_DIR[:] = [path.parent]
    saved_argv, saved_path = sys.argv, list(sys.path)
    sys.argv = [str(script), *ns.args]
    sys.path.insert(0, str(path.parent))
    import runpy

    try:
        runpy.run_path(str(script), run_name="__main__")
    except SystemExit as exc:
        return _exit_status(exc)
    except Exception as exc:  # noqa: BLE001 - the script's own exception, reported as Python would
        return _report(exc)
    finally:
        sys.argv, sys.path[:] = saved_argv, saved_path
        serve_standins(False)
        running.check_only(on=False)
        running.use_services(None)
    return 0


def _exit_status(exc: SystemExit) -> int:
    if exc.code is None:
        return 0
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return 1


def _report(exc: BaseException) -> int:
    """Say why the script stopped; 1.

    A job found invalid has had its report printed; a job that failed, one line. A mistake
    flconfig's job API refused (a wrong argument to a recipe) is one line at the script's
    call; anything else raised in the script's own code, its traceback as Python shows it,
    less the frames of flconfig that ran the script.
    """
    import runpy
    import traceback

    from ..compat.jobapi.checking import JobInvalid
    from ..compat.jobapi.running import JobFailed

    if isinstance(exc, JobInvalid):
        folder = f" (written to {shown_path(exc.folder)})" if exc.folder else ""
        print(f"flconfig run: {exc}{folder}; nothing was run", file=sys.stderr)
        return 1
    if isinstance(exc, JobFailed):
        print(f"flconfig run: {exc}", file=sys.stderr)
        return 1

    package = RUN_PACKAGES.get((getattr(exc, "name", None) or "").split(".")[0])
    if isinstance(exc, ModuleNotFoundError) and package is not None:
        print(extra_line("flconfig run", [package]), file=sys.stderr)
        return 2
    from ..compat.jobapi.roots import job_roots

    frames = _frames(exc.__traceback__)
    innermost_ours = bool(frames) and frames[-1][1].startswith(_FLCONFIG_DIR)
    roots = tuple(str(root) + os.sep for root in job_roots())
    callers = [(tb, file) for tb, file in frames
               if os.path.realpath(file).startswith(roots) and not file.startswith(_FLCONFIG_DIR)]
    if innermost_ours and isinstance(exc, _USAGE_ERRORS) and callers:
        tb, file = callers[-1]
        print(f"{_shown(file)}:{tb.tb_lineno}: error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    runner = os.path.abspath(runpy.__file__)
    first_own = next((tb for tb, file in frames if not file.startswith(_FLCONFIG_DIR) and file != runner), None)
    traceback.print_exception(type(exc), exc, first_own or exc.__traceback__, file=sys.stderr)
    return 1


def _frames(tb: TracebackType | None) -> list[tuple[TracebackType, str]]:
    out = []
    while tb is not None:
        out.append((tb, os.path.abspath(tb.tb_frame.f_code.co_filename)))
        tb = tb.tb_next
    return out


def _shown(file: str) -> str:
    rel = os.path.relpath(file)
    return file if rel.startswith("..") else rel
