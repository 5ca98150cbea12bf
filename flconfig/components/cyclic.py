"""Cyclic weight transfer: the model goes from site to site (FLARE's CyclicController and Cyclic).

Each round sends the global model to one site, takes its result as the new model,
sends that to the next site, and so on through the sites; the model after the last
site of the round is the round's global model. ``CyclicController`` (FLARE's
classic workflow) builds task data with a shareable generator and relays in
``order``; ``Cyclic`` (FLARE 2.5's ModelController) needs neither and relays through
``num_clients`` sites.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import gc
import logging
import random
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..types import EventType, FLModel, ReturnCode, Signal
from .base import AppEventType, Controller, ModelPersistor, ShareableGenerator, lookup_component
from .scatter_and_gather import GLOBAL_MODEL_PROP, SITE_WAIT_S
from .shareable_generators import FullModelShareableGenerator

if TYPE_CHECKING:
    from ..types import ServerContext

log = logging.getLogger(__name__)

#: A result code a site may send to end a cyclic workflow early (FLARE's name).
EARLY_TERMINATION = "EARLY_TERMINATION"


class _Relay(Controller):
    """What both cyclic workflows share: the model, the persistor, the relay of one round."""

    task_name: str = "train"
    persistor_id: str = "persistor"
    allow_early_termination: bool = False
    allow_empty_global_weights: bool = False
    global_model: FLModel
    _persistor: ModelPersistor | None = None
    _generator: ShareableGenerator

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    def _generator_of(self, ctx: ServerContext) -> ShareableGenerator:
        return FullModelShareableGenerator()

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Look up the persistor (and generator); load the initial model (an earlier
        workflow's, e.g. InitializeGlobalWeights', when the persistor gives none)."""
        owner = self._owner()
        self._persistor = (lookup_component(ctx, owner, "persistor_id", self.persistor_id, ModelPersistor)
                           if self.persistor_id else None)
        self._generator = self._generator_of(ctx)
        model = self._persistor.load(ctx) if self._persistor is not None else None
        if model is None or not model.params:
            previous = ctx.props.get(GLOBAL_MODEL_PROP)
            if isinstance(previous, FLModel) and previous.params:
                model = previous
            elif not self.allow_empty_global_weights:
                raise JobError(f"{owner}: no initial global model: the persistor gave none and no "
                               "earlier workflow left one")
        self.global_model = model or FLModel(params_type="FULL")
        ctx.props[GLOBAL_MODEL_PROP] = self.global_model
        ctx.fire_event(AppEventType.INITIAL_MODEL_LOADED, self.global_model)

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Save the final model."""
        model = getattr(self, "global_model", None)
        if self._persistor is not None and isinstance(model, FLModel) and model.params:
            self._persistor.save(model, ctx)
            ctx.props[GLOBAL_MODEL_PROP] = model

    def _alive(self, abort_signal: Signal, ctx: ServerContext, wanted: int) -> list[str] | None:
        """The connected client sites, once ``wanted`` are; None if aborted first."""
        deadline = time.monotonic() + SITE_WAIT_S
        while True:
            alive = ctx.comm.alive_sites()
            order = [s for s in ctx.client_sites if s in alive] + [s for s in alive if s not in ctx.client_sites]
            if len(order) >= wanted:
                return order
            if abort_signal.triggered:
                return None
            if time.monotonic() >= deadline:
                raise JobError(f"{self._owner()}: needs {wanted} connected sites, has {len(order)} "
                               f"after {SITE_WAIT_S:g} s ({', '.join(order) or 'none'})")
            abort_signal.wait(0.1)

    def _relay(self, current: int, end: int, targets: list[str], abort_signal: Signal,
               ctx: ServerContext) -> bool:
        """One round through ``targets``; False when it ended the workflow (aborted, or a
        site asked to stop early)."""
        started = time.monotonic()
        label = f"round {current + 1}/{end}"
        ctx.props["current_round"] = current
        ctx.fire_event(EventType.ROUND_STARTED, {"current_round": current, "num_rounds": end})
        for site in targets:
            if abort_signal.triggered:
                return False
            data = self._generator.learnable_to_shareable(self.global_model, ctx)
            data.meta = {**data.meta, "current_round": current, "num_rounds": end}
            result = ctx.comm.send_and_wait(self.task_name, data, site)
            if result.rc == EARLY_TERMINATION and self.allow_early_termination:
                ctx.progress(f"{label}: {site} ended the workflow early")
                return False
            if result.rc != ReturnCode.OK or not result.params:
                error = result.meta.get("error") if isinstance(result.meta, dict) else None
                raise JobError(f"{label}: the result of {site} cannot go on to the next site: "
                               + (f"{result.rc} ({error})" if error else
                                  f"return code {result.rc}" if result.rc != ReturnCode.OK else "no params"),
                               site)
            model = self._generator.shareable_to_learnable(result, ctx)
            model.meta = {**model.meta, "current_round": current}
            self.global_model = model
            ctx.props[GLOBAL_MODEL_PROP] = model
        ctx.fire_event(EventType.ROUND_DONE, {"current_round": current, "num_rounds": end})
        ctx.progress(f"{label}: relayed through {' → '.join(targets)} ({time.monotonic() - started:.1f}s)")
        gc.collect()
        return True


class CyclicController(_Relay):
    """FLARE's ``CyclicController``: each round relays the model through the sites in
    ``order`` (``FIXED``, ``RANDOM``, ``RANDOM_WITHOUT_SAME_IN_A_ROW`` or a list of site
    names), the task data made by ``shareable_generator_id``; saves the model every
    ``persist_every_n_rounds`` rounds and at the end. Needs at least two sites."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "num_rounds": {"minimum": 0},
        "task_assignment_timeout": {"minimum": 0},
        "persistor_id": {"minLength": 1},
        "shareable_generator_id": {"minLength": 1},
        "task_name": {"minLength": 1},
        "task_check_period": {"exclusiveMinimum": 0},
        "persist_every_n_rounds": {"minimum": 0},
        "snapshot_every_n_rounds": {"minimum": 0},
        "order": {"anyOf": [{"enum": ["FIXED", "RANDOM", "RANDOM_WITHOUT_SAME_IN_A_ROW"]},
                            {"type": "array", "minItems": 2,
                             "items": {"type": "string", "minLength": 1}}]},
    }

    def __init__(
        self,
        num_rounds: int = 5,
        task_assignment_timeout: int = 10,
        persistor_id: str = "persistor",
        shareable_generator_id: str = "shareable_generator",
        task_name: str = "train",
        task_check_period: float = 0.5,
        persist_every_n_rounds: int = 1,
        snapshot_every_n_rounds: int = 1,
        order: str | list[str] = "FIXED",
        allow_early_termination: bool = False,
    ) -> None:
        """
        Args:
            num_rounds: rounds to run; each goes through every site once.
            task_assignment_timeout: accepted (a lost site fails the round at once).
            persistor_id: id of the persistor that loads and saves the model.
            shareable_generator_id: id of the shareable generator that makes the task data.
            task_name: the task sent to each site.
            task_check_period: accepted.
            persist_every_n_rounds: save the model every this many rounds (0: at the end only).
            snapshot_every_n_rounds: accepted.
            order: ``FIXED`` (the sites' order), ``RANDOM`` (shuffled every round),
                ``RANDOM_WITHOUT_SAME_IN_A_ROW`` (shuffled, no site twice in a row across
                rounds) or a list of site names.
            allow_early_termination: a site's ``EARLY_TERMINATION`` result ends the workflow.
        """
        self.num_rounds = num_rounds
        self.task_assignment_timeout = task_assignment_timeout
        self.persistor_id = persistor_id
        self.shareable_generator_id = shareable_generator_id
        self.task_name = task_name
        self.task_check_period = task_check_period
        self.persist_every_n_rounds = persist_every_n_rounds
        self.snapshot_every_n_rounds = snapshot_every_n_rounds
        self.order = order
        self.allow_early_termination = allow_early_termination
        self._last: str | None = None

    def _generator_of(self, ctx: ServerContext) -> ShareableGenerator:
        return lookup_component(ctx, self._owner(), "shareable_generator_id",
                                self.shareable_generator_id, ShareableGenerator)

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Relay the model through the sites, round after round."""
        for current in range(self.num_rounds):
            alive = self._alive(abort_signal, ctx, 2)
            if alive is None:
                return
            targets = self._targets(alive)
            if not self._relay(current, self.num_rounds, targets, abort_signal, ctx):
                return
            every = self.persist_every_n_rounds
            if self._persistor is not None and every and (current + 1) % every == 0:
                self._persistor.save(self.global_model, ctx)

    def _targets(self, alive: list[str]) -> list[str]:
        if isinstance(self.order, list):
            missing = [s for s in self.order if s not in alive]
            if missing:
                raise JobError(f"{self._owner()}: site(s) {', '.join(missing)} of order are not connected")
            targets = list(self.order)
        else:
            targets = list(alive)
            if self.order != "FIXED":
                random.shuffle(targets)
                if self.order == "RANDOM_WITHOUT_SAME_IN_A_ROW" and targets[0] == self._last:
                    targets.append(targets.pop(0))
        self._last = targets[-1]
        return targets


class Cyclic(_Relay):
    """FLARE 2.5's ``Cyclic`` (a ModelController): each round relays the model through
    ``num_clients`` sites (all when there are no more; a random pick when there are),
    saving it after every round."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "num_clients": {"minimum": 1},
        "num_rounds": {"minimum": 0},
        "start_round": {"minimum": 0},
        "persistor_id": {"minLength": 1},
        "task_check_period": {"exclusiveMinimum": 0},
    }

    def __init__(
        self,
        num_clients: int = 2,
        num_rounds: int = 5,
        start_round: int = 0,
        persistor_id: str = "persistor",
        ignore_result_error: bool | None = None,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
    ) -> None:
        """
        Args:
            num_clients: sites the model goes through each round.
            num_rounds: rounds to run, from ``start_round``.
            start_round: the first round's number.
            persistor_id: id of the persistor that loads and saves the model.
            ignore_result_error: accepted (a failed site result stops the relay: there is
                no model to pass on).
            allow_empty_global_weights: start even when the persistor gives no weights.
            task_check_period: accepted.
        """
        self.num_clients = num_clients
        self.num_rounds = num_rounds
        self.start_round = start_round
        self.persistor_id = persistor_id
        self.ignore_result_error = ignore_result_error
        self.allow_empty_global_weights = allow_empty_global_weights
        self.task_check_period = task_check_period

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Relay through ``num_clients`` sites a round; save after each round."""
        end = self.start_round + self.num_rounds
        for current in range(self.start_round, end):
            wanted = min(self.num_clients, len(ctx.client_sites) or self.num_clients)
            alive = self._alive(abort_signal, ctx, wanted)
            if alive is None:
                return
            targets = alive if len(alive) <= self.num_clients else random.sample(alive, self.num_clients)
            if not self._relay(current, end, targets, abort_signal, ctx):
                return
            if self._persistor is not None:
                self._persistor.save(self.global_model, ctx)
