"""Federated events as transport records, and back.

A client's fed events travel to the server as records (small JSON-safe
dicts) through :meth:`CommClient.send_events`, which numbers them and
delivers them exactly once, in order; on the server they become events again.
The two process mains wire it like this::

    # client main
    ctx.fed_sink = lambda ev: comm.send_events(event_to_records(ev))
    # server main
    comm.on_events = lambda site, recs: [
        ctx.deliver_fed_event(t, d, origin=site) for t, d in records_to_events(recs)
    ]

``origin`` is the site the connection authenticated as; nothing in a record
can claim another.

Record shapes:

- an event whose data is an :class:`~flconfig.tracking.records.AnalyticsBatch`
  becomes one analytics record per entry, each with ``event_type`` set to the
  event's type (see :mod:`flconfig.tracking.records` for the fields);
- any other event becomes one record ``{"event_type": type, "data": data}``;
  ``data`` must be JSON-safe (None, bool, int, float, str, lists, dicts with
  str keys).

On the way back, consecutive analytics records with the same ``event_type``
become one event whose data is an ``AnalyticsBatch``, so a receiver gets the
batches the sender fired (or larger ones). Every record is checked; a bad one
is dropped with a warning, never an exception: records come from the network.
"""

from __future__ import annotations

import logging
from collections.abc import Iterable
from typing import Any

from ..tracking.records import AnalyticsBatch, check_event_type, clean_record
from ..transport.codec import find_unsendable
from ..types import Event

log = logging.getLogger(__name__)


def event_to_records(event: Event) -> list[dict[str, Any]]:
    """The records that carry ``event`` to the server.

    Raises ``TypeError`` saying which part of the data JSON cannot carry, and
    ``ValueError`` for a reserved (system) event type, which never leaves its site.
    """
    data = event.data
    event_type = check_event_type(event.type)
    if isinstance(data, AnalyticsBatch):
        return [{**record, "event_type": event_type} for record in data]
    find_unsendable(data, f"the data of event {event_type!r}")
    return [{"event_type": event_type, "data": data}]


def records_to_events(records: Iterable[Any], site: str = "") -> list[tuple[str, Any]]:
    """``(event_type, data)`` pairs from records that came over the network.

    ``site`` only names the sender in warnings. Never raises for bad records.
    """
    events: list[tuple[str, Any]] = []
    batch: AnalyticsBatch | None = None
    batch_type = ""
    where = f" from site {site}" if site else ""
    for index, record in enumerate(records):
        try:
            clean = clean_record(record)
        except Exception as exc:  # anything a hostile record can provoke
            seq = record.get("seq") if type(record) is dict else None
            log.warning(
                "dropped a bad event record%s (#%d%s): %s",
                where,
                index,
                f", seq {seq}" if type(seq) is int else "",
                exc,
            )
            continue
        event_type = clean["event_type"]
        if "kind" in clean:
            if batch is None or event_type != batch_type:
                batch, batch_type = AnalyticsBatch(), event_type
                events.append((event_type, batch))
            batch.append(clean)
        else:
            batch = None
            events.append((event_type, clean["data"]))
    return events
