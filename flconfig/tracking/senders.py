"""Senders: what a learner logs metrics with (``AnalyticsSender`` and its FLARE-named
flavors ``TBWriter``, ``MLflowWriter``, ``WandBWriter``).

The streaming path (see DESIGN.md, "Events and the streaming path")::

    learner ──add_scalar──▶ TBWriter: a bounded queue, drained by the process's
        analytics thread, which fires the local event "analytix_log_stats" once
        per batch of records
    ConvertToFedEvent (:mod:`~flconfig.tracking.convert`) ──▶ "fed.analytix_log_stats" ──▶ the server
        (flconfig.runtime.fed_events: records, sent in order, exactly once)
    server: :mod:`flconfig.tracking.receivers` ──▶ <run_dir>/tb_events/<site>/events.out.tfevents.*

The data of an analytics event is an :class:`~flconfig.tracking.records.AnalyticsBatch`
of records; :mod:`flconfig.tracking.records` documents their fields.

A call checks its values (:mod:`~flconfig.tracking.logged_values`, images, histograms)
and queues a record; the process's analytics thread (:mod:`~flconfig.tracking.drainer`)
fires the batches. The class attribute ``EMITS_ARG`` tells the validator which argument
carries the event name (see :mod:`flconfig.interfaces`). This module imports only the
standard library and flconfig's light modules at import time.
"""

from __future__ import annotations

import logging
import threading
import time
from collections import deque
from collections.abc import Mapping
from typing import Any, ClassVar

from ..common.logs import site_thread_name
from ..interfaces import Widget
from ..transport.contract import MAX_RECORD_BYTES
from ..types import Event, EventType, RunContext
from . import records as rec
from .drainer import DRAINER
from .histograms import histogram_value
from .images import encode_image, image_to_hwc
from .logged_values import (
    as_number,
    as_series,
    as_step,
    as_text,
    as_walltime,
    check_size,
    check_tag,
    hparams_value,
)
from .records import AnalyticsBatch

log = logging.getLogger(__name__)

_SCALAR = rec.SCALAR
_MAX_STEP = rec.MAX_STEP
_START_EVENTS = (EventType.ABOUT_TO_START_RUN, EventType.START_RUN)
# How long the end-of-run flush waits for the records to be handed on.
_END_FLUSH_TIMEOUT = 60.0


