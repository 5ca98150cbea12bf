"""Receivers: the server-side components that write the analytics records of every
site out (:class:`AnalyticsReceiver` is their base).

- :mod:`.tensorboard`: :class:`~.tensorboard.TBAnalyticsReceiver`, TensorBoard event files;
- :mod:`.jsonl`: :class:`~.jsonl.JsonLinesReceiver`, one JSON line per record;
- :mod:`.mlflow`: :class:`~.mlflow.MLflowReceiver`, an MLflow tracking store.

The class attributes ``LISTENS_ARG``/``DEFAULT_EVENTS`` tell the validator which
arguments carry event names (see :mod:`flconfig.interfaces`). Numpy,
tensorboard and mlflow are imported where they are used.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ...errors import JobError, StorageError, storage_message
from ...interfaces import Widget
from ...transport.contract import is_valid_site_name
from ...types import Event, EventType, RunContext
from ..records import ANALYTICS_EVENT

__all__ = ["ANALYTICS_EVENT", "AnalyticsReceiver"]

log = logging.getLogger(__name__)



class AnalyticsReceiver(Widget):
    """Base of the receivers: handles the listed events, local or federated, and
    saves each record with the site it came from (FLARE's ``AnalyticsReceiver``).

    A receiver is a few lines::

        class PrintReceiver(AnalyticsReceiver):
            def save(self, record, origin):
                print(origin, record["tag"], record["value"], record["step"])

    - :meth:`initialize` runs at ``START_RUN`` (or at the first record, if that
      comes first); if it raises, the error is logged and the receiver ignores
      every event.
    - :meth:`save` is called once per record, under a lock, in the order the
      records arrived. ``origin`` is the authenticated site for a federated
      event and this site's name for a local one; it is a checked site name
      (letters, digits, ``.``, ``_``, ``-``). An exception in ``save`` is
      logged once per kind of record and the other records are still saved.
      An ``OSError`` from :meth:`save` or :meth:`after_batch` (a full disk)
      saves nothing of the batch: :meth:`discard` runs and
      :class:`~flconfig.errors.StorageError` is raised, so the transport does
      not acknowledge the records and the site sends them again.
    - :meth:`after_batch` runs after the records of one event (write them out
      here if ``save`` buffers).
    - :meth:`finalize` runs at ``END_RUN``. Records that arrive after
      ``END_RUN`` was fired but before this receiver's ``finalize`` ran are
      still saved; later ones are counted and reported, not saved.

    A batch this site fired both locally and as a fed event (a client that
    converts and receives the same events) is saved once.
    """

    kind = "receiver"
    LISTENS_ARG: ClassVar[str] = "events"
    DEFAULT_EVENTS: ClassVar[list[str]] = ["analytix_log_stats", "fed.analytix_log_stats"]
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "events": {"minItems": 1, "items": {"type": "string", "minLength": 1}},
    }

    def __init__(self, events: list[str] | None = None) -> None:
        """
        Args:
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        self.events = list(self.DEFAULT_EVENTS if events is None else events)
        self._listened = frozenset(self.events)
        self._lock = threading.Lock()
        self._state = "new"  # new -> ready | failed -> finalized
        self._failed: set[Any] = set()
        self._recent: deque[tuple[Any, str]] = deque(maxlen=16)
        self._late = 0
        self._bad_origins: set[str] = set()
        self._storage_failures = 0

    # ------------------------------------------------------------------ hooks

    def initialize(self, ctx: RunContext) -> None:
        """Prepare to save (open files, connect): called once, before the first record."""

    def save(self, record: dict[str, Any], origin: str) -> None:
        """Save one record from site ``origin`` (see :mod:`flconfig.tracking.records`)."""
        raise NotImplementedError

    def after_batch(self) -> None:
        """Called, under the lock, after the records of one event were saved.

        Raise ``OSError`` if writing failed, after leaving nothing of the batch
        behind: the records were not saved and are sent again.
        """

    def discard(self) -> None:
        """Forget what :meth:`save` buffered for the current batch (its write failed)."""

    def finalize(self, ctx: RunContext) -> None:
        """Write out and close: called once at the end of the run."""

    # ------------------------------------------------------------------ events

    @property
    def _name(self) -> str:
        return self.id or type(self).__name__

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        etype = event.type
        if etype in self._listened:
            self._receive(event, ctx)
        elif event.scope != "local":
            return  # a receiver acts on its own site's lifecycle only, never a peer's
        elif etype == EventType.START_RUN:
            with self._lock:
                if self._state == "new":
                    self._initialize(ctx)
        elif etype == EventType.END_RUN:
            with self._lock:
                self._finalize(ctx)

    def _initialize(self, ctx: RunContext) -> None:
        try:
            self.initialize(ctx)
            self._state = "ready"
        except (JobError, ImportError, ValueError, OSError) as exc:
            self._state = "failed"
            log.error("%s cannot start and will save nothing: %s", self._name, exc)
        except Exception:
            self._state = "failed"
            log.exception("%s cannot start and will save nothing", self._name)

    def _finalize(self, ctx: RunContext) -> None:
        if self._state == "ready":
            try:
                self.finalize(ctx)
            except Exception:
                log.exception("%s: finalize failed", self._name)
        self._state = "finalized"

    def _receive(self, event: Event, ctx: RunContext) -> None:
        local_site = ctx.site_name
        origin = event.origin if event.scope == "fed" else local_site
        data = event.data
        if isinstance(data, list):
            records: list[Any] = data
        elif isinstance(data, Mapping):
            records = [data]
        else:
            self._warn_once(
                ("data", event.type),
                "%s: event %s carries %s, not analytics records; ignored",
                self._name, event.type, type(data).__name__,
            )  # fmt: skip
            return
        if not is_valid_site_name(origin):
            self._warn_once(
                ("origin", str(origin)[:200]),
                "%s: records from site %r ignored: not a valid site name",
                self._name, str(origin)[:200],
            )  # fmt: skip
            return
        with self._lock:
            if self._state == "new":
                self._initialize(ctx)
            if self._state == "failed":
                return
            if self._state == "finalized":
                self._late += len(records)
                self._warn_once(
                    ("late",),
                    "%s: records arrived after the end of the run and were not saved "
                    "(first from site %s)",
                    self._name, origin,
                )  # fmt: skip
                return
            if origin == local_site:
                # The same batch fired locally and as a fed event on this site: save once.
                for seen, scope in self._recent:
                    if seen is data and scope != event.scope:
                        return
                self._recent.append((data, event.scope))
            save = self.save
            try:
                for record in records:
                    try:
                        save(record, origin)
                    except OSError:
                        raise
                    except Exception as exc:
                        kind = record.get("kind") if isinstance(record, Mapping) else None
                        if kind not in self._failed:
                            self._failed.add(kind)
                            log.error(
                                "%s: could not save a %s record from %s (%s: %s); "
                                "further failures of this kind are not logged",
                                self._name, kind or "malformed", origin, type(exc).__name__, exc,
                            )  # fmt: skip
                self.after_batch()
            except OSError as exc:
                # Nothing of this batch is kept: the sender still has it and sends it again.
                self.discard()
                message = storage_message(exc, getattr(ctx, "workspace", "the workspace"))
                self._storage_failures += 1
                if self._storage_failures == 1 or self._storage_failures % 100 == 0:
                    log.error("%s: %s (%s); %d records from %s not saved, to be sent again",
                              self._name, message, exc, len(records), origin)
                raise StorageError(message) from None
            except Exception as exc:
                if "after_batch" not in self._failed:
                    self._failed.add("after_batch")
                    log.error("%s: could not write records: %s", self._name, exc)

    def _warn_once(self, key: Any, message: str, *args: Any) -> None:
        if key not in self._failed:
            self._failed.add(key)
            log.warning(message, *args)

    @property
    def late_records(self) -> int:
        """Records that arrived after :meth:`finalize` and were not saved."""
        return self._late


