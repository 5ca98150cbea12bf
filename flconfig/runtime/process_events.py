"""What the launcher tells the server about its sites' processes, as it happens.

The launcher watches the processes it started. When a client worker process ends
without finishing its run (killed by a signal, out of memory, a crash), it tells
the server at once; the server marks that process's sites lost with the real
reason, instead of waiting a heartbeat timeout (up to minutes) while every round
waits for them, and continues or fails the job per ``min_clients``.

The channel is the server's stdin, a pipe from the launcher: one JSON object per
line, UTF-8::

    {"event": "process_ended", "sites": ["site-2"], "code": -9, "reason": "killed by SIGKILL"}

``code`` is the exit code as :mod:`subprocess` reports it (negative: the signal
that ended the process), ``reason`` the same in words. The end of the stream
means the launcher is gone (the server then exits by itself: it watches its
parent). A line that is not such an object is logged and skipped. The server
reads its stdin only when its spec says so
(:attr:`flconfig.runtime.spec.WorkerSpec.process_events`): a server started
any other way leaves its stdin alone.
"""

from __future__ import annotations

import json
import logging
import signal
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, TextIO

if TYPE_CHECKING:
    from ..transport.server import CommServer
    from ..types import Signal

log = logging.getLogger(__name__)

#: The event: a process hosting these sites has ended.
PROCESS_ENDED = "process_ended"
#: Longest line read (a pooled process hosts at most thousands of short site names).
MAX_LINE = 1 << 20


def exit_reason(code: int) -> str:
    """How a process ended, in words: ``killed by SIGKILL``, ``exited with code 1``."""
    if code < 0:
        try:
            return f"killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"killed by signal {-code}"
    return f"exited with code {code}"


def process_ended_line(sites: Sequence[str], code: int, reason: str | None = None) -> str:
    """The line the launcher writes when the process hosting ``sites`` exited with ``code``
    (``reason``: why, in words, where the code alone does not say, e.g. a lost Ray node)."""
    return json.dumps({"event": PROCESS_ENDED, "sites": list(sites), "code": code,
                       "reason": reason or exit_reason(code)}) + "\n"


def read_events(stream: TextIO, on_process_ended: Callable[[list[str], str], None]) -> None:
    """Call ``on_process_ended(sites, reason)`` for each event read from ``stream``, until
    it ends."""
    while True:
        try:
            line = stream.readline(MAX_LINE)
        except (OSError, ValueError):
            return
        if not line:
            return
        if not line.strip():
            continue
        try:
            event = json.loads(line)
        except ValueError:
            event = None
        sites = event.get("sites") if isinstance(event, dict) else None
        reason = event.get("reason") if isinstance(event, dict) else None
        if (not isinstance(event, dict) or event.get("event") != PROCESS_ENDED
                or not isinstance(sites, list) or not all(isinstance(s, str) for s in sites)
                or not isinstance(reason, str)):
            log.warning("ignored a line from the launcher that is not an event: %.200r", line)
            continue
        on_process_ended(sites, reason[:200])


def short_list(names: Sequence[str], limit: int = 8) -> str:
    """``names``, shortest first, as "a, b, c", or the first ``limit`` and how many more."""
    names = sorted(names, key=lambda n: (len(n), n))
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


def _sites(n: int) -> str:
    return f"{n} site" if n == 1 else f"{n} sites"


class SiteProcesses:
    """The server's side: marks the sites of a process that ended lost, says so in the
    progress output, and stops the job once fewer than ``need`` sites are left.

    Before :meth:`started` (the sites are still connecting) a death is only said and
    marked: the server's start-up check judges who connected; after :meth:`ended`, too. The first death that
    leaves too few sites triggers ``abort`` and is kept in :attr:`failure`.
    """

    def __init__(self, comm: CommServer, progress: Callable[[str], None], abort: Signal,
                 sites: Sequence[str], need: int) -> None:
        self._comm = comm
        self._progress = progress
        self._abort = abort
        self._total = len(sites)
        self._need = need
        self._lock = threading.Lock()
        self._running = False
        self._ended = False
        self._reasons: dict[str, str] = {}  # site -> how its process ended
        self._failure: tuple[str, str] | None = None

    def listen(self, stream: TextIO) -> threading.Thread:
        """Read the launcher's events from ``stream`` on a thread of their own."""
        thread = threading.Thread(target=read_events, args=(stream, self.process_ended),
                                  name="launcher-events", daemon=True)
        thread.start()
        return thread

    def process_ended(self, sites: list[str], reason: str) -> None:
        """The process hosting ``sites`` ended (``reason``: how)."""
        with self._lock:  # held until judged: see failure
            marked = self._comm.mark_lost(sites, f"its process died ({reason})")
            if not marked:  # they had all said Bye: a normal end
                return
            for site in marked:
                self._reasons[site] = reason
            who = f"{marked[0]}'s process" if len(marked) == 1 else f"the process of {short_list(marked)}"
            if not self._running or self._ended:
                when = "while the run was ending" if self._ended else "while the sites were connecting"
                self._progress(f"{who} died ({reason}) {when}")
                return
            self._judge(who, reason, marked)

    def started(self) -> None:
        """The sites have connected and the run starts: from now on a death that leaves
        fewer than ``need`` sites stops the job (one before now is judged at once)."""
        with self._lock:
            self._running = True
            if self._reasons and self._failure is None:
                dead = sorted(self._reasons)
                reason = self._reasons[dead[0]]
                who = f"{dead[0]}'s process" if len(dead) == 1 else f"the process of {short_list(dead)}"
                if len(self._comm.alive_sites()) < self._need:
                    self._judge(who, reason, dead)

    def ended(self) -> None:
        """The run's work is done (or failed): a death is only said from now on."""
        with self._lock:
            self._ended = True

    def _judge(self, who: str, reason: str, marked: list[str]) -> None:
        alive = len(self._comm.alive_sites())
        if alive >= self._need:
            self._progress(f"{who} died ({reason}): continuing with {alive} of {self._total} sites")
            return
        self._progress(f"{who} died ({reason}): {alive} of {self._total} sites left, fewer than "
                       f"min_clients ({self._need}); stopping the job")
        if self._failure is None:
            left = f"the job needs {_sites(self._need)} (min_clients), {alive} left"
            if len(marked) == 1:
                self._failure = (marked[0], f"its process died ({reason}); {left}")
            else:
                self._failure = ("", f"the process of {short_list(marked)} died ({reason}); {left}")
            self._abort.trigger(f"{who} died ({reason})")

    @property
    def failure(self) -> tuple[str, str] | None:
        """(site, message) when a death left too few sites (site "" for several), else None.

        Waits for an event being judged: a task that failed because the death made its
        sites lost finds the death's verdict here, not an earlier one."""
        with self._lock:
            return self._failure

    def reason(self, site: str) -> str | None:
        """How the process of ``site`` ended, if it did."""
        with self._lock:
            return self._reasons.get(site)
