"""What the job server knows of its sites and open tasks, under one lock.

:class:`ServerState` is the one piece of state the server's parts share: the
RPC handlers (:mod:`.handlers`), the call accounting (:mod:`.rpc`), the task
dispatch (:mod:`.dispatch`) and the server's lifecycle (:mod:`.server`). Each
reads and changes it holding :attr:`ServerState.cond`.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field

from ..types import FLModel

log = logging.getLogger(__name__)

# Site states. NEW: named as a target but never said Hello; LOST: no call within
# the heartbeat timeout (becomes ALIVE again on its next call); LEFT: said Bye.
NEW, ALIVE, LOST, LEFT = "new", "alive", "lost", "left"
#: Methods a site may call before Hello (or after Bye).
SESSIONLESS = ("Hello", "Bye")


@dataclass(eq=False)
class Task:
    """A task sent to some sites, and the results they returned."""

    name: str
    task_id: str
    model: bytes  # the task's model frame, encoded once and shared by every target
    reply: bytes  # the GetTask reply: the frame inside when it fits in one message
    targets: tuple[str, ...]
    results: dict[str, FLModel] = field(default_factory=dict)
    arrivals: list[str] = field(default_factory=list)  # result order, for on_result
    closed: bool = False


class PollGroup:
    """The sites of one worker that share one long poll (PollTasks), as the server sees
    them: who joined (each by its own Hello), who has a task waiting, and the poll."""

    __slots__ = ("group_id", "members", "ready", "polls", "open_polls", "last_seen",
                 "revive")

    def __init__(self, group_id: str) -> None:
        self.group_id = group_id
        self.members: set[str] = set()
        #: Members with a task queued, in the order their tasks came (a dict as an
        #: ordered set); a poll takes their tasks.
        self.ready: dict[str, None] = {}
        #: Wakes the group's poll, on the server's event loop (as Site.polls does a GetTask).
        self.polls = asyncio.Event()
        #: PollTasks calls open now; while one is, every member counts as alive.
        self.open_polls = 0
        #: When the group's last poll ended (monotonic seconds).
        self.last_seen = 0.0
        #: Set when the heartbeat monitor marked a member lost: the next poll makes the
        #: members whose process has not ended alive again, as a site's own call does.
        self.revive = False

    def seen_within(self, now: float, timeout: float) -> bool:
        """Whether the group's poll is open, or was within ``timeout`` seconds of ``now``."""
        return self.open_polls > 0 or now - self.last_seen <= timeout


@dataclass(eq=False, slots=True)
class Site:
    """One site as the server sees it: its state, its calls, its tasks, its event stream."""

    name: str
    state: str = NEW
    last_seen: float = 0.0
    active_calls: int = 0
    lost_reason: str = "never connected"
    tasks: deque[Task] = field(default_factory=deque)
    # Event stream: the client instance's stream id and the last seq delivered.
    stream: str = ""
    last_seq: int = 0
    failure: str = ""  # why the site stopped, if it said Bye because it failed
    # Why its process ended, when whoever started it says so (mark_lost): a site
    # whose process is gone is never made alive again by a late call.
    process_ended: str = ""
    pushing: str = ""  # the task whose result it last began to push in parts (the live view)
    events_lock: threading.Lock = field(default_factory=threading.Lock)
    # Wakes this site's long polls only, on the server's event loop: a task for one
    # site, or a result, does not wake every site's waiting GetTask. Set by
    # ServerState.wake_polls, cleared by a GetTask before it waits (holding cond);
    # made by the site's first GetTask (a site in a poll group has none).
    polls: asyncio.Event | None = None
    # The poll group the site joined in its Hello, if any: its tasks are the group's
    # poll's to take, and the group's poll keeps it alive.
    group: PollGroup | None = None


def _set_all(events: list[asyncio.Event]) -> None:
    for event in events:
        event.set()


