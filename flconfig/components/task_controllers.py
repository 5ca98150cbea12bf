"""Workflows that send one task once: FLARE 2.9's ``CmdTaskController`` (``FedTaskRecipe``) and
``EvalController`` (``FedEvalRecipe``, defined in ``nvflare.app_opt.pt.recipes.fedeval``).

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..types import FLModel, ReturnCode, Signal
from .base import Controller, ModelPersistor, lookup_component

if TYPE_CHECKING:
    from ..types import ServerContext

log = logging.getLogger(__name__)

#: How long a workflow waits for the sites it needs to connect.
SITE_WAIT_S = 60.0


def wait_for_sites(owner: str, need: int, abort_signal: Signal, ctx: ServerContext) -> list[str] | None:
    """The connected sites once ``need`` are; None when aborted first; JobError after a minute."""
    deadline = time.monotonic() + SITE_WAIT_S
    while True:
        alive = list(ctx.comm.alive_sites())
        if len(alive) >= need:
            return alive
        if abort_signal.triggered:
            return None
        if time.monotonic() >= deadline:
            raise JobError(f"{owner}: {need} site(s) needed but only {len(alive)} connected after "
                           f"{SITE_WAIT_S:g} s ({', '.join(alive) or 'none'})")
        abort_signal.wait(0.1)


def _checked(owner: str, task: str, results: dict[str, FLModel], targets: list[str], need: int) -> dict[str, FLModel]:
    """The good results; JobError when fewer than ``need`` sites answered well (FLARE's dynamic
    mode: a failed site is ignored while enough good results can still be had)."""
    good = {site: r for site, r in results.items() if r.rc == ReturnCode.OK}
    if len(good) >= need:
        for site, result in results.items():
            if result.rc != ReturnCode.OK:
                log.warning("%s: ignoring the failed result of site %s for task '%s' (%s)", owner, site, task,
                            result.meta.get("error") or result.rc)
        return good
    failed = [f"{site}: {r.rc} ({r.meta.get('error') or 'no message'})" for site, r in results.items()
              if r.rc != ReturnCode.OK]
    missing = [site for site in targets if site not in results]
    why = "; ".join(failed + [f"{site}: no result" for site in missing])
    raise JobError(f"{owner}: task '{task}' needs {need} good result(s), got {len(good)}" + (f": {why}" if why else ""))


class CmdTaskController(Controller):
    """Sends one task, once, to ``num_clients`` sites and waits for their results (FLARE
    2.9's ``CmdTaskController``, the workflow of ``FedTaskRecipe``).

    The task's data is ``task_data`` (``{"task_name": task_name}`` when not given) and its
    meta ``task_meta`` (``{"status": "request"}``), with ``current_round`` 0 and
    ``total_rounds`` 1, as a Client API script receives them. It waits for
    ``min_responses`` results (all the sites when None), up to ``timeout`` seconds (0: no
    limit); a failed site is ignored while enough good results can still come.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "task_name": {"minLength": 1},
        "task_data": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        "task_meta": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        "num_clients": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
        "min_responses": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 0}]},
        "timeout": {"minimum": 0},
    }
    #: ``persistor_id`` is FLARE's ModelController argument; this workflow uses no model.
    REFERENCES: ClassVar[dict[str, str]] = {"persistor_id": ""}

    def __init__(
        self,
        task_name: str = "cmd_task",
        task_data: dict[str, Any] | None = None,
        task_meta: dict[str, Any] | None = None,
        num_clients: int | None = None,
        min_responses: int | None = None,
        timeout: int = 0,
        persistor_id: str = "persistor",
    ) -> None:
        """
        Args:
            task_name: the task sent (the Client API script's task).
            task_data: the task's data (the FLModel's params).
            task_meta: the task's meta.
            num_clients: sites the task goes to, sampled at random when more are connected
                (None: all of the run's sites).
            min_responses: good results needed (None: every site's).
            timeout: seconds to wait for the results; 0 for no limit.
            persistor_id: FLARE's ModelController argument (accepted; no model is loaded).
        """
        self.task_name = task_name
        self.task_data = task_data if task_data is not None else {"task_name": task_name}
        self.task_meta = task_meta if task_meta is not None else {"status": "request"}
        self.num_clients = num_clients
        self.min_responses = min_responses
        self.timeout = timeout
        self.persistor_id = persistor_id
        #: The good results of the task, by site (after ``control_flow``).
        self.results: dict[str, FLModel] = {}

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Nothing to prepare."""

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Send the task once and gather the results."""
        import random

        sites = len(ctx.client_sites) or 1
        wanted = min(self.num_clients or sites, sites)
        alive = wait_for_sites(self._owner(), wanted, abort_signal, ctx)
        if alive is None:
            return
        targets = sorted(random.sample(alive, wanted)) if len(alive) > wanted else sorted(alive)
        need = self.min_responses or len(targets)  # FLARE: 0 or None waits for every site
        if need > len(targets):
            raise JobError(f"{self._owner()}: min_responses={need} exceeds the {len(targets)} site(s) the task "
                           "goes to; lower min_responses or raise num_clients")
        data = FLModel(params=dict(self.task_data),
                       meta={**self.task_meta, "current_round": 0, "total_rounds": 1, "num_rounds": 1})
        started = time.monotonic()
        results = ctx.comm.broadcast_and_wait(self.task_name, data, targets, min_responses=need,
                                              timeout=self.timeout, abort=abort_signal)
        if abort_signal.triggered:
            return
        self.results = _checked(self._owner(), self.task_name, results, targets, need)
        ctx.progress(f"task '{self.task_name}': results from {', '.join(sorted(self.results))} "
                     f"({time.monotonic() - started:.1f}s)")

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Nothing to release."""


class EvalController(Controller):
    """Sends the persistor's model to every site once as a ``validate`` task and reports
    each site's metrics (the workflow of FLARE 2.9's ``FedEvalRecipe``).

    The model is the persistor's initial model (``persistor_id``; for a recipe, the
    checkpoint it evaluates). Each site's metrics are logged and printed as a progress line;
    a failed site is ignored while another answered.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"persistor_id": {"minLength": 1}, "timeout": {"minimum": 0}}

    def __init__(self, persistor_id: str, timeout: int) -> None:
        """
        Args:
            persistor_id: id of the persistor whose model is evaluated.
            timeout: seconds the sites have to answer; 0 for no limit.
        """
        self.persistor_id = persistor_id
        self.timeout = timeout
        #: Each site's validation metrics (after ``control_flow``).
        self.metrics: dict[str, dict[str, Any]] = {}
        self._persistor: ModelPersistor | None = None

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Look up the persistor."""
        self._persistor = lookup_component(ctx, self._owner(), "persistor_id", self.persistor_id, ModelPersistor)

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Load the model, send it to every connected site as ``validate``, report the metrics."""
        assert self._persistor is not None
        model = self._persistor.load(ctx)
        if not isinstance(model, FLModel) or not model.params:
            raise JobError(f"{self._owner()}: persistor '{self.persistor_id}' gave no model to evaluate")
        sites = len(ctx.client_sites) or 1
        alive = wait_for_sites(self._owner(), sites, abort_signal, ctx)
        if alive is None:
            return
        data = FLModel(params=model.params, params_type=model.params_type,
                       meta={**model.meta, "current_round": 0, "total_rounds": 1, "num_rounds": 1})
        results = ctx.comm.broadcast_and_wait("validate", data, alive, min_responses=0, timeout=self.timeout,
                                              abort=abort_signal)
        if abort_signal.triggered:
            return
        good = _checked(self._owner(), "validate", results, alive, 1)
        for site in sorted(good):
            self.metrics[site] = dict(good[site].metrics)
            shown = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                              for k, v in sorted(good[site].metrics.items()))
            ctx.progress(f"evaluation of site {site}: {shown or 'no metrics'}")

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Drop the persistor reference."""
        self._persistor = None
