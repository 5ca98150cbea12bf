"""Log files of the processes ``flconfig launch`` starts: one per site, each holding
exactly that site's lines.

A worker process may host many sites, so a site's lines are told apart by the
thread that logged them. Every thread that works for a site is named
``flconfig:<site>:<role>`` (:func:`site_thread_name`): the site's own thread
(``main``) and its helpers (``heartbeat``, ``events``, a sender's queue
thread ...). A site name never holds ``:``, so ``site-1`` and ``site-10`` can
never be confused. Each line names its site and thread.
"""

from __future__ import annotations

import logging
from pathlib import Path

#: The log line format of every worker's log files.
LOG_FORMAT = "%(asctime)s %(levelname)s [%(site)s %(threadName)s] %(name)s: %(message)s"
_PREFIX = "flconfig:"


def site_thread_name(site: str, role: str) -> str:
    """The name of a thread that works for ``site`` (``role`` says what it does)."""
    return f"{_PREFIX}{site}:{role}"


def site_of_thread(name: str) -> str | None:
    """The site a thread named by :func:`site_thread_name` works for, else None."""
    if not name.startswith(_PREFIX):
        return None
    site, sep, _ = name[len(_PREFIX):].partition(":")
    return site if sep and site else None


class _SiteFilter(logging.Filter):
    """Passes a record only if its thread works for ``site`` (None: any thread);
    sets ``record.site`` for the format."""

    def __init__(self, site: str | None, default: str) -> None:
        super().__init__()
        self.site = site
        self.default = default

    def filter(self, record: logging.LogRecord) -> bool:
        site = site_of_thread(record.threadName or "")
        record.site = site or self.default
        return self.site is None or site == self.site


def add_log_file(file: Path, site: str | None = None, default: str = "-") -> logging.Handler:
    """Send log lines to ``file``: only ``site``'s (None: every line of the process).

    ``default`` names the site of lines from threads that work for no site
    (``server`` in the server process).
    """
    file.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(file)
    handler.setFormatter(logging.Formatter(LOG_FORMAT))
    handler.addFilter(_SiteFilter(site, default))
    root = logging.getLogger()
    root.addHandler(handler)
    root.setLevel(logging.INFO)
    # A log file on a full disk must not print tracebacks to the terminal: the
    # run itself reports the full disk.
    logging.raiseExceptions = False
    return handler
