"""Naming the tasks and threads that work for a site, so their log lines can be told apart.

A worker process may host many sites. Every asyncio task and thread that works for one
is named ``flconfig:<site>:<role>``: the site's own coroutine and a training thread
while it runs the site's work (``main``), its link's helpers (``heartbeat``,
``events``), a sender's queue thread ... A site name never holds ``:``, so ``site-1``
and ``site-10`` can never be confused. :mod:`flconfig.runtime.logs` routes each line
to its site's files by this name.
"""

from __future__ import annotations

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
