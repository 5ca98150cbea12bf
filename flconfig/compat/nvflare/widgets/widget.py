"""FLARE's ``Widget``: a component that only reacts to events."""

from __future__ import annotations

from ..apis.fl_component import FLComponent


class Widget(FLComponent):
    """A widget of the job's code: ``handle_event(event_type, fl_ctx)`` for every event."""
