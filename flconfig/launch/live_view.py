"""What ``flconfig launch`` shows while a job runs: a live view, plain lines, or JSON events.

The launcher hands its view the server's progress lines (:meth:`View.line`), the live
events of the server and its own (:meth:`View.event`, see
:mod:`flconfig.runtime.live_events`), and writes its own lines to :attr:`View.out`:

- :class:`PlainView`: the lines as they come, the events dropped (output that is not a
  terminal, ``--format plain``);
- :class:`LiveView`: on a terminal, a live display drawn with rich: start-up progress (sites
  connected of N), a progress bar of the rounds, the records streamed a second, and a table
  of the sites with their state and headline metrics (at most :data:`MAX_ROWS` rows, the rest
  counted by state); the lines scroll above it;
- :class:`JsonView`: ``--format json``: one JSON object a line on stdout, each event with
  ``t``, the seconds since the launch started; the lines go to stderr.
"""

from __future__ import annotations

import io
import json
import os
import threading
import time
from collections.abc import Callable, Mapping
from typing import Any, TextIO

from rich.console import Console, Group, RenderableType
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, SpinnerColumn, TaskID, TextColumn
from rich.table import Table
from rich.text import Text

from ..runtime.live_events import STATES

#: The forms ``flconfig launch --format`` takes: ``text`` is a live view on a terminal and
#: plain lines elsewhere.
FORMATS = ("text", "plain", "json")
#: Most sites the live view's table lists one a row; the rest are counted by state.
MAX_ROWS = 20
#: Most metric columns the table has (the first tags the listed sites sent).
MAX_METRIC_COLUMNS = 3
#: Colours of the states in the live view.
STATE_STYLE = {"connecting": "dim", "connected": "cyan", "training": "yellow", "validating": "yellow",
               "working": "yellow", "sending": "blue", "done": "green", "failed": "bold red",
               "lost": "red"}


class View:
    """Where a launch shows what happens: the base shows nothing of the events."""

    #: Where the launcher writes its own lines.
    out: TextIO
    #: Whether the ``end`` event was shown.
    ended = False

    def line(self, text: str) -> None:
        """A line of the server's output (its newline included)."""

    def event(self, event: Mapping[str, Any]) -> None:
        """A live event (a dict with ``event`` naming it)."""
        if event.get("event") == "end":
            self.ended = True
        self._show(event)

    def _show(self, event: Mapping[str, Any]) -> None:
        """Show ``event`` (the base: not at all)."""

    def close(self) -> None:
        """The launch ended: leave the terminal as it was."""


