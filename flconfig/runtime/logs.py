"""Log files of the processes ``flconfig launch`` starts: one per site, each holding
exactly that site's lines.

A worker process may host many sites, so a site's lines are told apart by the
asyncio task or the thread that logged them. Every task and thread that works
for a site is named ``flconfig:<site>:<role>``
(:func:`flconfig.common.logs.site_thread_name`): the
site's own coroutine and a training thread while it runs the site's work
(``main``), its link's helpers (``heartbeat``, ``events``), a sender's queue
thread ... A site name never holds ``:``, so ``site-1`` and ``site-10`` can
never be confused. Each line names its site and the task or thread
(``%(where)s``).
"""

from __future__ import annotations

import asyncio
import logging
import os
from pathlib import Path

from ..common.logs import site_of_thread

#: The log line format of every worker's log files.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(site)s %(where)s] %(name)s: %(message)s"
_FORMATTER = logging.Formatter(LOG_FORMAT)  # one for every file of the process


def _where(record: logging.LogRecord) -> str:
    """The asyncio task that logged ``record`` (on a loop's thread), else its thread."""
    try:
        task = asyncio.current_task()
    except RuntimeError:  # no loop runs on this thread
        task = None
    return task.get_name() if task is not None else record.threadName or ""


class _Router(logging.Handler):
    """The one root handler of a process: hands each line to the files of its thread's
    site (a dictionary lookup, however many sites the process hosts) and to the files
    taking every line; sets ``record.site`` for the format."""

    def __init__(self) -> None:
        super().__init__()
        self.by_site: dict[str, list[logging.Handler]] = {}
        self.every: list[tuple[logging.Handler, str]] = []  # (handler, default site)

    def emit(self, record: logging.LogRecord) -> None:
        record.where = where = _where(record)
        site = site_of_thread(where)
        for handler, default in self.every:
            record.site = site or default
            handler.handle(record)
        if site is not None:
            record.site = site
            for handler in self.by_site.get(site, ()):
                handler.handle(record)

    def flush(self) -> None:
        for handler in self.handlers():
            handler.flush()

    def close(self) -> None:
        for handler in self.handlers():
            handler.close()
        super().close()

    def handlers(self) -> list[logging.Handler]:
        return [h for h, _ in self.every] + [h for hs in self.by_site.values() for h in hs]


class _LineFile(logging.Handler):
    """Appends each line to ``file`` (opened, or made, at once) with one unbuffered
    write: what a :class:`logging.FileHandler` writes (it flushes every line too),
    without its 8 KiB buffer and text layer, which a worker hosting a thousand sites
    would hold a thousand times over."""

    def __init__(self, file: Path) -> None:
        super().__init__()
        self.baseFilename = str(file)
        self._fd: int | None = os.open(file, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o666)

    def emit(self, record: logging.LogRecord) -> None:
        try:
            fd = self._fd
            if fd is not None:
                os.write(fd, (self.format(record) + "\n").encode("utf-8", "backslashreplace"))
        except Exception:
            self.handleError(record)

    def close(self) -> None:
        with self.lock:  # type: ignore[union-attr]  # created by Handler.__init__
            fd, self._fd = self._fd, None
            if fd is not None:
                os.close(fd)
        super().close()


def _router() -> _Router:
    root = logging.getLogger()
    for handler in root.handlers:
        if isinstance(handler, _Router):
            return handler
    router = _Router()
    root.addHandler(router)
    return router


def add_log_file(file: Path, site: str | None = None, default: str = "-") -> logging.Handler:
    """Send log lines to ``file``: only ``site``'s (None: every line of the process).

    ``default`` names the site of lines from threads that work for no site
    (``server`` in the server process).
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    handler = _LineFile(file)
    handler.setFormatter(_FORMATTER)
    router = _router()
    if site is None:
        router.every.append((handler, default))
    else:
        router.by_site.setdefault(site, []).append(handler)
    root = logging.getLogger()
    if root.level != logging.INFO:  # setLevel clears every logger's cache: once, not per site
        root.setLevel(logging.INFO)
    # A log file on a full disk must not print tracebacks to the terminal: the
    # run itself reports the full disk.
    logging.raiseExceptions = False
    return handler
