"""The TensorBoard process a launch starts: TensorBoard's own command line run in a
worker process (``python -m flconfig.runtime.worker tensorboard ARGS``), which exits, like
the others, when the launcher goes away."""

from __future__ import annotations

import sys


def run_tensorboard(argv: list[str]) -> int:
    """Serve TensorBoard with its own command line ``argv`` until stopped."""
    from tensorboard.main import run_main

    sys.argv = ["tensorboard", *argv]
    run_main()  # exits through absl's app.run
    return 0
