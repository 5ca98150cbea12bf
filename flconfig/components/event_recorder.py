"""FLARE's event recorders: every event a site sees, counted and written to a file."""

from __future__ import annotations

import collections
import logging
from typing import Any, ClassVar

from ..files import inside, write_atomic
from ..types import Event, EventType, RunContext
from .base import Widget

log = logging.getLogger(__name__)


class EventRecorder(Widget):
    """Records every event of its site (FLARE's ``EventRecorder``): each one is logged at
    debug level, and when the run ends ``log_file_name`` in the site's run folder lists
    each event type with how often it was fired, in the order first seen, as
    ``<event type>: <count>`` lines.

    FLARE's recorder also checks the properties of each event's FLContext against its
    expectations; flconfig's events carry their data instead, so that check has no
    equivalent.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"log_file_name": {"type": ["string", "null"], "minLength": 1,
                                     "pattern": r"^(?!\.\.?$)[^/\\]+$",
                                     "patternErrorMessage": "a file name without a folder"}}

    def __init__(self, log_file_name: str | None = None) -> None:
        """
        Args:
            log_file_name: the file, in the site's run folder, the counts are written to
                (``event_recorded.txt`` by default).
        """
        self.log_file_name = log_file_name
        self._counts: collections.Counter[str] = collections.Counter()

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Count ``event``; write the counts when the run ends."""
        self._counts[event.type] += 1
        log.debug("%s: event %s (%s)", getattr(ctx, "site_name", "?"), event.type, event.scope)
        if event.type == EventType.END_RUN:
            path = inside(ctx.run_dir, self.log_file_name or "event_recorded.txt")
            text = "".join(f"{name}: {count}\n" for name, count in self._counts.items())
            write_atomic(path, text.encode())

    @property
    def counts(self) -> dict[str, int]:
        """How often each event type was fired so far."""
        return dict(self._counts)


class ServerEventRecorder(EventRecorder):
    """An :class:`EventRecorder` on the server (FLARE's ``ServerEventRecorder``)."""


class ClientEventRecorder(EventRecorder):
    """An :class:`EventRecorder` on a client site (FLARE's ``ClientEventRecorder``)."""
