"""The one thread of a process that drains the queues of all its analytics senders.

A worker hosting a thousand sites has a thousand senders; a thread each would wake a
thousand times a second between them and fight the training threads for Python's GIL.
Here each sender is an entry in a timetable: due at once when a record arrives at an
idle sender (or on flush, or a full queue), then again as the sender asks while records
keep coming, and off the timetable once it stops asking. The thread sleeps while nothing
is due. :data:`DRAINER` is the process's one.
"""

from __future__ import annotations

import heapq
import itertools
import logging
import threading
import time
from collections.abc import Callable
from typing import Any

log = logging.getLogger(__name__)

#: A safety net only: the sleeping thread is woken by the next record, flush or the end.
IDLE_WAIT_S = 2.0

# (when, order, owner, work): the order makes entries of the same time compare.
_Entry = tuple[float, int, Any, Callable[[], None]]


class Drainer:
    """A timetable of work, run on one daemon thread started with the first entry."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._due = threading.Condition(self._lock)
        self._heap: list[_Entry] = []
        self._entries: dict[int, _Entry] = {}  # each owner's current entry, by id(owner)
        self._order = itertools.count()
        self.thread: threading.Thread | None = None

    def on_thread(self) -> bool:
        """Whether the caller runs on the drainer's thread (in ``work``)."""
        return threading.current_thread() is self.thread

    def schedule(self, owner: Any, when: float, work: Callable[[], None]) -> None:
        """Have ``work`` called for ``owner`` by ``when`` (time.monotonic): at the earlier of
        that and any time set before for ``owner``."""
        with self._lock:
            current = self._entries.get(id(owner))
            if current is not None and current[0] <= when:
                return
            entry = (when, next(self._order), owner, work)
            self._entries[id(owner)] = entry
            heapq.heappush(self._heap, entry)
            if self.thread is None:
                self.thread = threading.Thread(target=self._run, name="flconfig-analytics",
                                               daemon=True)
                self.thread.start()
            elif self._heap[0] is entry:
                self._due.notify()

    def _run(self) -> None:
        heap = self._heap
        while True:
            with self._lock:
                while True:
                    if not heap:
                        self._due.wait(IDLE_WAIT_S)
                        continue
                    entry = heap[0]
                    owner = entry[2]
                    if self._entries.get(id(owner)) is not entry:  # rescheduled since: a stale entry
                        heapq.heappop(heap)
                        continue
                    wait = entry[0] - time.monotonic()
                    if wait <= 0:
                        heapq.heappop(heap)
                        del self._entries[id(owner)]
                        break
                    self._due.wait(wait)
            try:
                entry[3]()
            except Exception:  # never lose the thread that drains every sender of the process
                log.exception("analytics: draining %s failed",
                              getattr(owner, "id", "") or type(owner).__name__)


#: The process's drainer.
DRAINER = Drainer()
