"""Stopping a child process: asked first (SIGTERM), killed when it does not end in time."""

from __future__ import annotations

import signal
import subprocess

#: How long a child process has to end after SIGTERM before it is killed.
STOP_GRACE_S = 10.0


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = STOP_GRACE_S) -> None:
    """Stop ``proc`` if it still runs: SIGTERM, then SIGKILL after ``grace`` seconds; return
    once it has ended (None, or a process that has already ended: nothing to do)."""
    if proc is None or proc.poll() is not None:
        return
    proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(timeout=grace)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
