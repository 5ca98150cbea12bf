"""Running ``flconfig launch`` in a test, and reading back what it wrote."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path


def launch(job: Path, ws: Path, *args: str, timeout: float = 220) -> subprocess.CompletedProcess[str]:
    """``python -m flconfig launch JOB -w WS ARGS``, its output captured."""
    return subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws), *args],
                          capture_output=True, text=True, timeout=timeout)


def sigint_at_default() -> None:
    """``preexec_fn`` for a child the test sends Ctrl-C (SIGINT) to: the child starts with
    SIGINT at its default. A test process that ignores SIGINT (a suite started as a
    background job, ``pytest &`` in a non-interactive shell) would pass that on, and
    Python installs its KeyboardInterrupt handler only where SIGINT is not ignored."""
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    """(step, value) of every ``tag`` scalar in the TensorBoard files of ``folder``, read
    with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(folder), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return [(e.step, e.value) for e in acc.Scalars(tag)]
