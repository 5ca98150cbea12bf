"""FLARE's ``BaseFedAvg``: ModelController with FedAvg's aggregation, for ``run()`` in job code."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from flconfig.errors import JobError
from flconfig.types import FLModel as OurModel

from ...apis.fl_constant import FLMetaKey
from ..abstract.fl_model import FLModel
from ..aggregators.weighted_aggregation_helper import WeightedAggregationHelper
from ..app_constant import AppConstants
from ..app_event_type import AppEventType
from ..utils.fl_model_utils import FLModelUtils
from .model_controller import ModelController


class BaseFedAvg(ModelController):
    """FLARE's base of FedAvg workflows: ``aggregate`` (a weighted mean by
    ``NUM_STEPS_CURRENT_ROUND``, or the job's ``aggregate_fn``) and ``update_model``;
    the job writes ``run()``."""

    def __init__(self, *args: Any, num_clients: int = 3, num_rounds: int = 5, start_round: int = 0,
                 **kwargs: Any) -> None:
        """
        Args:
            num_clients: the number of sites a round trains on.
            num_rounds: the number of rounds.
            start_round: the first round's number.
        """
        super().__init__(*args, **kwargs)
        self.num_clients = num_clients
        self.num_rounds = num_rounds
        self.start_round = start_round
        self.current_round: int | None = None

    @staticmethod
    def _check_results(results: list[FLModel]) -> None:
        empty = [r.meta.get("client_name", AppConstants.CLIENT_UNKNOWN) for r in results if not r.params]
        if empty:
            raise ValueError(f"Result from client(s) {empty} is empty!")

    @staticmethod
    def aggregate_fn(results: list[FLModel]) -> FLModel:
        """The mean of the results' params (and metrics, when every result has some),
        weighted by their ``NUM_STEPS_CURRENT_ROUND``."""
        if not results:
            raise ValueError("received empty results for aggregation.")
        params, metrics = WeightedAggregationHelper(), WeightedAggregationHelper()
        all_metrics = True
        for result in results:
            weight = result.meta.get(FLMetaKey.NUM_STEPS_CURRENT_ROUND, 1.0)
            name = result.meta.get("client_name", AppConstants.CLIENT_UNKNOWN)
            params.add(data=result.params or {}, weight=weight, contributor_name=name,
                       contribution_round=result.current_round)
            if not result.metrics:
                all_metrics = False
            if all_metrics:
                metrics.add(data=result.metrics or {}, weight=weight, contributor_name=name,
                            contribution_round=result.current_round)
        return FLModel(params=params.get_result(), params_type=results[0].params_type,
                       metrics=metrics.get_result() if all_metrics else None,
                       meta={"nr_aggregated": len(results), "current_round": results[0].current_round})

    def aggregate(self, results: list[FLModel], aggregate_fn: Callable[[list[FLModel]], FLModel] | None = None
                  ) -> FLModel:
        """The round's aggregate of ``results`` (fires the aggregation events)."""
        self.event(AppEventType.BEFORE_AGGREGATION,
                   {"current_round": self.current_round,
                    "sites": [r.meta.get("client_name") for r in results]})
        self._check_results(results)
        self.info(f"aggregating {len(results)} update(s) at round {self.current_round}")
        try:
            aggregated = (aggregate_fn or self.aggregate_fn)(results)
        except Exception as exc:  # noqa: BLE001 - the job's aggregate_fn failed: stop, saying why
            raise JobError(f"{self._owner()}: aggregation failed: {type(exc).__name__}: {exc}") from None
        self.fl_ctx.set_prop(AppConstants.AGGREGATION_RESULT, aggregated, private=True, sticky=False)
        self.event(AppEventType.END_AGGREGATION, None)
        self.event(AppEventType.AFTER_AGGREGATION, _described(aggregated, self.current_round))
        return aggregated

    def update_model(self, model: FLModel, aggr_result: FLModel) -> FLModel:
        """``model`` updated by the aggregate (FULL replaces, DIFF adds)."""
        return FLModelUtils.update_model(model, aggr_result)


def _described(aggregated: FLModel, current_round: Any) -> Any:
    """The aggregate as flconfig's widgets take it (MetricsArtifactWriter): its metrics, its
    round, and FLARE 2.9's description of a weighted mean by ``NUM_STEPS_CURRENT_ROUND``."""

    meta = dict(aggregated.meta or {})
    meta.setdefault("current_round", aggregated.current_round if aggregated.current_round is not None
                    else current_round)
    meta.setdefault("metrics_aggregation_info", {
        "metric_source": "client_reported_flmodel_metrics",
        "aggregation": {"method": "weighted_average", "weight_key": FLMetaKey.NUM_STEPS_CURRENT_ROUND,
                        "metric_policy": "finite_numeric_metrics_only_per_key_denominator"}})
    return OurModel(metrics=dict(aggregated.metrics or {}), meta=meta)
