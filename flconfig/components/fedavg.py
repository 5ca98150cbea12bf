"""FedAvg: FLARE's ModelController FedAvg workflow (``nvflare.app_common.workflows.fedavg``).

FLARE 2.5 made FedAvg a workflow of its own, configured without an aggregator or a
shareable generator: each round it samples ``num_clients`` of the sites, sends them
the global model (task ``train``), averages their results weighted by
``NUM_STEPS_CURRENT_ROUND``, applies the average (a FULL result replaces the
weights, a DIFF one is added to them) and saves the model through ``persistor_id``.

flconfig runs it on ScatterAndGather's round machinery: the same events
(IntimeModelSelector, receivers and persistors see what they see there), the same
checks, progress lines and failure messages.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import random
from typing import TYPE_CHECKING, Any, ClassVar

from ..types import FLModel, RunContext
from .aggregators import InTimeAccumulateWeightedAggregator
from .scatter_and_gather import ScatterAndGather
from .shareable_generators import FullModelShareableGenerator

if TYPE_CHECKING:
    from ..runtime.context import SiteContext
    from .base import Aggregator, ShareableGenerator


class _FedAvgAggregator(InTimeAccumulateWeightedAggregator):
    """Weighted averaging of FULL or DIFF results: a round takes the kind of its first result."""

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        if not self._sites:
            self.expected_data_kind = "WEIGHT_DIFF" if result.params_type == "DIFF" else "WEIGHTS"
        return super().accept(site, result, ctx)


class FedAvg(ScatterAndGather):
    """FLARE's ``FedAvg`` (a ModelController): federated averaging without an aggregator or
    shareable generator in the config.

    Round ``r`` (``start_round`` .. ``start_round + num_rounds - 1``) sends the global model
    to ``num_clients`` sites picked at random among the connected ones (all of them when
    there are no more), waits for every result, averages them weighted by the sites'
    ``NUM_STEPS_CURRENT_ROUND`` (and ``aggregation_weights``) and saves the model every
    ``persist_every_n_rounds`` rounds and at the end.
    """

    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "model": {"*": "give the initial model to a persistor (persistor_id) instead"},
        "aggregator": {"*": "FedAvg averages with its own weighted aggregation in flconfig"},
        "stop_cond": {"*": "early stopping is not supported yet: the rounds all run"},
        "patience": {"*": "early stopping is not supported yet: the rounds all run"},
        "fedprox_mu": {"*": "FedProx is not supported yet"},
    }
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "num_clients": {"minimum": 1},
        "min_clients": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
        "num_rounds": {"minimum": 0},
        "start_round": {"minimum": 0},
        "persistor_id": {"minLength": 1},
        "task_name": {"minLength": 1},
        "task_check_period": {"exclusiveMinimum": 0},
        "persist_every_n_rounds": {"minimum": 0},
        "memory_gc_rounds": {"minimum": 0},
        "exclude_vars": {"anyOf": [{"type": "null"}, {"type": "string", "format": "regex"}]},
    }

    def __init__(
        self,
        num_clients: int = 3,
        num_rounds: int = 5,
        start_round: int = 0,
        persistor_id: str = "persistor",
        ignore_result_error: bool | None = None,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
        persist_every_n_rounds: int = 1,
        memory_gc_rounds: int = 0,
        task_name: str = "train",
        exclude_vars: str | None = None,
        aggregation_weights: dict[str, float] | None = None,
        enable_tensor_disk_offload: bool = False,
        model: Any = None,
        save_filename: str | None = "FL_global_model.pt",
        aggregator: Any = None,
        stop_cond: str | None = None,
        patience: int | None = None,
        fedprox_mu: float | None = None,
        min_clients: int | None = None,
    ) -> None:
        """
        Args:
            num_clients: sites trained each round, sampled at random when more are connected.
            num_rounds: rounds to run, from ``start_round``.
            start_round: the first round's number.
            persistor_id: id of the persistor that loads the initial model and saves it.
            ignore_result_error: drop a failed site result instead of failing the round
                (None: as False).
            allow_empty_global_weights: start even when the persistor gives no weights.
            task_check_period: seconds between looks at the round's results (accepted).
            persist_every_n_rounds: save the global model every this many rounds (0: at the
                end only).
            memory_gc_rounds: run the garbage collector every this many rounds (0: never).
            task_name: the task sent to the sites.
            exclude_vars: regular expression of parameter names left out of the average.
            aggregation_weights: weight of each site's result by site name (1.0 if not listed).
            enable_tensor_disk_offload: accepted (flconfig streams models in chunks).
            model: not supported yet (use a persistor).
            save_filename: accepted (the persistor names the file).
            aggregator: not supported yet.
            stop_cond: not supported yet.
            patience: not supported yet.
            fedprox_mu: not supported yet.
            min_clients: FLARE 2.4's name of ``num_clients`` (wins over it when given).
        """
        if min_clients is not None:
            num_clients = min_clients
        super().__init__(
            min_clients=num_clients,
            num_rounds=num_rounds,
            start_round=start_round,
            aggregator_id="",
            persistor_id=persistor_id,
            shareable_generator_id="",
            train_task_name=task_name,
            ignore_result_error=bool(ignore_result_error),
            allow_empty_global_weights=allow_empty_global_weights,
            task_check_period=task_check_period,
            persist_every_n_rounds=persist_every_n_rounds,
            memory_gc_rounds=memory_gc_rounds,
            enable_tensor_disk_offload=enable_tensor_disk_offload,
        )
        self.num_clients = num_clients
        self.task_name = task_name
        self.ignore_result_error = ignore_result_error  # type: ignore[assignment]
        self.exclude_vars = exclude_vars
        self.aggregation_weights = aggregation_weights
        self.model = model
        self.save_filename = save_filename
        self.aggregator = aggregator
        self.stop_cond = stop_cond
        self.patience = patience
        self.fedprox_mu = fedprox_mu

    def _end_round(self) -> int:
        return self.start_round + self.num_rounds

    def _min_sites(self, ctx: SiteContext) -> int:
        """``num_clients``, or every site of the run when it has fewer (FLARE trains all then)."""
        sites = len(getattr(ctx, "client_sites", ()) or ())
        return min(self.num_clients, sites) if sites else self.num_clients

    def _choose_targets(self, alive: list[str]) -> list[str]:
        if len(alive) <= self.num_clients:
            return alive
        return sorted(random.sample(alive, self.num_clients))

    def _parts(self, ctx: SiteContext) -> tuple[Aggregator, ShareableGenerator]:
        aggregator = _FedAvgAggregator(exclude_vars=self.exclude_vars,
                                       aggregation_weights=self.aggregation_weights or None,
                                       expected_data_kind="WEIGHTS")
        aggregator.id = f"{self.id or 'FedAvg'}.aggregator"
        generator = FullModelShareableGenerator()
        generator.id = f"{self.id or 'FedAvg'}.shareable_generator"
        return aggregator, generator
