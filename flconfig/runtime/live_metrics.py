"""Live metrics for the terminal: the latest value of each site's scalar tags, now and then.

The server worker hands :meth:`LiveMetrics.observe` every batch of events that
arrived from a site; for each scalar analytics record it keeps the latest one
per site and tag (one dict store per record: it runs on the streaming hot
path). A background thread prints a summary through ``emit`` every
``interval`` seconds while new records arrive, and one shortly after each
``ROUND_DONE`` (records stream while results are gathered, so it waits
``settle`` seconds for the round's last ones); ``END_RUN`` prints the last::

    [  12.3s] site-1: train_loss 0.2314 @ 120, validation_accuracy 0.9531 @ 4 | site-2: ...

With more than ``max_sites`` sites it prints, per tag, the minimum, mean and
maximum of the sites' latest values and the range of their steps instead::

    [  12.3s] 16 sites, min/mean/max: train_loss 0.102/0.231/0.402 @ 100..130 | ...

Only ``scalar`` records count (``add_scalar``); the other kinds are left to
TensorBoard.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Iterable
from typing import Any

from ..tracking.records import SCALAR, AnalyticsBatch
from ..types import Event, EventType

log = logging.getLogger(__name__)

#: A summary longer than this is printed one line per site (or per tag).
LINE_WIDTH = 160


class LiveMetrics:
    """Keeps each site's latest scalars and prints them through ``emit``.

    Also a handler (``handle_event``): add it to the server's handlers so a
    summary is printed at each round's end and at the end of the run.
    """

    def __init__(
        self,
        emit: Callable[[str], None] | None,
        interval: float = 2.0,
        *,
        settle: float = 0.25,
        max_sites: int = 8,
        max_tags: int = 6,
    ) -> None:
        """
        Args:
            emit: prints one line (the server's ``progress``); None: print nothing, only
                keep the latest scalars (for :meth:`take_changed`).
            interval: seconds between two summaries printed by the thread.
            settle: seconds after a round's end before its summary is printed.
            max_sites: above this many sites, print min/mean/max per tag instead.
            max_tags: most tags shown per site; the rest are counted.
        """
        self.emit = emit
        self.interval = interval
        self.settle = settle
        self.max_sites = max_sites
        self.max_tags = max_tags
        # site -> tag -> latest clean scalar record (kept whole: no copy on the hot path).
        self._latest: dict[str, dict[str, dict[str, Any]]] = {}
        self._lock = threading.Lock()
        self._fresh = False  # records arrived since the last summary
        self._changed: set[str] = set()  # sites with records since the last take_changed
        self._stop = threading.Event()
        self._round_done = threading.Event()
        self._thread: threading.Thread | None = None

    # ------------------------------------------------------------------ hot path

    def observe(self, site: str, events: Iterable[tuple[str, Any]]) -> None:
        """Note the scalar records among ``events`` (``records_to_events``' checked output)."""
        for _, data in events:
            if type(data) is not AnalyticsBatch:
                continue
            with self._lock:
                latest = self._latest.get(site)
                if latest is None:
                    latest = self._latest[site] = {}
                for record in data:
                    if record["kind"] == SCALAR:
                        latest[record["tag"]] = record
                self._fresh = True
                self._changed.add(site)

    def take_changed(self) -> dict[str, dict[str, tuple[Any, int | None]]]:
        """The latest (value, step) of each scalar tag of the sites that sent scalars since
        the last call (the live view's ``metrics`` events)."""
        with self._lock:
            changed, self._changed = self._changed, set()
            return {site: {tag: (r["value"], r["step"]) for tag, r in self._latest[site].items()}
                    for site in changed if self._latest.get(site)}

    # ------------------------------------------------------------------ printing

    def start(self) -> None:
        """Print a summary every ``interval`` seconds while records arrive (a daemon thread;
        none without ``emit``)."""
        if self._thread is None and self.emit is not None:
            self._thread = threading.Thread(target=self._run, name="live-metrics", daemon=True)
            self._thread.start()

    def stop(self) -> None:
        """Stop the thread and print what arrived since the last summary."""
        self._stop.set()
        self._round_done.set()
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.join(timeout=5)
        self.report()

    def handle_event(self, event: Event, ctx: Any) -> None:
        """At ``ROUND_DONE``, print soon (or now, with no thread); at ``END_RUN``, print and stop."""
        if event.type == EventType.ROUND_DONE:
            if self._thread is not None:
                self._round_done.set()
            else:
                self.report()
        elif event.type == EventType.END_RUN:
            self.stop()

    def report(self) -> None:
        """Print the summary if records arrived since the last one."""
        if self.emit is None:
            return
        for line in self.summary():
            self.emit(line)

    def summary(self) -> list[str]:
        """The lines of a summary (empty when nothing arrived since the last one)."""
        with self._lock:
            if not self._fresh:
                return []
            self._fresh = False
            snapshot = {
                site: [(tag, r["value"], r["step"]) for tag, r in tags.items()]
                for site, tags in self._latest.items()
                if tags
            }
        if not snapshot:
            return []
        if len(snapshot) > self.max_sites:
            head = f"{len(snapshot)} sites, min/mean/max: "
            parts = self._per_tag(snapshot)
        else:
            head = ""
            parts = [f"{site}: {self._site_part(tags)}" for site, tags in _by_site_name(snapshot)]
        line = head + " | ".join(parts)
        if len(line) <= LINE_WIDTH:
            return [line]
        return [head + part for part in parts]

    def _site_part(self, tags: list[tuple[str, Any, int | None]]) -> str:
        shown = [f"{tag} {_number(value)}{_at(step)}" for tag, value, step in tags[: self.max_tags]]
        if len(tags) > self.max_tags:
            shown.append(f"+{len(tags) - self.max_tags} more")
        return ", ".join(shown)

    def _per_tag(self, snapshot: dict[str, list[tuple[str, Any, int | None]]]) -> list[str]:
        values: dict[str, list[Any]] = {}
        steps: dict[str, list[int]] = {}
        for tags in snapshot.values():
            for tag, value, step in tags:
                values.setdefault(tag, []).append(value)
                if step is not None:
                    steps.setdefault(tag, []).append(step)
        parts = []
        for tag in list(values)[: self.max_tags]:
            vals = values[tag]
            finite = [float(v) for v in vals if math.isfinite(v)]
            if finite:
                low, mean, high = min(finite), math.fsum(finite) / len(finite), max(finite)
                text = f"{tag} {_number(low)}/{_number(mean)}/{_number(high)}"
            else:
                text = f"{tag} -"
            tag_steps = steps.get(tag)
            if tag_steps:
                first, last = min(tag_steps), max(tag_steps)
                text += f" @ {first}" if first == last else f" @ {first}..{last}"
            notes = []
            if len(vals) < len(snapshot):
                notes.append(f"{len(vals)} of {len(snapshot)} sites")
            if len(finite) < len(vals):
                notes.append(f"{len(vals) - len(finite)} not finite")
            if notes:
                text += f" ({', '.join(notes)})"
            parts.append(text)
        if len(values) > self.max_tags:
            parts.append(f"+{len(values) - self.max_tags} more tags")
        return parts

    def _run(self) -> None:
        while True:
            if self._round_done.wait(self.interval):
                self._round_done.clear()
                self._stop.wait(self.settle)
            if self._stop.is_set():
                return  # stop() prints the last summary
            try:
                self.report()
            except Exception:  # a failed print must not end the summaries
                log.exception("live metrics: could not print a summary")


def _by_site_name(snapshot: dict[str, Any]) -> list[tuple[str, Any]]:
    # site-2 before site-10
    return sorted(snapshot.items(), key=lambda item: (len(item[0]), item[0]))


def _number(value: Any) -> str:
    if type(value) is int:
        return str(value)
    return f"{value:.4g}"


def _at(step: int | None) -> str:
    return "" if step is None else f" @ {step}"
