"""``ConvertToFedEvent``: the widget that re-fires a site's local events as federated
events, so that they reach the server (the analytics records among them).

The class attributes ``CONVERTS_ARG``/``PREFIX_ARG`` tell the validator which arguments
carry event names (see :mod:`flconfig.interfaces`).
"""

from __future__ import annotations

from typing import Any, ClassVar

from ..interfaces import Widget
from ..types import Event, RunContext


class ConvertToFedEvent(Widget):
    """Re-fires the listed local events as federated events, named with a
    prefix, so they reach the server (FLARE's ``ConvertToFedEvent``).

    Only events of local scope are converted: a federated event, or one whose
    name already has the prefix, is never converted again.
    """

    CONVERTS_ARG: ClassVar[str] = "events_to_convert"
    PREFIX_ARG: ClassVar[str] = "fed_event_prefix"
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "events_to_convert": {"minItems": 1, "items": {"type": "string", "minLength": 1}},
        "fed_event_prefix": {"minLength": 1},
    }

    def __init__(self, events_to_convert: list[str], fed_event_prefix: str = "fed.") -> None:
        """
        Args:
            events_to_convert: the local events to forward.
            fed_event_prefix: prefix of the federated events' names:
                ``analytix_log_stats`` becomes ``fed.analytix_log_stats``.
        """
        self.events_to_convert = list(events_to_convert)
        self.fed_event_prefix = fed_event_prefix
        self._convert = frozenset(self.events_to_convert)

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        etype = event.type
        if (
            etype in self._convert
            and event.scope == "local"
            and not etype.startswith(self.fed_event_prefix)
        ):
            ctx.fire_fed_event(self.fed_event_prefix + etype, event.data)
