"""FLARE's ``BaseModelController``: a server workflow of the job's code, written on FLModels.

The job's class subclasses :class:`~.model_controller.ModelController` (or
:class:`~.base_fedavg.BaseFedAvg`) and writes ``run()``; flconfig's server runs it as a
workflow: ``send_model_and_wait`` sends a task to the sites over flconfig's link and
returns their results as FLARE FLModels, ``load_model``/``save_model`` go through the
job's persistor, and the events flconfig's components listen to (round started, each
result, aggregation) are fired as the built-in workflows fire them, so
IntimeModelSelector, the persistors and the receivers work as with FedAvg.
"""

from __future__ import annotations

import random
import time
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from flconfig.errors import JobError
from flconfig.interfaces import GLOBAL_MODEL_PROP, Controller
from flconfig.types import EventType, ReturnCode
from flconfig.types import FLModel as OurModel

from ....shareables import flare_context
from ...apis.fl_constant import FLMetaKey
from ..abstract.fl_model import FLModel, ParamsType
from ..app_event_type import AppEventType
from ..utils.fl_component_wrapper import FLComponentWrapper


class BaseModelController(FLComponentWrapper, Controller, ABC):
    """FLARE's FLModel-based controller on flconfig's server (see the module)."""

    def __init__(
        self,
        persistor_id: str = "persistor",
        ignore_result_error: bool = False,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
    ) -> None:
        """
        Args:
            persistor_id: id of the persistor that loads and saves the global model ("" for none).
            ignore_result_error: go on when a site's result is an error (it is left out).
            allow_empty_global_weights: let ``load_model`` return a model without params.
            task_check_period: accepted for FLARE's configs (flconfig's link is event-driven).
        """
        FLComponentWrapper.__init__(self)
        if not isinstance(persistor_id, str):
            raise TypeError(f"persistor_id must be a str but got {type(persistor_id).__name__}")
        self._persistor_id = persistor_id
        self._ignore_result_error = ignore_result_error
        self._allow_empty_global_weights = allow_empty_global_weights
        self._task_check_period = task_check_period
        self.persistor: Any = None
        self._ctx: Any = None
        self._round_started: Any = None

    def handle_event(self, event_type: str, fl_ctx: Any) -> None:  # type: ignore[override]
        """Every event of the server, by FLARE's name (a subclass may react to them)."""

    # -- flconfig's workflow interface ---------------------------------------------------

    def start_controller(self, ctx: Any) -> None:  # type: ignore[override]
        """Set up the FLARE context and look up the persistor."""

        self._ctx = ctx
        self.fl_ctx = flare_context(ctx)
        self.engine = self.fl_ctx.get_engine()
        self.workspace = self.engine.get_workspace()
        self.site_name, self.job_id = ctx.site_name, ctx.job_id
        self.persistor = ctx.get_component(self._persistor_id) if self._persistor_id else None
        if self._persistor_id and self.persistor is None:
            raise JobError(f"{self._owner()}: persistor_id '{self._persistor_id}' names no component")
        self.initialize(self.fl_ctx)

    def initialize(self, fl_ctx: Any = None) -> None:  # type: ignore[override]
        """Called when the workflow starts (a subclass prepares its state here)."""

    def control_flow(self, abort_signal: Any, ctx: Any) -> None:  # type: ignore[override]
        """Run the job's ``run()``."""
        self.abort_signal = abort_signal
        self.run()

    def stop_controller(self, ctx: Any) -> None:  # type: ignore[override]
        """Nothing to release."""

    @abstractmethod
    def run(self) -> None:
        """The workflow: the job's code."""

    # -- what run() calls ------------------------------------------------------------------

    def broadcast_model(
        self,
        task_name: str = "train",
        data: FLModel | None = None,
        targets: list[str] | None = None,
        min_responses: int | None = None,
        timeout: int = 0,
        wait_time_after_min_received: int = 0,
        blocking: bool = True,
        callback: Callable[[FLModel], None] | None = None,
    ) -> list[FLModel]:
        """Send ``task_name`` with ``data`` to ``targets`` (all sites for None) and return
        the results of ``min_responses`` of them (all for None), as FLARE FLModels with
        ``meta["client_name"]``. Non-blocking calls run ``callback`` on each result and
        return once the task is done as well: flconfig's workflow thread waits either way."""
        ctx = self._ctx
        if ctx is None:
            raise JobError(f"{type(self).__name__}: send_model called outside the run")
        if data is not None and not isinstance(data, FLModel):
            raise TypeError(f"data must be an FLModel but got {type(data).__name__}")
        data = data if data is not None else FLModel(params={})
        names = [getattr(t, "name", t) for t in targets] if targets is not None else None
        sites = names if names is not None else self._alive()
        current = data.current_round
        if current is not None and current != self._round_started:
            self._round_started = current
            ctx.props["current_round"] = current
            ctx.fire_event(EventType.ROUND_STARTED, {"current_round": current, "num_rounds": data.total_rounds})
        task = _ours(data)
        ctx.props[GLOBAL_MODEL_PROP] = OurModel(params=dict(task.params), meta=dict(task.meta),
                                                params_type=task.params_type)
        results: list[FLModel] = []
        refused: dict[str, str] = {}

        def on_result(site: str, result: OurModel) -> None:
            if result.rc != ReturnCode.OK:
                error = f"{result.rc}: {result.meta.get('error') or 'no message'}"
                if not self._ignore_result_error:
                    raise JobError(f"task '{task_name}' failed: {error}", site)
                refused[site] = error
                self.warning(f"ignoring the failed result of {site} ({error})")
                return
            ctx.fire_event(AppEventType.BEFORE_CONTRIBUTION_ACCEPT, {"site": site, "result": result})
            theirs = _theirs(result, site, current)
            results.append(theirs)
            ctx.fire_event(AppEventType.AFTER_CONTRIBUTION_ACCEPT, {"site": site, "result": result, "accepted": True})
            if callback is not None:
                callback(theirs)

        started = time.monotonic()
        need = len(sites) if min_responses is None or min_responses <= 0 else min(min_responses, len(sites))
        ctx.comm.broadcast_and_wait(task_name, task, sites, min_responses=need,
                                    wait_time_after_min_received=wait_time_after_min_received,
                                    timeout=timeout, abort=self.abort_signal, on_result=on_result)
        label = f"round {current + 1}" + (f"/{data.total_rounds}" if data.total_rounds else "") if current is not None else f"task {task_name}"
        names = sorted(r.meta["client_name"] for r in results)
        ctx.progress(f"{label}: results from {', '.join(names) or 'no site'} ({time.monotonic() - started:.1f}s)")
        return results

    def load_model(self) -> FLModel:
        """The initial global model from the persistor (empty without one)."""
        ours = self.persistor.load(self._ctx) if self.persistor is not None else None
        if ours is None or not ours.params:
            previous = self._ctx.props.get(GLOBAL_MODEL_PROP)
            if isinstance(previous, OurModel) and previous.params:
                ours = previous
            elif not self._allow_empty_global_weights:
                raise JobError(f"{self._owner()}: no initial global model: the persistor gave none "
                               "(set allow_empty_global_weights to start from the sites' weights)")
        model = FLModel(params_type=ParamsType.FULL, params=dict(ours.params) if ours is not None else {},
                        meta=dict(ours.meta) if ours is not None else {})
        self._ctx.fire_event(AppEventType.INITIAL_MODEL_LOADED, _ours(model))
        return model

    def save_model(self, model: FLModel) -> None:
        """Save ``model`` through the persistor (nothing without one)."""
        if self.persistor is None:
            return
        if model.params or not self._allow_empty_global_weights:
            ours = _ours(model)
            self.persistor.save(ours, self._ctx)
            self._ctx.props[GLOBAL_MODEL_PROP] = ours

    def sample_clients(self, num_clients: int | None = None) -> list[str]:
        """``num_clients`` of the connected sites, drawn at random (all of them for None
        or more than there are)."""
        sites = self._alive()
        if num_clients is None or num_clients >= len(sites):
            if num_clients is not None and num_clients > len(sites):
                self.warning(f"num_clients {num_clients} is more than the {len(sites)} sites connected")
            return sites
        return random.sample(sites, num_clients)

    def event(self, event_type: str, data: Any = None) -> None:
        """Fire ``event_type`` on the server."""
        self._ctx.fire_event(event_type, data)

    def panic(self, reason: str) -> None:
        """Stop the job with ``reason``."""
        raise JobError(f"{self._owner()}: {reason}")

    def get_run_dir(self) -> str:
        return str(self._ctx.run_dir)

    def get_app_dir(self) -> str:
        return self.workspace.get_app_dir()

    def _alive(self) -> list[str]:
        ctx = self._ctx
        alive = ctx.comm.alive_sites()
        return [s for s in ctx.client_sites if s in alive] + [s for s in alive if s not in ctx.client_sites]

    def _owner(self) -> str:
        return f"workflow {getattr(self, 'id', None) or type(self).__name__}"


def _ours(model: FLModel) -> OurModel:
    """A FLARE FLModel as the task data flconfig sends."""
    meta = dict(model.meta or {})
    if model.current_round is not None:
        meta["current_round"] = model.current_round
    if model.total_rounds is not None:
        meta["num_rounds"] = model.total_rounds
    params_type = model.params_type.value if model.params_type is not None else "FULL"
    return OurModel(params=dict(model.params or {}), meta=meta, params_type=params_type)


def _theirs(result: OurModel, site: str, current: int | None) -> FLModel:
    """A site's result as FLARE hands it to ``run()``."""
    meta = {**result.meta, "client_name": site}
    meta.setdefault(FLMetaKey.NUM_STEPS_CURRENT_ROUND, 1)
    return FLModel(params_type=result.params_type if result.params else None,
                   params=dict(result.params) if result.params else None,
                   metrics=dict(result.metrics) if result.metrics else None,
                   current_round=meta.get("current_round", current), meta=meta)
