"""One process that imports torch once and forks the job's server and workers from it.

Every process of a job imports torch: about a second of CPU and 150 MB each, three
or more times over on a laptop where the cores are few. ``flconfig launch`` starts
this process first, before it checks the job, so the import overlaps the check;
then it asks it, over a Unix socket, to fork each server or worker process. A
forked process starts with torch already imported, in memory pages it shares with
the others until it writes to them.

The protocol is one JSON object per message, the first message sent once torch is
imported (``{"ready": true}``, or ``{"error": "..."}`` when it cannot be)::

    launcher -> zygote  {"argv": [...], "env": {...}}  + 3 descriptors (stdin, stdout, stderr)
                        (the server's also "prepare": "training", see below)
    zygote -> launcher  {"pid": 1234}
    launcher -> zygote  {"exit": true}   (or the socket closes: the zygote exits)

``argv`` is the command line of ``python -m flconfig.runtime.worker``. The zygote
forks twice and the middle process exits at once, so the new process is orphaned
and becomes the launcher's child (the launcher is its children's subreaper): it is
waited for, signalled and reaped exactly like a process the launcher started
itself (:class:`flconfig.launch.processes.Forked`). Nothing but the standard
library, torch and flconfig's runtime is imported before a fork: no gRPC core, no
threads of our own, no CUDA.

The zygote is on the critical path of every launch (nothing trains before its
imports are done), so it imports in two steps: what every process needs
(:data:`SHARED_MODULES`) before it says it is ready, so the server is forked and
listening early; what only the processes that train need (:data:`TRAINING_MODULES`,
a second of CPU) right after forking a process whose message says ``"prepare":
"training"`` (the server's: the launcher may wait for its port, or TensorBoard, before
it asks for the workers), else before it forks the first of them. Python's garbage collector
is off while it imports (a fifth of the imports' CPU is collections that find
nothing to free), and everything imported is frozen before each fork, so a
forked process's collections never walk torch's few hundred thousand objects
(0.2 s each, with ``memory_gc_rounds`` once a round on the server) nor touch
their pages, which stay shared.
"""

from __future__ import annotations

import gc
import importlib
import json
import os
import socket
import sys
import traceback
from typing import Any

#: What every forked process imports next: gRPC's Python modules (its core starts with the
#: first channel or server, in the forked process), safetensors, the runtime and transport.
SHARED_MODULES = ("grpc", "grpc.aio", "safetensors.numpy", "flconfig.runtime.worker",
                  "flconfig.runtime.build", "flconfig.transport.link", "flconfig.transport.server")
#: What the processes that train import next: ``torch._dynamo``, which torch's optimizers
#: import on first use (a second of CPU and 70 MB in each worker otherwise). The server
#: never trains and is forked before it.
TRAINING_MODULES = ("torch._dynamo",)
#: The first argument of the processes that train (a worker hosting sites).
TRAINING_ROLE = "clients"

#: Bytes of one message at most (an argv and a few environment variables).
MAX_MESSAGE = 1 << 20
#: Bytes of command line the launcher gives the zygote beyond its own arguments, which each
#: forked process overwrites with the command line it would have had (:func:`_set_command_line`).
COMMAND_LINE_ROOM = 4096


def send(sock: socket.socket, message: dict[str, Any], fds: list[int] | None = None) -> None:
    """Send one message (and ``fds``) on ``sock``."""
    data = json.dumps(message).encode() + b"\n"
    if fds:
        socket.send_fds(sock, [data], fds)
    else:
        sock.sendall(data)


def receive(sock: socket.socket, max_fds: int = 0) -> tuple[dict[str, Any] | None, list[int]]:
    """One message from ``sock`` and the descriptors sent with it; (None, []) at the end."""
    data, fds, _, _ = socket.recv_fds(sock, MAX_MESSAGE, max_fds)
    if not data:
        return None, list(fds)
    while not data.endswith(b"\n"):
        more = sock.recv(MAX_MESSAGE)
        if not more:
            return None, list(fds)
        data += more
    return json.loads(data), list(fds)


