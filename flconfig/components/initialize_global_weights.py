"""InitializeGlobalWeights: the global model's first weights come from a site (FLARE's workflow).

FLARE's jobs put it before ScatterAndGather when the server cannot build the model
itself: the sites get a ``get_weights`` task and the weights of the first one to
answer (``weight_method = "first"``), or of the site ``weights_client_name`` names
(``"client"``), become the global model that the next workflow starts from (its
persistor then gives none of its own).

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ..errors import JobError
from ..types import FLModel, ReturnCode, Signal
from .base import AppEventType, Controller
from .scatter_and_gather import GLOBAL_MODEL_PROP, SITE_WAIT_S

if TYPE_CHECKING:
    from ..types import ServerContext

log = logging.getLogger(__name__)


class InitializeGlobalWeights(Controller):
    """FLARE's ``InitializeGlobalWeights``: one round of ``task_name`` whose result (weights)
    starts the global model of the workflows after it."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "task_name": {"minLength": 1},
        "min_responses_required": {"minimum": 0},
        "wait_time_after_min_received": {"minimum": 0},
        "task_timeout": {"minimum": 0},
        "weights_prop_name": {"minLength": 1},
        "weight_method": {"enum": ["first", "client"]},
        "weights_client_name": {"anyOf": [{"type": "null"}, {"type": "string", "minLength": 1},
                                          {"type": "array", "minItems": 1,
                                           "items": {"type": "string", "minLength": 1}}]},
    }

    def __init__(
        self,
        task_name: str = "get_weights",
        min_responses_required: int = 0,
        wait_time_after_min_received: float = 0,
        task_timeout: float = 0,
        weights_prop_name: str = "global_model",
        weight_method: str = "first",
        weights_client_name: str | list[str] | None = None,
    ) -> None:
        """
        Args:
            task_name: the task that asks the sites for their weights.
            min_responses_required: results to wait for (0: every site asked).
            wait_time_after_min_received: seconds to wait for more after that many.
            task_timeout: seconds the task may take (0: no limit).
            weights_prop_name: accepted (flconfig hands the weights to the next workflow).
            weight_method: ``first``: the first site's weights; ``client``: those of
                ``weights_client_name``.
            weights_client_name: the site(s) asked (None: every site); with ``client``, the
                one whose weights are taken.
        """
        if weight_method == "client" and not isinstance(weights_client_name, str):
            raise ValueError("weight_method 'client' needs weights_client_name: the site whose "
                             "weights start the global model")
        self.task_name = task_name
        self.min_responses_required = min_responses_required
        self.wait_time_after_min_received = wait_time_after_min_received
        self.task_timeout = task_timeout
        self.weights_prop_name = weights_prop_name
        self.weight_method = weight_method
        self.weights_client_name = weights_client_name

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Nothing to look up."""

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Nothing to release."""

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """Ask the sites for their weights; the chosen ones become the global model."""
        targets = self._targets(abort_signal, ctx)
        if targets is None:
            return
        arrived: list[tuple[str, FLModel]] = []
        ctx.comm.broadcast_and_wait(
            self.task_name, FLModel(), targets,
            min_responses=min(self.min_responses_required, len(targets)),
            wait_time_after_min_received=self.wait_time_after_min_received,
            timeout=self.task_timeout, abort=abort_signal,
            on_result=lambda site, result: arrived.append((site, result)),
        )
        if abort_signal.triggered:
            return
        usable = [(site, r) for site, r in arrived if r.rc == ReturnCode.OK and r.params]
        if self.weight_method == "client":
            usable = [(site, r) for site, r in usable if site == self.weights_client_name]
        if not usable:
            said = "; ".join(f"{site}: {r.rc} {r.meta.get('error', '')}".strip() for site, r in arrived)
            raise JobError(f"{self._owner()}: no site sent weights for task '{self.task_name}'"
                           + (f" ({said})" if said else ""))
        site, result = usable[0]
        model = FLModel(params=dict(result.params), params_type="FULL",
                        meta={"source": f"{self.task_name} from {site}"})
        ctx.props[GLOBAL_MODEL_PROP] = model
        ctx.fire_event(AppEventType.INITIAL_MODEL_LOADED, model)
        ctx.progress(f"{self._owner()}: the global model starts from the weights of {site}")

    def _targets(self, abort_signal: Signal, ctx: ServerContext) -> list[str] | None:
        """The sites to ask, once connected; None if aborted first."""
        named = self.weights_client_name
        wanted = ([named] if isinstance(named, str) else list(named) if named
                  else list(getattr(ctx, "client_sites", ()) or ()))
        deadline = time.monotonic() + SITE_WAIT_S
        while True:
            alive = ctx.comm.alive_sites()
            ready = [s for s in wanted if s in alive] if wanted else alive
            if ready and len(ready) == len(wanted or ready):
                return ready
            if abort_signal.triggered:
                return None
            if time.monotonic() >= deadline:
                missing = [s for s in wanted if s not in alive]
                raise JobError(f"{self._owner()}: site(s) {', '.join(missing) or 'any'} not "
                               f"connected after {SITE_WAIT_S:g} s")
            abort_signal.wait(0.1)