class ServerState:
    """The sites (``known``: the names that may authenticate) and open tasks of one job's
    server, and how its run stands; guarded by :attr:`cond`."""

    def __init__(self, known: Iterable[str]) -> None:
        #: The sites of the job: the only names that may authenticate.
        self.known = frozenset(known)
        self.lock = threading.RLock()
        self.cond = threading.Condition(self.lock)
        self.sites: dict[str, Site] = {}
        self.tasks: dict[str, Task] = {}
        #: Counts changes of any site's state (alive, lost, left).
        self.state_changes = 0
        self.ended = False  # end_run: every GetTask answers "end"
        self.stopping = False
        #: Set while the latest records could not be written (a full disk), else None.
        self.storage_error: str | None = None
        #: Failures of the server's receivers that fail the run.
        self.failures: list[str] = []
        #: The event loop the long polls wait on (set when the server starts).
        self.loop: asyncio.AbstractEventLoop | None = None
        #: The poll groups (a worker's sites sharing one long poll), by id.
        self.groups: dict[str, PollGroup] = {}
        #: Long polls open now (GetTask, SubmitResult waiting for the next task, PollTasks);
        #: changed on the loop only.
        self.long_polls = 0

    def site(self, name: str) -> Site:
        """The site ``name``, added as NEW on first mention; hold :attr:`cond`."""
        st = self.sites.get(name)
        if st is None:
            st = self.sites[name] = Site(name)
        return st

    def changed(self) -> None:
        """Note that a site's state changed and wake the waiters; hold :attr:`cond`."""
        self.state_changes += 1
        self.cond.notify_all()

    def join_group(self, st: Site, group_id: str | None) -> None:
        """Make ``st`` a member of poll group ``group_id`` (made on first mention), or of
        none; hold :attr:`cond`. A task it has queued becomes the group's to take."""
        old = st.group
        if old is not None and old.group_id != group_id:
            old.members.discard(st.name)
            old.ready.pop(st.name, None)
            if not old.members:
                del self.groups[old.group_id]
            st.group = None
        if group_id is None or st.group is not None:
            return
        group = self.groups.get(group_id)
        if group is None:
            group = self.groups[group_id] = PollGroup(group_id)
        group.members.add(st.name)
        st.group = group
        if st.tasks:
            group.ready[st.name] = None
            self.wake_polls([st])

    def queue(self, task: Task) -> None:
        """Queue ``task`` for each of its targets and wake their polls; hold :attr:`cond`."""
        sites = [self.site(name) for name in task.targets]
        for st in sites:
            st.tasks.append(task)
            if st.group is not None:
                st.group.ready[st.name] = None
        self.wake_polls(sites)

    def wake_polls(self, sites: Iterable[Site] | None = None) -> None:
        """Wake the long polls of ``sites`` (all sites if None), their own or their
        group's, from any thread: one call onto the loop for them all; hold :attr:`cond`."""
        loop = self.loop
        if loop is None or loop.is_closed():
            return
        events: dict[int, asyncio.Event] = {}
        if sites is None:
            for group in self.groups.values():
                events[id(group.polls)] = group.polls
            sites = self.sites.values()
        for st in sites:
            if st.group is not None:
                events[id(st.group.polls)] = st.group.polls
            if st.polls is not None:
                events[id(st.polls)] = st.polls
        if events:
            try:
                loop.call_soon_threadsafe(_set_all, list(events.values()))
            except RuntimeError:  # the loop closed meanwhile: nobody waits any more
                pass

    def alive(self) -> list[str]:
        """The sites now alive, sorted."""
        with self.cond:
            return sorted(name for name, st in self.sites.items() if st.state == ALIVE)

    def begin_call(self, site: str, method: str) -> str | None:
        """Count a call of ``site`` as started; why it is refused (no Hello yet), or None.

        A lost site's call makes it alive again, unless its process has ended.
        """
        back = False
        with self.cond:
            st = self.site(site)
            if method not in SESSIONLESS and st.state in (NEW, LEFT):
                return f"site {site} must say Hello first"
            if st.state == LOST and method != "Bye" and not st.process_ended:
                st.state, back = ALIVE, True
                self.changed()
            st.active_calls += 1
            st.last_seen = time.monotonic()
        if back:
            log.warning("site %s is back", site)
        return None

    def end_call(self, site: str) -> None:
        """Count a call of ``site`` as ended."""
        with self.cond:
            st = self.sites[site]
            st.active_calls -= 1
            st.last_seen = time.monotonic()

    def note_storage(self, message: str | None) -> None:
        """Note that records cannot be written (``message`` says why), or can again (None)."""
        with self.cond:
            if message is not None and self.storage_error is None:
                log.error("records not written: %s; the sites keep them and send them again",
                          message)
            elif message is None and self.storage_error is not None:
                log.warning("records are written again (after: %s)", self.storage_error)
            self.storage_error = message

    def note_failure(self, message: str) -> None:
        """Note a failure of the server's receivers, which fails the run (once each)."""
        with self.cond:
            if message not in self.failures:
                self.failures.append(message)

    def activity(self) -> dict[str, tuple[str, str, str]]:
        """What each known site is doing, for a live view (read only, one pass under the
        lock): ``(state, task, phase)``, with ``state`` NEW, ALIVE, LOST or LEFT (``failed``
        for one that said Bye failing), ``task`` the name of the open task sent to it (or
        ""), and ``phase`` "queued" (not fetched yet), "running", "sending" (its result is
        being pushed in parts) or "returned" (its result is in), "" without a task."""
        with self.cond:
            open_task: dict[str, Task] = {}
            for sent in self.tasks.values():
                if not sent.closed:
                    for name in sent.targets:
                        open_task[name] = sent
            out = dict.fromkeys(self.known.difference(self.sites), (NEW, "", ""))
            for name, st in self.sites.items():
                state = "failed" if st.failure else st.state
                task = open_task.get(name)
                if task is None or state != ALIVE:
                    out[name] = (state, "", "")
                elif name in task.results:
                    out[name] = (state, task.name, "returned")
                elif st.pushing == task.task_id:
                    out[name] = (state, task.name, "sending")
                else:
                    out[name] = (state, task.name, "queued" if task in st.tasks else "running")
            return out