class AnalyticsSender(Widget):
    """What a learner logs metrics with, with ``SummaryWriter``'s method names and
    argument order (FLARE's ``AnalyticsSender``).

    A call checks its arguments (a wrong type raises ``TypeError`` naming the
    tag, here, at the call site), appends a compact record to a queue and
    returns: it never waits on the network. The process's analytics thread
    (one for all the senders of all the sites a worker hosts) drains the queue
    and fires the local event ``event_type`` once per batch of records (the data
    is an :class:`~flconfig.tracking.records.AnalyticsBatch`); the handlers of
    that event run on it.

    The queue holds at most ``queue_size`` records: a call that finds it full
    waits until the thread has made room (back-pressure; nothing is dropped).
    The sender captures the site at ``ABOUT_TO_START_RUN``/``START_RUN``;
    records logged before that wait in the queue and are sent once the run
    starts (a full queue before the run starts raises ``RuntimeError``, as
    nothing could ever empty it). ``ABOUT_TO_END_RUN`` and ``END_RUN`` flush.
    """

    kind = "analytics_sender"
    EMITS_ARG: ClassVar[str] = "event_type"
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "event_type": {"minLength": 1},
        "queue_size": {"minimum": 1},
        "writer_name": {"enum": ["TORCH_TB", "MLFLOW", "WANDB"]},
    }
    #: Seconds between two looks at a queue that had records: records logged meanwhile go
    #: in one batch (one event); flush() and a full queue have it drained at once.
    POLL_SECONDS: ClassVar[float] = 0.05
    #: Empty looks after which the sender is left alone until its next record: a
    #: thousand idle sites in one process then cost no CPU at all.
    IDLE_POLLS: ClassVar[int] = 2
    #: Most records in one fired event.
    MAX_BATCH: ClassVar[int] = 4096

    def __init__(self, event_type: str = "analytix_log_stats", queue_size: int = 100_000,
                 writer_name: str = "TORCH_TB") -> None:
        """
        Args:
            event_type: the local event fired for each batch of records.
            queue_size: most records waiting to be sent; when the queue is full
                an ``add_*`` call waits until there is room (nothing is dropped).
            writer_name: FLARE's name of the API the records follow
                (``TORCH_TB``, ``MLFLOW``, ``WANDB``); accepted for FLARE's
                configs: flconfig's records carry their kind, so every
                receiver reads them whatever the writer.
        """
        self.event_type = event_type
        self.queue_size = queue_size
        self.writer_name = writer_name
        # Items: (kind, tag, value, step, wall_time) tuples, or threading.Event
        # flush markers. deque.append is atomic: the hot path takes no lock.
        self._queue: deque[Any] = deque()
        self._known_tags: set[str] = set()
        self._ctx: RunContext | None = None
        self._room = threading.Event()  # set by the analytics thread after each drain
        self._state_lock = threading.Lock()
        self._draining = False  # the analytics thread is handing records on
        self._running = False  # a run started: the analytics thread drains the queue
        self._stopping = False  # the run ends: drain what is queued, then stop
        self._stopped = threading.Event()
        self._asleep = False  # running, off the timetable: the next record puts it back
        self._empty_looks = 0
        self._time = time.time
        #: Fire each batch as a fed event (sent to the server as it is) instead of a local
        #: one: set by what relays records that are already the server's (a Client API
        #: script's, with FLARE's MetricRelay), never by a config.
        self.fed_events = False

    # ------------------------------------------------------------------ SummaryWriter surface

    def add_scalar(
        self,
        tag: str,
        scalar_value: Any,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log one number: a Python int/float, a numpy scalar or a one-element tensor."""
        if type(tag) is not str or tag not in self._known_tags:
            self._new_tag(tag)
        if type(scalar_value) is not float:
            scalar_value = as_number(tag, scalar_value)
        if global_step is not None and (
            type(global_step) is not int or not 0 <= global_step <= _MAX_STEP
        ):
            global_step = as_step(tag, global_step)
        walltime = self._time() if walltime is None else as_walltime(tag, walltime)
        queue = self._queue
        if len(queue) >= self.queue_size:
            self._wait_for_room()
        queue.append((_SCALAR, tag, scalar_value, global_step, walltime))
        if self._asleep:
            self._wake()

    def add_scalars(
        self,
        main_tag: str,
        tag_scalar_dict: Mapping[str, Any],
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log several series under one main tag (one sub-run per series in TensorBoard)."""
        main_tag = check_tag(main_tag, "main_tag")
        self._put(
            rec.SCALARS, main_tag, as_series(main_tag, tag_scalar_dict), global_step, walltime
        )

    def add_text(
        self,
        tag: str,
        text_string: str,
        global_step: int | None = None,
        walltime: float | None = None,
    ) -> None:
        """Log a text (shown in TensorBoard's Text tab, as ``<tag>/text_summary``)."""
        tag = check_tag(tag)
        text = as_text(tag, text_string)
        if len(text) * 6 > MAX_RECORD_BYTES // 2:  # could be too big once JSON-escaped
            check_size(rec.TEXT, tag, text)
        self._put(rec.TEXT, tag, text, global_step, walltime)

    def add_image(
        self,
        tag: str,
        img_tensor: Any,
        global_step: int | None = None,
        walltime: float | None = None,
        dataformats: str = "CHW",
    ) -> None:
        """Log an image: an array or tensor, ``dataformats`` CHW, HWC or HW; floats in [0, 1]."""
        tag = check_tag(tag)
        # Encoded here, not on the sender's thread: an image that cannot be sent
        # fails at this call, never later and silently.
        value = encode_image(image_to_hwc(tag, img_tensor, dataformats))
        check_size(rec.IMAGE, tag, value)
        self._put(rec.IMAGE, tag, value, global_step, walltime)

    def add_histogram(
        self,
        tag: str,
        values: Any,
        global_step: int | None = None,
        bins: Any = "tensorflow",
        walltime: float | None = None,
        max_bins: int | None = None,
    ) -> None:
        """Log the histogram of ``values`` (computed here, as torch's SummaryWriter does)."""
        tag = check_tag(tag)
        self._put(
            rec.HISTOGRAM,
            tag,
            histogram_value(tag, values, bins, max_bins),
            global_step,
            walltime,
        )

    def add_hparams(
        self,
        hparam_dict: Mapping[str, Any],
        metric_dict: Mapping[str, Any],
        hparam_domain_discrete: Mapping[str, list[Any]] | None = None,
        run_name: str | None = None,
        global_step: int | None = None,
    ) -> None:
        """Log hyperparameters and their metrics (TensorBoard's HParams tab), in the
        sub-run ``run_name`` (default ``"hparams"``) of the site's run."""
        name = check_tag("hparams" if run_name is None else run_name, "run_name")
        value = hparams_value(hparam_dict, metric_dict, hparam_domain_discrete, name)
        check_size(rec.HPARAMS, name, value)
        self._put(rec.HPARAMS, name, value, global_step, None)

    @property
    def waiting(self) -> bool:
        """Whether records logged are waiting to be fired as an event (queued, or being
        handed on now)."""
        return bool(self._queue) or self._draining

    def flush(self, timeout: float | None = None) -> bool:
        """Wait until every record logged so far has been fired as an event.

        Returns True when it has; False after ``timeout`` seconds, or when the
        run has not started (the records wait in the queue until it does), or
        when called by a handler of an analytics event (it runs on the thread
        that would have to do the work).
        """
        if not self._running:
            return not self._queue
        if not self.waiting:
            return True  # every record logged so far was fired: nothing to wait for
        if DRAINER.on_thread():
            return False  # a handler of an analytics event: it cannot wait for itself
        marker = threading.Event()
        self._queue.append(marker)
        self._wake(now=True)
        return marker.wait(timeout)

    def close(self) -> None:
        """Flush and stop draining (a new run starts again)."""
        self.flush()
        self._stop_draining()

    def __enter__(self) -> AnalyticsSender:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ------------------------------------------------------------------ run lifecycle

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        etype = event.type
        if event.scope != "local":
            return  # only this site's own lifecycle starts or stops the sender
        if etype in _START_EVENTS:
            self._start(ctx)
        elif etype == EventType.ABOUT_TO_END_RUN:
            self._flush_at_end()
        elif etype == EventType.END_RUN:
            self._flush_at_end()
            self._stop_draining()

    def _start(self, ctx: RunContext) -> None:
        with self._state_lock:
            self._ctx = ctx
            if self._running and not self._stopping:
                return
            self._running, self._stopping = True, False
            self._stopped.clear()
            self._empty_looks = 0
            self._asleep = False
        self._schedule(time.monotonic())

    def _flush_at_end(self) -> None:
        if not self.flush(_END_FLUSH_TIMEOUT):
            log.warning(
                "%s: %d analytics records were not handed on within %g s at the end of the run",
                self.id or type(self).__name__,
                sum(type(item) is tuple for item in list(self._queue)),
                _END_FLUSH_TIMEOUT,
            )

    def _stop_draining(self) -> None:
        """Stop draining once the queue is empty; wait for that (unless on the thread)."""
        with self._state_lock:
            if not self._running:
                return
            self._stopping = True
            self._asleep = False
        self._schedule(time.monotonic())
        if not DRAINER.on_thread():
            self._stopped.wait(_END_FLUSH_TIMEOUT)

    def _wake(self, now: bool = False) -> None:
        """Put the sender on the analytics thread's timetable: an idle one (``now``: any)."""
        with self._state_lock:
            if not self._running or not (self._asleep or now):
                return
            self._asleep = False
        self._schedule(time.monotonic())

    def _schedule(self, when: float) -> None:
        """Be drained by ``when`` (time.monotonic), on the process's analytics thread."""
        DRAINER.schedule(self, when, self._tick)

    def _tick(self) -> None:
        """Drain once, on the analytics thread, and say when to look again."""
        thread = threading.current_thread()
        ctx = self._ctx
        thread.name = site_thread_name(getattr(ctx, "site_name", "site"), self.id or self.event_type)
        self._draining = True  # before the look: waiting is never False while records are in hand
        try:
            had = bool(self._queue)
            if had:
                self._empty_looks = 0
                try:
                    self._drain()
                except Exception as exc:  # keep draining: a stopped sender blocks every add_* call
                    message = (f"{self.id or type(self).__name__}: failed to hand on analytics "
                               f"records: {exc}")
                    report = getattr(ctx, "report_failure", None)
                    if report is not None:
                        report(message)  # the site's run fails with this line
                    else:
                        log.exception(message)
        finally:
            self._draining = False
            thread.name = "flconfig-analytics"
        now = time.monotonic()
        if self._queue:  # more than one batch: again, after the other senders due now
            self._schedule(now)
            return
        self._room.set()
        if not self._stopping:
            if had:
                self._schedule(now + self.POLL_SECONDS)
                return
            self._empty_looks += 1
            if self._empty_looks < self.IDLE_POLLS:
                self._schedule(now + self.POLL_SECONDS)
                return
        with self._state_lock:
            if self._queue:  # a record came meanwhile; its call saw us scheduled
                self._schedule(now)
            elif self._stopping:
                self._running = self._stopping = False
                self._stopped.set()
            else:
                self._asleep = True

    # ------------------------------------------------------------------ queue

    def _new_tag(self, tag: object) -> None:
        self._known_tags.add(check_tag(tag))

    def _put(self, kind: str, tag: str, value: Any, step: Any, walltime: Any) -> None:
        if step is not None and (type(step) is not int or not 0 <= step <= _MAX_STEP):
            step = as_step(tag, step)
        walltime = self._time() if walltime is None else as_walltime(tag, walltime)
        if len(self._queue) >= self.queue_size:
            self._wait_for_room()
        self._queue.append((kind, tag, value, step, walltime))
        if self._asleep:
            self._wake()

    def _wait_for_room(self) -> None:
        queue, bound = self._queue, self.queue_size
        while True:
            self._room.clear()
            if len(queue) < bound:
                return
            if DRAINER.on_thread():
                return  # logged by a handler of an analytics event: waiting would wait for itself
            if not self._running:
                raise RuntimeError(
                    f"{self.id or type(self).__name__}: {len(queue)} records wait to be sent and "
                    "the run has not started (or has ended); nothing can empty the queue. "
                    "Log during the run, or raise queue_size."
                )
            self._wake(now=True)
            self._room.wait(0.05)

    def take_batch(self) -> AnalyticsBatch:
        """Take the records logged so far off the queue as one batch, without firing them
        (for a caller that fires the event itself, as FLARE's ``send_analytic_dxo``)."""
        batch = AnalyticsBatch()
        while self._queue:
            item = self._queue.popleft()
            if type(item) is tuple:
                kind, tag, value, step, wall_time = item
                batch.append({"event_type": self.event_type, "kind": kind, "tag": tag,
                              "value": value, "step": step, "wall_time": wall_time})
            else:
                item.set()  # a flush marker: nothing before it is left
        return batch

    def _drain(self) -> None:
        popleft = self._queue.popleft
        event_type = self.event_type
        batch = AnalyticsBatch()
        append = batch.append
        markers: list[threading.Event] = []
        limit = self.MAX_BATCH
        count = 0
        while count < limit:
            try:
                item = popleft()
            except IndexError:
                break
            if type(item) is not tuple:
                markers.append(item)  # a flush marker: hand on what came before it first
                break
            kind, tag, value, step, wall_time = item
            append({
                "event_type": event_type,
                "kind": kind,
                "tag": tag,
                "value": value,
                "step": step,
                "wall_time": wall_time,
            })  # fmt: skip
            count += 1
        self._room.set()
        try:
            if batch:
                ctx = self._ctx
                if ctx is None:  # pragma: no cover - the thread starts with a context
                    raise RuntimeError("no run context")
                if self.fed_events:
                    ctx.fire_fed_event(event_type, batch)
                else:
                    ctx.fire_event(event_type, batch)
        finally:
            for marker in markers:
                marker.set()



class TBWriter(AnalyticsSender):
    """An :class:`AnalyticsSender` under FLARE's TensorBoard-writer name, with
    SummaryWriter's method names (FLARE's ``TBWriter``).
    """


class MLflowWriter(AnalyticsSender):
    """An :class:`AnalyticsSender` with MLflow's logging methods (FLARE's ``MLflowWriter``),
    for learners that log as they would with ``mlflow``.

    Metrics become scalar records (every receiver reads them: TensorBoard, MLflow, JSON
    lines); parameters and tags become text records ``params/<key>`` and ``tags/<key>``;
    ``log_text`` a text record under its artifact path.
    """

    def __init__(self, event_type: str = "analytix_log_stats") -> None:
        """
        Args:
            event_type: the local event fired for each batch of records.
        """
        super().__init__(event_type=event_type, writer_name="MLFLOW")

    def log_param(self, key: str, value: Any) -> None:
        """Log a parameter (a hyperparameter): a text record ``params/<key>``."""
        self.add_text(f"params/{key}", str(value))

    def log_params(self, values: Mapping[str, Any]) -> None:
        """Log several parameters."""
        for key, value in values.items():
            self.log_param(str(key), value)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        """Log one metric at ``step``."""
        self.add_scalar(key, value, step)

    def log_metrics(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics at one ``step``."""
        for key, value in metrics.items():
            self.add_scalar(str(key), value, step)

    def log_text(self, text: str, artifact_file_path: str) -> None:
        """Log a text under its artifact path."""
        self.add_text(artifact_file_path, text)

    def set_tag(self, key: str, tag: Any) -> None:
        """Set a tag: a text record ``tags/<key>``."""
        self.add_text(f"tags/{key}", str(tag))

    def set_tags(self, tags: Mapping[str, Any]) -> None:
        """Set several tags."""
        for key, tag in tags.items():
            self.set_tag(str(key), tag)


class WandBWriter(AnalyticsSender):
    """An :class:`AnalyticsSender` with Weights & Biases' ``log`` (FLARE's ``WandBWriter``)."""

    def __init__(self, event_type: str = "analytix_log_stats") -> None:
        """
        Args:
            event_type: the local event fired for each batch of records.
        """
        super().__init__(event_type=event_type, writer_name="WANDB")

    def log(self, metrics: Mapping[str, float], step: int | None = None) -> None:
        """Log several metrics at one ``step``: one scalar record each."""
        for key, value in metrics.items():
            self.add_scalar(str(key), value, step)
