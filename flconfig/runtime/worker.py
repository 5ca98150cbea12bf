"""The entry point of the processes ``flconfig launch`` starts: the server, client workers
hosting sites, and TensorBoard.

    python -m flconfig.runtime.worker server --spec SPEC.json
    python -m flconfig.runtime.worker clients --spec SPEC.json --sites site-1,site-2
    python -m flconfig.runtime.worker tensorboard --logdir DIR --host 127.0.0.1 --port 0

SPEC.json (written by the launcher, readable only by its owner) holds the job
path, workspace, job id, address and every site's token. Each process exits when its
parent (the launcher) goes away, so Ctrl-C or a crash leaves no orphans. What the
processes do lives beside this module: the server in :mod:`.server_process`, the sites in
:mod:`.site_process`, TensorBoard in :mod:`.tensorboard_process`.
"""

from __future__ import annotations

import argparse
import gc
import logging
import os
import sys
import threading
import time

from ..compat import install
from ..errors import JobError
from .server_process import run_server
from .site_process import run_clients
from .spec import WorkerSpec
from .tensorboard_process import run_tensorboard


def _watch_parent() -> None:
    """Exit when the launcher that started us is gone (no orphans)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


def main(argv: list[str] | None = None) -> int:
    """Run the process the command line ``argv`` asks for (see the module docstring);
    its exit status."""
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tensorboard"]:
        _watch_parent()
        return run_tensorboard(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m flconfig.runtime.worker")
    parser.add_argument("role", choices=("server", "clients"))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--sites", default="")
    ns = parser.parse_args(argv)
    _watch_parent()
    # The job's code here talks to this process's site or server: its 'import nvflare' is
    # flconfig's FLARE API, FLARE installed or not (FLARE's own would find no FLARE runtime).
    install(force=True)
    try:
        spec = WorkerSpec.load(ns.spec)
    except JobError as exc:
        print(f"flconfig worker: {exc}", file=sys.stderr, flush=True)
        return 2
    _set_threads(spec.threads)
    # What is imported by now (torch, the runtime) lives as long as the process: the run's
    # full collections (ScatterAndGather's memory_gc_rounds: each round) need not walk it.
    gc.freeze()
    if ns.role == "server":
        return run_server(spec)
    sites = [s for s in ns.sites.split(",") if s]
    problem = _cuda_problem(spec.device)
    if problem is not None:  # at once, before a site connects, builds or trains
        for site in sites:
            print(f"{site}: {problem}", file=sys.stderr, flush=True)
        return 1
    return run_clients(spec, sites)


def _cuda_problem(device: str | None) -> str | None:
    """Why this process cannot train on ``device``, or None: CUDA asked for (``--device
    cuda``) where torch sees no CUDA device (a CPU-only torch, no driver, no GPU visible)."""
    if not (device or "").startswith("cuda"):
        return None
    import torch

    if torch.cuda.is_available():
        return None
    why = "torch was built without CUDA" if torch.version.cuda is None else "torch sees no CUDA device"
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    seen = f" (CUDA_VISIBLE_DEVICES={visible!r})" if visible is not None else ""
    return f"--device {device}: {why}{seen}; use --device cpu or auto"


def _exit(code: int) -> None:
    """Exit once the logs and output are flushed, skipping the interpreter's teardown: a
    worker's files are all written and closed by now, and torch's exit handlers alone
    take seconds of CPU (undoing thousands of operator registrations) that the sites
    still finishing in other processes would rather have."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
