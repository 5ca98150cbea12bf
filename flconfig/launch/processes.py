"""Starting the job's server and worker processes: forked from a zygote that imported torch
once (:mod:`flconfig.runtime.zygote`), or, where that cannot be, each started afresh.

:class:`Forked` gives a forked process the part of :class:`subprocess.Popen` the launcher
uses (``pid``, ``poll``, ``wait``, ``send_signal``, ``terminate``, ``kill``,
``returncode``, ``stdin``, ``stdout``), so the launcher watches, stops and reaps both kinds alike.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Mapping, Sequence
from typing import IO, Any, TextIO, Union

from ..runtime.zygote import COMMAND_LINE_ROOM, receive, send

#: prctl(2) option that makes a process the parent of its orphaned descendants.
_PR_SET_CHILD_SUBREAPER = 36


class Forked:
    """A process the zygote forked for us; ours to wait for (we are its subreaper)."""

    def __init__(self, pid: int, args: Sequence[str], stdout: TextIO | None = None,
                 stdin: TextIO | None = None) -> None:
        self.pid = pid
        self.args = list(args)
        self.stdout = stdout
        self.stdin = stdin
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """Its exit code once it has exited (negative: the signal that ended it), else None."""
        if self.returncode is None:
            try:
                pid, status = os.waitpid(self.pid, os.WNOHANG)
            except ChildProcessError:  # reaped elsewhere: its code is lost
                self.returncode = 1
            else:
                if pid:
                    self.returncode = os.waitstatus_to_exitcode(status)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it exits; :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        deadline = None if timeout is None else time.monotonic() + timeout
        delay = 0.001
        while self.poll() is None:
            if deadline is not None and time.monotonic() >= deadline:
                raise subprocess.TimeoutExpired(self.args, timeout or 0.0)
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
        assert self.returncode is not None
        return self.returncode

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, sig)

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


#: A process of the job, started either way.
Process = Union["subprocess.Popen[str]", Forked]


class Zygote:
    """The launcher's end of :mod:`flconfig.runtime.zygote`: started at once, so torch is
    imported while the launcher checks the job; then asked to fork each process.

    :meth:`start` returns None where forking is not to be had (not Linux, no subreaper,
    the zygote's import failed): the launcher then starts each process itself.
    """

    def __init__(self, proc: subprocess.Popen[bytes], sock: socket.socket) -> None:
        self._proc = proc
        self._sock = sock
        self._ready: bool | None = None

    @classmethod
    def start(cls, workspace: str = "") -> Zygote | None:
        """Start the zygote (its command line, which the processes it forks show too, names
        ``workspace``); None where forking is not to be had."""
        if not sys.platform.startswith("linux") or not _become_subreaper():
            return None

        ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
        # The blank last argument is room for each forked process's own command line.
        room = " " * (COMMAND_LINE_ROOM + 2 * len(workspace))
        try:
            proc = subprocess.Popen(
                [sys.executable, "-P", "-m", "flconfig.runtime.zygote", str(theirs.fileno()), workspace, room],
                pass_fds=(theirs.fileno(),), stdin=subprocess.DEVNULL,
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        except OSError:
            ours.close()
            return None
        finally:
            theirs.close()
        return cls(proc, ours)

    def ready(self, timeout: float = 60.0) -> bool:
        """Wait (once) until torch is imported; False when the zygote cannot fork for us."""
        if self._ready is None:
            self._sock.settimeout(timeout)
            try:
                message, _ = receive(self._sock)
            except (OSError, ValueError):
                message = None
            self._ready = bool(message and message.get("ready"))
            if not self._ready:
                self.close()
        return self._ready

    def fork(self, argv: Sequence[str], env: Mapping[str, str], stdin: int, stdout: int,
             stderr: int, text_stdout: IO[str] | None = None,
             prepare_training: bool = False) -> Forked | None:
        """Fork ``python -m flconfig.runtime.worker ARGV`` with these descriptors as its
        stdin/stdout/stderr and ``env`` added to its environment; None if the zygote failed.
        ``prepare_training``: then have the zygote import what the processes that train
        need (a second: :data:`~flconfig.runtime.zygote.TRAINING_MODULES`), while the
        launcher does other things before it asks for them."""

        if not self.ready():
            return None
        request: dict[str, Any] = {"argv": list(argv), "env": dict(env)}
        if prepare_training:
            request["prepare"] = "training"
        try:
            send(self._sock, request, [stdin, stdout, stderr])
            message, _ = receive(self._sock)
        except (OSError, ValueError):
            message = None
        pid = message.get("pid") if message else None
        if not isinstance(pid, int) or pid <= 0:
            self.close()
            return None
        return Forked(pid, ["flconfig.runtime.worker", *argv], text_stdout)  # type: ignore[arg-type]

    def close(self) -> None:
        """Let the zygote go (it has forked all it will); its children are not touched.
        Closing twice does nothing."""

        if self._sock.fileno() == -1:
            return
        if self._ready and self._proc.poll() is None:  # idle, between messages: asked to go
            with contextlib.suppress(OSError):
                send(self._sock, {"exit": True})
        else:  # still importing torch (a job refused before anything started): no waiting
            self._proc.kill()
        self._sock.close()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()
            self._proc.wait()
        self._ready = False


def _become_subreaper() -> bool:
    """Make this process the parent of its orphaned descendants (Linux 3.4+)."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(_PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def popen_or_fork(zygote: Zygote | None, argv: list[str], *, env: Mapping[str, str] | None = None,
                  stdout: Any = None, pipe_stdout: bool = False, pipe_stdin: bool = False,
                  prepare_training: bool = False) -> Process:
    """Start ``python -m flconfig.runtime.worker ARGV``: forked from ``zygote`` when there
    is one that works, else as a new interpreter. ``pipe_stdout``: its stdout and stderr
    go to a pipe, readable as text from ``.stdout``; else both go to ``stdout`` (a file).
    ``pipe_stdin``: its stdin is a pipe, written to as text through ``.stdin`` (which
    only this process holds: closing it, or exiting, is the end of its input).
    ``prepare_training``: see :meth:`Zygote.fork`."""
    extra = {k: v for k, v in (env or {}).items() if os.environ.get(k) != v}
    if zygote is not None and pipe_stdout:
        read, write = os.pipe()
        text = open(read, encoding="utf-8", errors="replace", newline=None)  # noqa: SIM115
        stdin = _Stdin(pipe_stdin)
        proc = zygote.fork(argv, extra, stdin.child, write, write, text, prepare_training)
        os.close(write)
        if proc is not None:
            proc.stdin = stdin.opened()
            return proc
        stdin.close()
        text.close()
    elif zygote is not None:
        stdin = _Stdin(pipe_stdin)
        out = stdout.fileno()
        proc = zygote.fork(argv, extra, stdin.child, out, out, prepare_training=prepare_training)
        if proc is not None:
            proc.stdin = stdin.opened()
            return proc
        stdin.close()
    command = [sys.executable, "-P", "-m", "flconfig.runtime.worker", *argv]
    pipe = subprocess.PIPE if pipe_stdin else None
    if pipe_stdout:
        return subprocess.Popen(command, stdin=pipe, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, bufsize=1, env=None if env is None else dict(env))
    return subprocess.Popen(command, stdin=pipe, stdout=stdout, stderr=subprocess.STDOUT, text=True,
                            bufsize=1 if pipe_stdin else -1, env=None if env is None else dict(env))


class _Stdin:
    """The stdin of a process the zygote forks: a pipe whose write end we keep, or
    /dev/null. :attr:`child` is the descriptor to send; after the fork, :meth:`opened`
    closes our copy of it and gives the write end as text (None for /dev/null)."""

    def __init__(self, pipe: bool) -> None:
        if pipe:
            self.child, self._write = os.pipe()  # neither is inherited by what we start next
        else:
            self.child, self._write = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC), -1

    def opened(self) -> TextIO | None:
        os.close(self.child)
        if self._write < 0:
            return None
        return open(self._write, "w", encoding="utf-8", buffering=1)  # noqa: SIM115

    def close(self) -> None:
        """The fork failed: close both ends."""
        for fd in (self.child, self._write):
            if fd >= 0:
                os.close(fd)
