"""Scaffold: FLARE 2.5's ModelController workflow of SCAFFOLD (Karimireddy et al., 2020)."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..compat.nvflare.app_common.abstract.fl_model import FLModel
from ..compat.nvflare.app_common.aggregators.weighted_aggregation_helper import (
    WeightedAggregationHelper,
)
from ..compat.nvflare.app_common.workflows.base_fedavg import BaseFedAvg

#: Meta keys of the global control terms sent and the sites' control changes received.
CTRL_GLOBAL = "scaffold_c_global"
CTRL_DIFF = "scaffold_c_diff"


class Scaffold(BaseFedAvg):
    """SCAFFOLD (FLARE's ``Scaffold``): FedAvg over ``num_clients`` sites a round for
    ``num_rounds`` rounds, sending the global control terms with the model
    (``meta["scaffold_c_global"]``, zeros at first) and adding the sites' mean control
    change (``meta["scaffold_c_diff"]``, weighted as the model by ``NUM_STEPS_CURRENT_ROUND``)
    to them each round. The sites' learners use ``PTScaffoldHelper``
    (``nvflare.app_opt.pt.scaffold``). The model is saved through the persistor each round.
    """

    def __init__(
        self,
        num_clients: int = 3,
        num_rounds: int = 5,
        start_round: int = 0,
        persistor_id: str = "persistor",
        ignore_result_error: bool = False,
        allow_empty_global_weights: bool = False,
        task_check_period: float = 0.5,
        min_clients: int | None = None,
    ) -> None:
        """
        Args:
            num_clients: the number of sites a round trains on.
            num_rounds: the number of rounds.
            start_round: the first round's number.
            persistor_id: id of the persistor of the global model.
            ignore_result_error: go on when a site's result is an error (it is left out).
            allow_empty_global_weights: let the run start from an empty model.
            task_check_period: accepted for FLARE's configs.
            min_clients: FLARE 2.4's name of ``num_clients`` (wins over it when given).
        """
        if min_clients is not None:
            num_clients = min_clients
        super().__init__(num_clients=num_clients, num_rounds=num_rounds, start_round=start_round,
                         persistor_id=persistor_id, ignore_result_error=ignore_result_error,
                         allow_empty_global_weights=allow_empty_global_weights, task_check_period=task_check_period)
        self.persistor_id = persistor_id
        self.ignore_result_error = ignore_result_error
        self.allow_empty_global_weights = allow_empty_global_weights
        self.task_check_period = task_check_period
        self.min_clients = min_clients
        self._global_ctrl: dict[str, Any] = {}

    def run(self) -> None:
        """The rounds (see the class)."""
        model = self.load_model()
        model.start_round, model.total_rounds = self.start_round, self.num_rounds
        self._global_ctrl = {k: np.zeros_like(np.asarray(v)) for k, v in model.params.items()}
        for current in range(self.start_round, self.start_round + self.num_rounds):
            self.current_round = current
            self.info(f"Round {self.current_round} started.")
            model.current_round = self.current_round
            model.meta[CTRL_GLOBAL] = self._global_ctrl
            results = self.send_model_and_wait(targets=self.sample_clients(self.num_clients), data=model)
            aggregate = self.aggregate(results, aggregate_fn=scaffold_aggregate_fn)
            model = self.update_model(model, aggregate)
            for name, change in aggregate.meta[CTRL_DIFF].items():
                if name in self._global_ctrl:
                    self._global_ctrl[name] = self._global_ctrl[name] + np.asarray(change)
            model.meta.pop(CTRL_DIFF, None)
            self.save_model(model)
        self.info("Finished Scaffold.")


def scaffold_aggregate_fn(results: list[FLModel]) -> FLModel:
    """The weighted mean of the results' params and of their control changes."""
    missing = [r.meta.get("client_name", "?") for r in results if CTRL_DIFF not in r.meta]
    if missing:
        raise ValueError(f"the results of {', '.join(missing)} have no {CTRL_DIFF} in their meta: "
                         "the sites' learners must use PTScaffoldHelper")
    params, controls = WeightedAggregationHelper(), WeightedAggregationHelper()
    for result in results:
        weight = result.meta.get("NUM_STEPS_CURRENT_ROUND", 1.0)
        name = result.meta.get("client_name", "unknown")
        params.add(data=result.params or {}, weight=weight, contributor_name=name,
                   contribution_round=result.current_round)
        controls.add(data={k: np.asarray(v) for k, v in result.meta[CTRL_DIFF].items()}, weight=weight,
                     contributor_name=name, contribution_round=result.current_round)
    return FLModel(params=params.get_result(), params_type=results[0].params_type,
                   meta={CTRL_DIFF: controls.get_result(), "nr_aggregated": len(results),
                         "current_round": results[0].current_round})