def main(argv: list[str] | None = None) -> int:
    """``python -m flconfig.runtime.zygote FD [WORKSPACE]``: serve the launcher on the Unix
    socket ``FD``. ``WORKSPACE`` only names the job in the command line every forked
    process shows."""
    argv = sys.argv[1:] if argv is None else argv
    sock = socket.socket(fileno=int(argv[0]))
    gc.disable()  # while importing; each forked process turns it on again
    try:
        import torch  # noqa: F401  (the import every process of the job then shares)
    except BaseException as exc:  # noqa: BLE001 - the launcher starts its processes itself
        send(sock, {"error": f"{type(exc).__name__}: {exc}"})
        return 1
    _preload(SHARED_MODULES)
    send(sock, {"ready": True})
    training_ready = False
    while True:
        message, fds = receive(sock, max_fds=3)
        if message is None or message.get("exit") or len(fds) != 3:
            for fd in fds:
                os.close(fd)
            return 0
        if not training_ready and message.get("argv", [])[:1] == [TRAINING_ROLE]:
            _preload(TRAINING_MODULES)
            training_ready = True
        pid = _fork(message, fds, sock)
        for fd in fds:
            os.close(fd)
        send(sock, {"pid": pid})
        if not training_ready and message.get("prepare") == "training":
            _preload(TRAINING_MODULES)  # the launcher's next message waits for it
            training_ready = True


def _preload(names: tuple[str, ...]) -> None:
    """Import the modules ``names`` for the processes forked next. A module that fails here
    is imported, and fails with its message, in the process that needs it."""
    for name in names:
        try:
            importlib.import_module(name)
        except Exception:  # noqa: BLE001, S112
            continue


def _fork(message: dict[str, Any], fds: list[int], sock: socket.socket) -> int:
    """Fork the process ``message`` asks for; its pid. It is orphaned at once, so that
    the launcher, the subreaper, becomes its parent."""
    read, write = os.pipe()
    sys.stdout.flush()
    sys.stderr.flush()
    gc.freeze()  # all imported so far: never walked by the child's collections
    middle = os.fork()
    if middle == 0:
        os.close(read)
        me = os.getpid()
        child = os.fork()
        if child == 0:
            os.close(write)
            _run_child(message, fds, sock, me)  # never returns
        os.write(write, str(child).encode())
        os._exit(0)
    os.close(write)
    with os.fdopen(read, "rb") as pipe:
        text = pipe.read()
    os.waitpid(middle, 0)
    return int(text) if text.isdigit() else -1


def _run_child(message: dict[str, Any], fds: list[int], sock: socket.socket, middle: int) -> None:
    code = 1
    gc.enable()
    try:
        sock.close()
        for target, fd in enumerate(fds):
            os.dup2(fd, target)
        for fd in fds:
            if fd > 2:
                os.close(fd)
        while os.getppid() == middle:  # until the launcher has adopted us (microseconds)
            os.sched_yield()
        args = [str(a) for a in message["argv"]]
        _set_name(f"flconfig-{args[0] if args else 'worker'}")
        _set_command_line([sys.executable, "-m", "flconfig.runtime.worker", *args])
        os.environ.update({str(k): str(v) for k, v in message.get("env", {}).items()})
        arenas = os.environ.get("MALLOC_ARENA_MAX")
        if arenas and arenas.isdigit():
            _set_malloc_arenas(int(arenas))
        from .worker import _exit
        from .worker import main as worker_main

        sys.argv = ["flconfig.runtime.worker", *args]
        code = worker_main(args)
        _exit(code)
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001 - a child must never return into the zygote's loop
        traceback.print_exc()
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        finally:
            os._exit(code)


def _set_name(name: str) -> None:
    """The name ``ps -o comm``, ``top`` and ``/proc/PID/comm`` show (15 bytes at most); the
    command line stays the zygote's, which names the workspace."""
    import ctypes

    try:
        ctypes.CDLL(None).prctl(15, name.encode()[:15], 0, 0, 0)  # PR_SET_NAME
    except (OSError, AttributeError):
        pass


def _set_command_line(args: list[str]) -> None:
    """Show ``args`` as this process's command line (``ps``, ``/proc/PID/cmdline``), as if it
    had been started with them: the zygote's own arguments are overwritten in place, and the
    launcher starts it with room to spare (:data:`COMMAND_LINE_ROOM`); a longer line is cut.
    Python keeps its own copy of its arguments, so nothing reads that memory again."""
    import ctypes

    try:
        with open("/proc/self/stat", "rb") as stat:
            fields = stat.read().rpartition(b")")[2].split()
        start, end = int(fields[45]), int(fields[46])  # arg_start, arg_end (fields 48, 49)
    except (OSError, IndexError, ValueError):
        return
    size = end - start
    if size <= 1:
        return
    data = "\0".join(args).encode(errors="replace")[: size - 1]
    ctypes.memmove(start, data + b"\0" * (size - len(data)), size)


def _set_malloc_arenas(count: int) -> None:
    """glibc reads MALLOC_ARENA_MAX when a process starts; a forked one sets it this way."""
    import ctypes

    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt(-8, count)  # M_ARENA_MAX
    except (OSError, AttributeError):
        pass


if __name__ == "__main__":
    # Without the interpreter's teardown: undoing torch's registrations takes seconds of CPU
    # that the processes it forked would rather have.
    os._exit(main())
