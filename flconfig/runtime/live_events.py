"""The server's live events: what a live view of the run (``flconfig launch``) draws.

The server prints each event as one line of its stdout, :data:`EVENT_MARKER` and a JSON
object, beside its progress lines; the launcher reads them (and never shows the marker).
:class:`LiveEvents` sends:

- ``listening``: the server's address, and how many sites it waits for (``need`` of ``of``);
- ``sites``: how many sites are in each state, and the sites whose state changed since the
  last one, by state: a snapshot taken four times a second (once a second with 10,000
  sites), never a line per site or per change;
- ``workflow``: a workflow ``started`` or ``done``;
- ``round``: a round ``started`` or ``done`` (with its ``seconds``), ``n`` of ``of``;
- ``metrics``: the latest value and step of the first few scalar tags of each site whose
  scalars changed since the last one;
- ``records``: the records the sites streamed so far, and how many a second lately.

A site's state is one of :data:`STATES`: ``connecting`` (no Hello yet), ``connected``
(no task of its own open), ``training``, ``validating`` or ``working`` (on an open task:
one whose name says train, one whose name says valid, any other), ``sending`` (its result
streams in), ``done`` (its result is in, or it said Bye at the end), ``failed`` (it
stopped failing) and ``lost`` (silent past the heartbeat timeout, or its process died).
"""

from __future__ import annotations

import json
import logging
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any

from ..types import Event, EventType

log = logging.getLogger(__name__)

#: What starts a live event line on the server's stdout (the JSON object follows).
EVENT_MARKER = "@@flconfig-event "
#: A site's states, in the order a view lists them.
STATES = ("connecting", "connected", "training", "validating", "working", "sending", "done",
          "failed", "lost")
#: Seconds between two snapshots of the sites' states (more with many sites: see
#: :func:`snapshot_period`).
SNAPSHOT_PERIOD = 0.25
#: Seconds between two ``metrics`` and ``records`` events.
METRICS_PERIOD = 1.0
#: Scalar tags of a site a ``metrics`` event carries (its headline metrics: the first
#: it sent).
HEADLINE_TAGS = 3

#: What the transport says a site does: (state, task name, phase); see
#: :meth:`flconfig.transport.server.CommServer.activity`.
Activity = Mapping[str, tuple[str, str, str]]
#: The latest scalars of each site whose scalars changed: site -> tag -> (value, step).
Latest = Mapping[str, Mapping[str, tuple[Any, int | None]]]


def site_state(state: str, task: str, phase: str) -> str:
    """The live view's state of a site, from what the transport says of it."""
    if state == "new":
        return "connecting"
    if state == "left":
        return "done"
    if state != "alive":
        return state  # failed, lost
    if not task:
        return "connected"
    if phase == "returned":
        return "done"
    if phase == "sending":
        return "sending"
    lowered = task.lower()
    return "training" if "train" in lowered else "validating" if "valid" in lowered else "working"


def snapshot_period(sites: int) -> float:
    """Seconds between two snapshots of ``sites`` sites' states: a snapshot walks every site
    under the server's lock (10,000 take milliseconds), so it is taken less often then."""
    return max(SNAPSHOT_PERIOD, sites / 10_000)


