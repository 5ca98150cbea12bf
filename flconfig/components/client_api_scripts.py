"""The Client API's training script, started and seen to its end: on a thread of the
site's process, or in a child process whose ``nvflare.client`` calls the site answers
over an authenticated local channel (:mod:`flconfig.compat.remote`).

:class:`ScriptRun` is one start of the script; the executor
(:mod:`flconfig.components.client_api`) hands its session the tasks.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import builtins
import logging
import os
import subprocess
import sys
import threading
import traceback
from pathlib import Path
from typing import Any

from ..common.logs import site_thread_name
from ..compat import client_session
from ..compat.remote import ENV, Bridge
from ..errors import JobError
from ..types import RunContext
from .base import site_logger

log = logging.getLogger(__name__)

#: How long ``END_RUN`` waits for a script to return once told the run is over.
END_WAIT_SECONDS = 60.0

_argv_lock = threading.Lock()


class ScriptRun:
    """One start of the training script: the session it talks to, how it runs (a thread of
    the site, or a process with its channel), and how it ended (``done``, ``error``)."""

    def __init__(self, session: Any) -> None:
        self.session = session
        self.done = threading.Event()
        self.error: str | None = None
        self.thread: threading.Thread | None = None
        self.process: Any = None
        self.bridge: Any = None



def start_thread(session: Any, script: Path, args: list[str], ctx: RunContext) -> ScriptRun:
    """Run ``script`` as ``__main__`` on a thread of the site, its Client API calls bound to
    ``session``."""

    run = ScriptRun(session)
    client_session.register(run.session)
    run.thread = threading.Thread(  # named for the site: its lines go to the site's log
        target=_run_script, args=(run, script, args, ctx), daemon=True,
        name=site_thread_name(ctx.site_name, "script"))
    run.thread.start()
    return run


def start_process(session: Any, script: Path, options: list[str], args: list[str],
                  ctx: RunContext) -> ScriptRun:
    """Start the script's process: ``script`` run by this Python (with ``options``) in the
    site's run folder, ``nvflare.client`` served by ``session`` over a local channel of its
    own (a session and a token per start: a task goes only to the process started for it,
    never to an earlier one on its way out)."""

    logger = site_logger(ctx, log)

    def closed(reason: str) -> None:
        if "refused" in reason:  # someone else on this machine knocked: say so
            logger.warning("%s: Client API channel: %s", ctx.site_name, reason)

    run = ScriptRun(session)
    run.bridge = Bridge(run.session, closed)
    run.bridge.start(site_thread_name(ctx.site_name, "client-api"))
    env = {**os.environ, ENV: run.bridge.env_value, "PYTHONUNBUFFERED": "1"}
    argv = [sys.executable, *options, "-m", "flconfig.compat.script_process", str(script), *args]
    try:
        run.process = subprocess.Popen(argv, cwd=str(ctx.run_dir), env=env, stdin=subprocess.DEVNULL,
                                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    except OSError as exc:
        run.bridge.close()
        raise JobError(f"cannot start the training script {script.name}: {exc}", ctx.site_name) from None
    threading.Thread(target=_watch, args=(run, script, ctx), daemon=True,
                     name=site_thread_name(ctx.site_name, "script")).start()
    return run


def end_runs(runs: list[ScriptRun], ctx: RunContext) -> None:
    """Tell every start of the script the run is over and wait for each (a process that does
    not exit in :data:`END_WAIT_SECONDS` is killed)."""

    for run in runs:
        run.session.stop("END_RUN received")
    for run in runs:
        if run.thread is not None:
            run.thread.join(END_WAIT_SECONDS)
            if run.thread.is_alive():
                site_logger(ctx, log).warning("%s: the training script did not return within %g s of "
                                         "the run's end; it is left running until the process exits",
                                         ctx.site_name, END_WAIT_SECONDS)
        if run.process is not None:
            try:
                run.process.wait(END_WAIT_SECONDS)
            except subprocess.TimeoutExpired:
                site_logger(ctx, log).warning("%s: the training script's process did not exit within %g s "
                                         "of the run's end: stopped", ctx.site_name, END_WAIT_SECONDS)
                run.process.kill()
                run.process.wait()
            run.done.wait(10)  # its last output is in the log
            run.bridge.close()
        client_session.unregister(run.session)


def _watch(run: ScriptRun, script: Path, ctx: RunContext) -> None:
    """The script's output, line by line, into the site's log; its exit status at the end."""
    logger = site_logger(ctx, log)
    tail: list[str] = []
    process = run.process
    assert process.stdout is not None
    for raw in process.stdout:
        line = raw.decode("utf-8", "replace").rstrip("\n")
        logger.info("%s", line)
        tail = (tail + [line])[-20:]
    code = process.wait()
    if code != 0:
        last = next((t for t in reversed(tail) if t.strip()), "")
        run.error = (f"the training script {script.name} exited with code {code}"
                     + (f": {last.strip()}" if last else ""))
    run.bridge.close()
    run.done.set()


def _run_script(run: ScriptRun, script: Path, args: list[str], ctx: RunContext) -> None:
    client_session.bind(run.session)
    argv = [str(script), *args]
    try:
        code = compile(script.read_bytes(), str(script), "exec")
        namespace: dict[str, Any] = {"__name__": "__main__", "__file__": str(script),
                                     "__builtins__": __builtins__, "__package__": None,
                                     "print": _printer(site_logger(ctx, log))}
        # As in FLARE: the app's custom/ folder, then the script's own, on the path (a
        # script in custom/src/ imports the modules the job put flat in custom/)
        custom = getattr(ctx, "custom_dir", None)
        for folder in dict.fromkeys([str(custom) if custom else "", str(script.parent)]):
            if folder and folder not in sys.path:
                sys.path.append(folder)
        with _argv_lock:  # what the script reads first (argparse) sees its own arguments
            saved, sys.argv = sys.argv, argv
        try:
            exec(code, namespace)  # noqa: S102 - the job's own script, in its custom/ folder
        finally:
            with _argv_lock:
                if sys.argv is argv:
                    sys.argv = saved
    except client_session.ScriptStopped:
        pass
    except BaseException as exc:  # SystemExit too: a script ending itself mid-run fails the task
        if isinstance(exc, SystemExit) and exc.code in (None, 0):
            pass
        else:
            site_logger(ctx, log).error("%s: the training script %s failed:\n%s", ctx.site_name,
                                   script.name, traceback.format_exc())
            run.error = (f"the training script {script.name} failed: "
                         f"{type(exc).__name__}: {exc}")
    finally:
        client_session.bind(None)
        run.done.set()


def _printer(logger: logging.Logger) -> Any:
    """The script's ``print``: lines for the terminal go to the site's log (as FLARE logs
    them); a print to a file is a plain print."""

    def script_print(*args: Any, sep: str | None = " ", end: str | None = "\n", file: Any = None,
                     flush: bool = False) -> None:
        if file is not None and file is not sys.stdout:
            builtins.print(*args, sep=sep, end=end, file=file, flush=flush)
            return
        logger.info("%s", (" " if sep is None else sep).join(map(str, args)))

    return script_print
