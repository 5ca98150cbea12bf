"""ScatterAndGather: the FedAvg workflow (FLARE's ``ScatterAndGather``)."""

from __future__ import annotations

import gc
import logging
import math
import time
from typing import TYPE_CHECKING, Any, ClassVar, TypeGuard

from ..errors import JobError
from ..interfaces import GLOBAL_MODEL_PROP
from ..types import EventType, FLModel, ReturnCode, Signal
from .base import (
    Aggregator,
    AppEventType,
    Controller,
    ModelPersistor,
    ShareableGenerator,
    lookup_component,
    site_logger,
)

if TYPE_CHECKING:
    from ..types import ServerContext

log = logging.getLogger(__name__)

#: ``ctx.props`` keys this workflow sets.
CURRENT_ROUND_PROP = "current_round"
#: How long a round waits for ``min_clients`` sites to be connected.
SITE_WAIT_S = 60.0


class ScatterAndGather(Controller):
    """Each round, sends the global model to the sites as a train task, aggregates
    the results and turns them into the next global model.

    Round ``r`` (``start_round`` .. ``num_rounds - 1``):

    1. sets ``ctx.props["current_round"]`` and fires ``ROUND_STARTED``;
    2. builds the task data from the global model (shareable generator) with
       meta ``current_round`` and ``num_rounds``;
    3. sends ``train_task_name`` to every connected site and waits for
       ``min_clients`` results, then up to ``wait_time_after_min_received``
       seconds for the others (``train_timeout`` bounds the whole wait);
    4. gives each good result to the aggregator as it arrives. A failed
       result stops the job (``ignore_result_error`` False), is skipped
       (True), or is skipped while ``min_clients`` good results can still be
       had (None); a lost site stops the job once ``min_clients`` is out of
       reach;
    5. aggregates, builds the next global model, saves it through the
       persistor every ``persist_every_n_rounds`` rounds and after the last,
       fires ``ROUND_DONE`` and reports the round through ``ctx.progress``.

    When the sites report ``initial_metrics`` (LearnerExecutor does), their
    weighted mean is the validation metric of the global model sent that
    round; a new best fires ``_global_best_model_available`` so the persistor
    saves it as the best model. A job with an ``IntimeModelSelector`` (or any
    component with ``SELECTS_BEST_MODEL``) leaves that choice to it.

    The final model is kept as :attr:`global_model` and in
    ``ctx.props["global_model"]`` for later workflows. ``task_check_period``
    and ``snapshot_every_n_rounds`` are accepted for compatibility: results
    are waited for without polling, and flconfig takes no snapshots.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "min_clients": {"minimum": 1},
        "num_rounds": {"minimum": 0},
        "start_round": {"minimum": 0},
        "wait_time_after_min_received": {"minimum": 0},
        "aggregator_id": {"minLength": 1},
        "shareable_generator_id": {"minLength": 1},
        "train_task_name": {"minLength": 1},
        "train_timeout": {"minimum": 0},
        "task_check_period": {"exclusiveMinimum": 0},
        "persist_every_n_rounds": {"minimum": 0},
        "snapshot_every_n_rounds": {"minimum": 0},
        "memory_gc_rounds": {"minimum": 0},
    }

    def __init__(
        self,
        min_clients: int = 1000,
        num_rounds: int = 5,
        start_round: int = 0,
        wait_time_after_min_received: int = 10,
        aggregator_id: str = "aggregator",
        persistor_id: str = "",
        shareable_generator_id: str = "shareable_generator",
        train_task_name: str = "train",
        train_timeout: int = 0,
        ignore_result_error: bool | None = None,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
        persist_every_n_rounds: int = 1,
        snapshot_every_n_rounds: int = 1,
        memory_gc_rounds: int = 1,
        enable_tensor_disk_offload: bool = False,
    ) -> None:
        """
        Args:
            min_clients: results needed before a round may end. FLARE's default
                of 1000 is meant to be overridden with the number of sites.
            num_rounds: rounds to run.
            start_round: number of the first round (to continue a run).
            wait_time_after_min_received: seconds to wait for more results once
                ``min_clients`` have answered.
            aggregator_id: id of the Aggregator that combines the results.
            persistor_id: id of the ModelPersistor that loads the initial model
                and saves the global model; empty for none.
            shareable_generator_id: id of the ShareableGenerator that converts
                between the global model and task data.
            train_task_name: name of the task sent to the sites.
            train_timeout: seconds a site has for a train task; 0 for no limit.
            ignore_result_error: what a failed site result does. False: stop the
                job; True: skip the result; None: skip it while ``min_clients``
                can still be reached, stop otherwise.
            allow_empty_global_weights: start even when the persistor gives an
                empty model.
            task_check_period: seconds between checks of the task's progress.
            persist_every_n_rounds: save the global model every N rounds (and
                after the last); 0 to save only after the last.
            snapshot_every_n_rounds: snapshot the workflow state every N
                rounds; 0 for never.
            memory_gc_rounds: run Python's garbage collector after every N
                rounds; 0 for never.
            enable_tensor_disk_offload: accepted for FLARE's configs: flconfig
                streams models in chunks and keeps no extra copy to offload.
        """
        self.min_clients = min_clients
        self.num_rounds = num_rounds
        self.start_round = start_round
        self.wait_time_after_min_received = wait_time_after_min_received
        self.aggregator_id = aggregator_id
        self.persistor_id = persistor_id
        self.shareable_generator_id = shareable_generator_id
        self.train_task_name = train_task_name
        self.train_timeout = train_timeout
        self.ignore_result_error = ignore_result_error
        self.allow_empty_global_weights = allow_empty_global_weights
        self.task_check_period = float(task_check_period)
        self.persist_every_n_rounds = persist_every_n_rounds
        self.snapshot_every_n_rounds = snapshot_every_n_rounds
        self.memory_gc_rounds = memory_gc_rounds
        self.enable_tensor_disk_offload = enable_tensor_disk_offload

        #: The current global model (set by :meth:`start_controller`, updated every round).
        self.global_model: FLModel | None = None
        self._aggregator: Aggregator | None = None
        self._generator: ShareableGenerator | None = None
        self._persistor: ModelPersistor | None = None
        self._best_metric: float | None = None
        self._selector = False

    # -- lifecycle ------------------------------------------------------------------

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    # Hooks a workflow built on this one (FedAvg) changes.

    def _end_round(self) -> int:
        """The round after the last one."""
        return self.num_rounds

    def _min_sites(self, ctx: ServerContext) -> int:
        """How many sites a round waits for: connected before it starts, results after."""
        return self.min_clients

    def _choose_targets(self, alive: list[str]) -> list[str]:
        """The sites a round's task goes to, of the connected ones."""
        return alive

    def _parts(self, ctx: ServerContext) -> tuple[Aggregator, ShareableGenerator]:
        """The aggregator and shareable generator the config names."""
        owner = self._owner()
        aggregator = lookup_component(ctx, owner, "aggregator_id", self.aggregator_id, Aggregator)
        generator = lookup_component(
            ctx, owner, "shareable_generator_id", self.shareable_generator_id, ShareableGenerator
        )
        return aggregator, generator

    def _find_persistor(self, ctx: ServerContext) -> ModelPersistor | None:
        """The persistor ``persistor_id`` names; None when it is empty."""
        if not self.persistor_id:
            return None
        return lookup_component(ctx, self._owner(), "persistor_id", self.persistor_id, ModelPersistor)

    def _initial_model(self, ctx: ServerContext) -> FLModel | None:
        """The first global model: the persistor's."""
        return self._persistor.load(ctx) if self._persistor is not None else None

    def _task_meta(self) -> dict[str, Any]:
        """What the train task's meta carries besides the round (FedAvg adds ``fedprox_mu``)."""
        return {}

    def _persist_now(self, current: int, aggregated: FLModel) -> bool:
        """Whether the global model of round ``current`` is saved: every
        ``persist_every_n_rounds`` rounds and after the last."""
        every = self.persist_every_n_rounds
        return current == self._end_round() - 1 or (every > 0 and (current + 1) % every == 0)

    def _save(self, model: FLModel, ctx: ServerContext) -> None:
        """Save the global model through the persistor, if there is one."""
        if self._persistor is not None:
            self._persistor.save(model, ctx)

    def _stop_after(self, current: int, aggregated: FLModel, ctx: ServerContext) -> bool:
        """Whether the run ends after round ``current`` although rounds remain (FedAvg's
        ``stop_cond``)."""
        return False

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Look up the aggregator, shareable generator and persistor; load the initial model."""
        owner = self._owner()
        self._aggregator, self._generator = self._parts(ctx)
        self._persistor = self._find_persistor(ctx)
        # A component that chooses the best model (IntimeModelSelector) replaces our own choice.
        self._selector = any(getattr(c, "SELECTS_BEST_MODEL", False) for c in ctx.components.values())
        model = self._initial_model(ctx)
        if model is not None and not isinstance(model, FLModel):
            raise JobError(
                f"{owner}: persistor '{self.persistor_id}' loaded a {type(model).__name__}, "
                "not an FLModel"
            )
        if model is None or not model.params:
            previous = ctx.props.get(GLOBAL_MODEL_PROP)
            if isinstance(previous, FLModel) and previous.params:
                model = previous
            elif self.allow_empty_global_weights:
                model = model or FLModel(params_type="FULL")
            else:
                source = (
                    f"persistor '{self.persistor_id}' gave an empty model"
                    if self._persistor is not None
                    else "there is no persistor (persistor_id is empty)"
                )
                raise JobError(
                    f"{owner}: no initial global model: {source} and no earlier workflow left "
                    "one; give the persistor a model, or set allow_empty_global_weights to "
                    "let the sites start from their own weights"
                )
        self.global_model = model
        ctx.props[GLOBAL_MODEL_PROP] = model
        ctx.fire_event(AppEventType.INITIAL_MODEL_LOADED, model)

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Leave the final model in ``ctx.props``; drop the per-run references."""
        if self.global_model is not None:
            ctx.props[GLOBAL_MODEL_PROP] = self.global_model
        self._aggregator = self._generator = self._persistor = None

    # -- rounds ---------------------------------------------------------------------

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Run the rounds; return early when ``abort_signal`` is triggered.

        Raises JobError when a round cannot complete (see the class docstring).
        """
        if self._aggregator is None or self._generator is None or self.global_model is None:
            raise JobError(f"{self._owner()}: control_flow before start_controller")
        if getattr(ctx, "comm", None) is None:
            raise JobError(f"{self._owner()}: the server has no link to the sites (ctx.comm)")
        # What lives before the first round (the modules, torch's among them, the
        # components, the sites' state) lives for the run: kept out of every collection,
        # a round's gc.collect() walks only what rounds made (at 1,024 sites a full walk
        # took 0.13-0.6 s a round). Left as found when the rounds end.
        froze = bool(self.memory_gc_rounds) and gc.get_freeze_count() == 0
        if froze:
            gc.collect()  # no garbage of the start-up is kept for the run
            gc.freeze()
        try:
            for current in range(self.start_round, self._end_round()):
                if abort_signal.triggered:
                    break
                if not self._round(current, abort_signal, ctx):
                    break
        finally:
            if froze:
                gc.unfreeze()
        if abort_signal.triggered:
            site_logger(ctx, log).info(
                "%s stopped: %s", self._owner(), abort_signal.reason or "abort signal"
            )

    def _round(self, current: int, abort_signal: Signal, ctx: ServerContext) -> bool:
        """Run round ``current``; False when the run ends with it: aborted before completing,
        or stopped early after it (:meth:`_stop_after`)."""
        assert self._aggregator is not None and self._generator is not None
        assert self.global_model is not None
        started = time.monotonic()
        label = f"round {current + 1}/{self._end_round()}"
        ctx.props[CURRENT_ROUND_PROP] = current
        ctx.fire_event(
            EventType.ROUND_STARTED, {"current_round": current, "num_rounds": self._end_round()}
        )
        self._aggregator.reset(ctx)
        data = self._generator.learnable_to_shareable(self.global_model, ctx)
        data.meta = {**data.meta, **self._task_meta(), "current_round": current,
                     "num_rounds": self._end_round()}

        targets = self._wait_for_sites(label, abort_signal, ctx)
        if targets is None:
            return False
        targets = self._choose_targets(targets)
        gathered = _Gathered(self, len(targets), ctx)
        try:
            ctx.comm.broadcast_and_wait(
                self.train_task_name,
                data,
                targets,
                min_responses=min(self._min_sites(ctx), len(targets)),
                wait_time_after_min_received=self.wait_time_after_min_received,
                timeout=self.train_timeout,
                abort=abort_signal,
                on_result=gathered.on_result,
            )
            if abort_signal.triggered:
                return False
            gathered.check_enough()
        except JobError as exc:
            # Say which round; keep the site the error names.
            raise JobError(f"{label}: {_message(exc)}", exc.site) from None

        if not self._selector:
            self._select_best(gathered, ctx)
        ctx.fire_event(
            AppEventType.BEFORE_AGGREGATION, {"current_round": current, "sites": gathered.accepted}
        )
        aggregated = self._aggregator.aggregate(ctx)
        ctx.fire_event(AppEventType.END_AGGREGATION, aggregated)
        ctx.fire_event(AppEventType.AFTER_AGGREGATION, aggregated)
        model = self._generator.shareable_to_learnable(aggregated, ctx)
        model.meta = {**model.meta, "current_round": current}
        model.meta.pop("validation_metric", None)  # describes the previous model, not this one
        self.global_model = model
        ctx.props[GLOBAL_MODEL_PROP] = model

        if self._persist_now(current, aggregated):
            self._save(model, ctx)
        ctx.fire_event(
            EventType.ROUND_DONE, {"current_round": current, "num_rounds": self._end_round()}
        )
        if self.memory_gc_rounds and (current + 1) % self.memory_gc_rounds == 0:
            gc.collect()
        elapsed = time.monotonic() - started
        ctx.progress(f"{label}: results from {_sites(gathered.accepted)} ({elapsed:.1f}s)")
        if gathered.unusable:
            first = next(iter(gathered.unusable.items()))
            ctx.progress(
                f"{label}: {len(gathered.unusable)} result(s) not used: "
                f"{_sites(list(gathered.unusable))} (e.g. {first[0]}: {first[1]})"
            )
        return not self._stop_after(current, aggregated, ctx)

    def _wait_for_sites(
        self, label: str, abort_signal: Signal, ctx: ServerContext
    ) -> list[str] | None:
        """The connected sites once there are ``min_clients``; None if aborted first."""
        deadline = time.monotonic() + SITE_WAIT_S
        while True:
            alive = ctx.comm.alive_sites()
            if len(alive) >= self._min_sites(ctx):
                return alive
            if abort_signal.triggered:
                return None
            if time.monotonic() >= deadline:
                raise JobError(
                    f"{label}: min_clients is {self._min_sites(ctx)} but only {len(alive)} site(s) "
                    f"are connected after {SITE_WAIT_S:g} s ({', '.join(alive) or 'none'}); "
                    "lower min_clients or start more sites"
                )
            abort_signal.wait(0.1)

    def _select_best(self, gathered: _Gathered, ctx: ServerContext) -> None:
        """Announce the global model sent this round if its validation beats every earlier one."""
        assert self.global_model is not None
        metric = gathered.validation_metric()
        if metric is None or not self.global_model.params:
            return
        if self._best_metric is not None and metric <= self._best_metric:
            return
        self._best_metric = metric
        best = FLModel(
            params=self.global_model.params,
            meta={**self.global_model.meta, "validation_metric": metric},
            metrics=dict(self.global_model.metrics),
            params_type=self.global_model.params_type,
        )
        site_logger(ctx, log).info("new best global model: validation metric %.4g", metric)
        ctx.fire_event(AppEventType.GLOBAL_BEST_MODEL_AVAILABLE, best)


def _sites(names: list[str], limit: int = 8) -> str:
    names = sorted(names, key=lambda n: (len(n), n))
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


class _Gathered:
    """The results of one round as they arrive: accepted, failed or refused."""

    def __init__(self, workflow: ScatterAndGather, targets: int, ctx: ServerContext):
        self.workflow = workflow
        self.targets = targets
        self.ctx = ctx
        self.accepted: list[str] = []
        #: site -> why its result is not used (failed, or refused by the aggregator).
        self.unusable: dict[str, str] = {}
        self._initial: list[tuple[float, float]] = []  # (initial_metrics, weight)

    def on_result(self, site: str, result: FLModel) -> None:
        wf, ctx = self.workflow, self.ctx
        assert wf._aggregator is not None
        if result.rc != ReturnCode.OK:
            error = f"{result.rc}: {result.meta.get('error') or 'no message'}"
            self.unusable[site] = error
            if wf.ignore_result_error is False:
                raise JobError(f"task '{wf.train_task_name}' failed: {error}", site)
            if wf.ignore_result_error is None:
                self._check_reachable()
            site_logger(ctx, log).warning("ignoring the failed result of site %s (%s)", site, error)
            return
        ctx.fire_event(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, {"site": site, "result": result})
        accepted = wf._aggregator.accept(site, result, ctx)
        ctx.fire_event(
            AppEventType.AFTER_CONTRIBUTION_ACCEPT,
            {"site": site, "result": result, "accepted": accepted},
        )
        if accepted:
            self.accepted.append(site)
            initial = result.meta.get("initial_metrics")
            if _is_number(initial):
                steps = result.meta.get("NUM_STEPS_CURRENT_ROUND")
                self._initial.append((float(initial), float(steps) if _is_number(steps) else 1.0))
        else:
            reasons = getattr(wf._aggregator, "rejections", {})
            self.unusable[site] = f"refused by the aggregator: {reasons.get(site, 'see the log')}"
            if wf.ignore_result_error is None:
                self._check_reachable()

    def _check_reachable(self) -> None:
        """In dynamic mode: stop as soon as ``min_clients`` good results are out of reach."""
        need = self.workflow.min_clients
        if self.targets - len(self.unusable) < need:
            raise self._error(f"min_clients ({need}) can no longer be reached")

    def check_enough(self) -> None:
        """After the wait: enough good results to aggregate?"""
        need = self.workflow.min_clients
        got = len(self.accepted)
        if got >= need or (got > 0 and self.workflow.ignore_result_error is True):
            if got < need:
                site_logger(self.ctx, log).warning(
                    "aggregating %d result(s), fewer than min_clients=%d", got, need
                )
            return
        timeout = self.workflow.train_timeout
        why = f"only {got} usable result(s) of the {need} needed (min_clients)"
        if timeout:
            why += f" within train_timeout={timeout} s"
        raise self._error(why)

    def _error(self, why: str) -> JobError:
        failures = "; ".join(f"{site}: {error}" for site, error in self.unusable.items())
        err = JobError(why + (f"; unusable results: {failures}" if failures else ""))
        if len(self.unusable) == 1:
            err.site = next(iter(self.unusable))
        return err

    def validation_metric(self) -> float | None:
        """Weighted mean of the sites' ``initial_metrics``: how well the sent model validated."""
        total = sum(weight for _, weight in self._initial)
        if not self._initial or total <= 0:
            return None
        return sum(value * weight for value, weight in self._initial) / total


def _is_number(value: Any) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def _message(exc: JobError) -> str:
    """A JobError's message without the ``site:`` prefix JobError adds."""
    text = str(exc)
    prefix = f"{exc.site}: " if exc.site else ""
    return text[len(prefix) :] if prefix and text.startswith(prefix) else text