class PlainView(View):
    """Every line as it comes, to ``out``; no events."""

    def __init__(self, out: TextIO) -> None:
        self.out = out

    def line(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()


class JsonView(View):
    """One JSON object a line to ``out``, each event stamped with ``t`` (seconds since the
    launch started); the launcher's and the server's lines go to ``err``."""

    def __init__(self, out: TextIO, err: TextIO) -> None:
        self.out = err
        self._events = out
        self._started = time.monotonic()
        self._lock = threading.Lock()

    def line(self, text: str) -> None:
        self.out.write(text)
        self.out.flush()

    def _show(self, event: Mapping[str, Any]) -> None:
        with self._lock:  # stamped and written in turn: the times only grow
            stamped = {"event": event.get("event"), "t": round(time.monotonic() - self._started, 3),
                       **{k: v for k, v in event.items() if k != "event"}}
            self._events.write(json.dumps(stamped, separators=(",", ":")) + "\n")
            self._events.flush()


class _Lines(io.TextIOBase):
    """A text stream that hands each complete line written to it to ``say``."""

    def __init__(self, say: Callable[[str], None]) -> None:
        self._say = say
        self._partial = ""
        self._lock = threading.Lock()

    def writable(self) -> bool:
        return True

    def write(self, text: str) -> int:
        with self._lock:
            *lines, self._partial = (self._partial + text).split("\n")
        for line in lines:
            self._say(line)
        return len(text)

    def flush(self) -> None:
        pass


class LiveView(View):
    """A live display on the terminal ``out`` (rich); the lines scroll above it."""

    def __init__(self, out: TextIO) -> None:
        self.console = Console(file=out, highlight=False)
        self.out = _Lines(self._say)  # type: ignore[assignment]  # a text stream of lines
        self._lock = threading.Lock()
        self._started = time.monotonic()
        self._title = "flconfig launch"  # then the job, its run and its sites
        self._phase = "checking the job"
        self._states: dict[str, str] = {}
        self._counts: dict[str, int] = {}
        self._metrics: dict[str, dict[str, list[Any]]] = {}
        self._tags: list[str] = []
        self._records = ""
        self._progress = Progress(SpinnerColumn(finished_text="✓"), TextColumn("{task.description:<16}"),
                                  BarColumn(bar_width=40), MofNCompleteColumn(),
                                  TextColumn("{task.fields[note]}"), console=self.console)
        self._connected: TaskID | None = None
        self._rounds: TaskID | None = None
        self._live = Live(console=self.console, get_renderable=self._render, refresh_per_second=4,
                          transient=False)
        self._live.start()

    def _say(self, line: str) -> None:
        # Not wrapped by rich: a long path wraps where the terminal wraps it, and copies whole.
        if self._live.is_started:
            self._live.console.print(Text(line), soft_wrap=True)
        else:
            self.console.file.write(line + "\n")
            self.console.file.flush()

    def line(self, text: str) -> None:
        self._say(text.rstrip("\n"))

    def _show(self, event: Mapping[str, Any]) -> None:
        kind = event.get("event")
        with self._lock:
            if kind == "launch":
                self._title = f"{event.get('job')} · run {event.get('run')} · {event.get('sites')} sites"
                self._phase = "starting the server"
            elif kind == "workers" and self._connected is None:  # else: they are connecting
                self._phase = f"{event.get('count')} {event.get('kind', 'process')}(es) started"
            elif kind == "listening":
                self._phase = "waiting for the sites"
                need, of = event.get("need"), event.get("of")
                note = f"(the run starts with {need})" if need != of else ""
                self._connected = self._progress.add_task("sites connected", total=of, note=note)
            elif kind == "sites":
                self._sites(event)
            elif kind == "workflow":
                name = event.get("name")
                self._phase = f"{name}" if event.get("state") == "started" else f"{name} done"
            elif kind == "round":
                self._round(event)
            elif kind == "metrics":
                self._metrics_of(event)
            elif kind == "records":
                self._records = f"records {event.get('total'):,} ({event.get('per_s')}/s)"
            elif kind == "end":
                code = event.get("code")
                self._phase = "finished" if code == 0 else "interrupted" if code == 130 else "failed"
        if kind == "end":  # the lines saying how it ended follow the last frame
            self._live.stop()

    def _sites(self, event: Mapping[str, Any]) -> None:
        counts = event.get("counts")
        if isinstance(counts, dict):
            self._counts = counts
        changed = event.get("changed")
        if isinstance(changed, dict):
            for state, names in changed.items():
                for name in names:
                    self._states[name] = state
        if self._connected is not None:
            here = sum(n for s, n in self._counts.items() if s not in ("connecting",))
            self._progress.update(self._connected, completed=here)

    def _round(self, event: Mapping[str, Any]) -> None:
        n, of = event.get("n"), event.get("of")
        if not isinstance(n, int):
            return
        if self._rounds is None:
            self._rounds = self._progress.add_task("rounds", total=of, note="")
        done = n if event.get("state") == "done" else n - 1
        self._progress.update(self._rounds, total=of, completed=done,
                              note=f"round {n} {event.get('state')}")

    def _metrics_of(self, event: Mapping[str, Any]) -> None:
        sites = event.get("sites")
        if not isinstance(sites, dict):
            return
        for site, tags in sites.items():
            self._metrics[site] = tags
            for tag in tags:
                if tag not in self._tags and len(self._tags) < MAX_METRIC_COLUMNS:
                    self._tags.append(tag)

    def _render(self) -> RenderableType:
        with self._lock:
            elapsed = time.monotonic() - self._started
            head = Text.assemble((self._title, "bold"), f" · {elapsed:.1f} s · ", (self._phase, "italic"))
            parts: list[RenderableType] = [head, self._progress]
            if self._records:
                parts.append(Text(self._records))
            if self._states:
                parts.append(self._table())
                totals = ", ".join(f"{state} {self._counts[state]:,}" for state in STATES
                                   if state in self._counts)
                parts.append(Text(f"all {sum(self._counts.values()):,} sites: {totals}", "dim"))
            return Group(*parts)

    def _table(self) -> Table:
        table = Table(box=None, pad_edge=False, header_style="bold")
        table.add_column("site")
        table.add_column("state")
        for tag in self._tags:
            table.add_column(tag, justify="right")
        # Failed and lost sites first, then the rest by name (site-2 before site-10).
        order = sorted(self._states, key=lambda s: (self._states[s] not in ("failed", "lost"), len(s), s))
        for site in order[:MAX_ROWS]:
            state = self._states[site]
            values = self._metrics.get(site, {})
            cells = [_metric(values.get(tag)) for tag in self._tags]
            table.add_row(site, Text(state, STATE_STYLE.get(state, "")), *cells)
        rest = order[MAX_ROWS:]
        if rest:
            by_state: dict[str, int] = {}
            for site in rest:
                by_state[self._states[site]] = by_state.get(self._states[site], 0) + 1
            table.add_row(f"+{len(rest):,} more", ", ".join(
                f"{state} {by_state[state]:,}" for state in STATES if state in by_state))
        return table

    def close(self) -> None:
        self._live.stop()


def _metric(value: Any) -> str:
    """A table cell of a metric: ``[value, step]`` as ``0.2314 @ 120``."""
    if not isinstance(value, list) or not value:
        return ""
    number, step = value[0], value[1] if len(value) > 1 else None
    text = "-" if number is None else str(number) if isinstance(number, int) else f"{number:.4g}"
    return text if step is None else f"{text} @ {step}"


def is_terminal(out: TextIO) -> bool:
    """Whether ``out`` is a terminal that can draw a live view (not TERM=dumb)."""
    try:
        tty = out.isatty()
    except (AttributeError, ValueError):
        return False
    return tty and os.environ.get("TERM", "") != "dumb"


def open_view(form: str, out: TextIO, err: TextIO) -> View:
    """The view of ``--format form`` writing to ``out`` (and ``err``, for JSON's lines)."""
    if form == "json":
        return JsonView(out, err)
    if form == "text" and is_terminal(out):
        return LiveView(out)
    return PlainView(out)