class LiveEvents:
    """Sends the live events of a server through ``emit`` (one JSON-able dict each).

    A handler too (``handle_event``): add it to the server's handlers for the ``round``
    events. What each site does comes from the function given to :meth:`watch` (the
    transport's view), read a few times a second by a daemon thread once :meth:`start`
    ran; ``latest`` returns the latest scalars of the sites whose scalars changed since it
    was last called (:meth:`flconfig.runtime.live_metrics.LiveMetrics.take_changed`).
    """

    def __init__(self, emit: Callable[[dict[str, Any]], None], sites: int,
                 latest: Callable[[], Latest] | None = None) -> None:
        self.emit = emit
        self._latest = latest
        self._period = snapshot_period(sites)
        self._activity: Callable[[], Activity] | None = None
        # What the transport said of each site, its state and how many are in each state,
        # as of the last snapshot: a snapshot looks further only at the sites that changed.
        self._raw: dict[str, tuple[str, str, str]] = {}
        self._states: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._lock = threading.Lock()  # the records count and the snapshot
        self._records = 0
        self._records_said = 0
        self._records_at = time.monotonic()
        self._round_started: dict[int, float] = {}
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ hot path

    def count_records(self, n: int) -> None:
        """Count ``n`` records a site streamed (on the handler threads)."""
        with self._lock:
            self._records += n

    # ------------------------------------------------------------------ events

    def watch(self, activity: Callable[[], Activity]) -> None:
        """Take the sites' states from ``activity`` (:meth:`snapshot` reads it)."""
        self._activity = activity

    def start(self) -> None:
        """Snapshot the sites' states, their metrics and the records streamed, a few times a
        second on a daemon thread, until :meth:`stop`."""
        self.snapshot()
        if self._thread is None:
            self._thread = threading.Thread(target=self._run, name="live-events", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and send what changed since the last events."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.snapshot()
        self.metrics()

    def handle_event(self, event: Event, ctx: Any) -> None:
        """A ``round`` event when a round starts and when it is done."""
        if event.type not in (EventType.ROUND_STARTED, EventType.ROUND_DONE):
            return
        data = event.data if isinstance(event.data, dict) else {}
        current, of = data.get("current_round"), data.get("num_rounds")
        if not isinstance(current, int):
            return
        n = current + 1
        fields: dict[str, Any] = {"event": "round", "n": n, "of": of if isinstance(of, int) else None}
        now = time.monotonic()
        if event.type == EventType.ROUND_STARTED:
            self._round_started[n] = now
            self.emit({**fields, "state": "started"})
        else:
            began = self._round_started.pop(n, None)
            seconds = round(now - began, 3) if began is not None else None
            self.snapshot()
            self.metrics()  # a result's records are written before it is taken: all in
            self.emit({**fields, "state": "done", "seconds": seconds})

    def snapshot(self) -> None:
        """A ``sites`` event, if a site's state changed since the last one."""
        if self._activity is None:
            return
        try:
            activity = self._activity()
        except Exception:  # a view must not end the run
            log.exception("live events: could not read the sites' states")
            return
        with self._lock:  # sent under it too: two snapshots never cross on the way out
            changed: dict[str, list[str]] = {}
            raw, states, counts = self._raw, self._states, self._counts
            for site, what in activity.items():
                if raw.get(site) == what:  # most sites, most of the time: one comparison
                    continue
                raw[site] = what
                now, before = site_state(*what), states.get(site)
                if now == before:
                    continue
                states[site] = now
                counts[now] = counts.get(now, 0) + 1
                if before is not None:
                    counts[before] -= 1
                changed.setdefault(now, []).append(site)
            if changed:
                for names in changed.values():
                    names.sort(key=_natural)
                self.emit({"event": "sites", "counts": {s: counts[s] for s in STATES if counts.get(s)},
                           "changed": changed})

    def metrics(self) -> None:
        """A ``metrics`` event for the sites whose scalars changed, and a ``records`` event
        if records arrived, since the last ones."""
        latest = self._latest() if self._latest is not None else {}
        if latest:
            sites = {site: {tag: [_json_number(value), step]
                            for tag, (value, step) in list(tags.items())[:HEADLINE_TAGS]}
                     for site, tags in sorted(latest.items(), key=lambda item: _natural(item[0]))}
            self.emit({"event": "metrics", "sites": sites})
        now = time.monotonic()
        with self._lock:
            total, fresh = self._records, self._records - self._records_said
            seconds, self._records_at = now - self._records_at, now
            self._records_said = total
        if fresh:
            self.emit({"event": "records", "total": total,
                       "per_s": round(fresh / seconds, 1) if seconds > 0 else None})

    def _run(self) -> None:
        next_metrics = time.monotonic() + METRICS_PERIOD
        while not self._stop.wait(self._period):
            try:
                self.snapshot()
                if time.monotonic() >= next_metrics:
                    next_metrics = time.monotonic() + METRICS_PERIOD
                    self.metrics()
            except Exception:  # a failed print must not end the events
                log.exception("live events: could not send an event")


def event_line(event: Mapping[str, Any]) -> str:
    """``event`` as one line of the server's stdout (the marker, then compact JSON)."""
    return EVENT_MARKER + json.dumps(event, separators=(",", ":"), allow_nan=False) + "\n"


def _json_number(value: Any) -> Any:
    """``value``, or None where JSON has no number for it (NaN, infinities)."""
    if isinstance(value, float) and (value != value or value in (float("inf"), float("-inf"))):
        return None
    return value


def _natural(name: str) -> tuple[int, str]:
    # site-2 before site-10
    return len(name), name
