"""FedAvg: FLARE's ModelController FedAvg workflow (``nvflare.app_common.workflows.fedavg``).

FLARE 2.5 made FedAvg a workflow of its own, configured without an aggregator or a
shareable generator: each round it samples ``num_clients`` of the sites, sends them
the global model (task ``train``), averages their results weighted by
``NUM_STEPS_CURRENT_ROUND``, applies the average (a FULL result replaces the
weights, a DIFF one is added to them) and saves the model through ``persistor_id``.
FLARE 2.7-2.9 added what its recipes export: a ``ModelAggregator`` of the config's own
(``aggregator``, a nested spec), early stopping (``stop_cond``, ``patience``), FedProx's
``fedprox_mu`` in the task meta, an initial ``model`` without a persistor, saved to
``save_filename``.

flconfig runs it on ScatterAndGather's round machinery: the same events
(IntimeModelSelector, receivers and persistors see what they see there), the same
checks, progress lines and failure messages.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import logging
import math
import operator
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

from ..compat.nvflare.app_common.abstract.fl_model import FLModel as FlareModel
from ..compat.shareables import flare_context
from ..errors import JobError
from ..files import inside, write_atomic
from ..transport.codec import encode_model
from ..types import FLModel, ReturnCode, RunContext
from .aggregators import NUM_STEPS_KEY, InTimeAccumulateWeightedAggregator
from .base import Aggregator, site_logger
from .scatter_and_gather import ScatterAndGather
from .shareable_generators import FullModelShareableGenerator

if TYPE_CHECKING:
    from ..types import ServerContext
    from .base import ModelPersistor, ShareableGenerator

log = logging.getLogger(__name__)

#: The meta key an aggregate describes its metrics' aggregation under (FLARE 2.9's).
METRICS_AGGREGATION_INFO = "metrics_aggregation_info"
#: The task meta key of FedProx's proximal coefficient (FLARE's ``AlgorithmConstants.FEDPROX_MU``).
FEDPROX_MU = "fedprox_mu"
#: ``stop_cond``'s operators, as FLARE parses ``"<metric> <op> <number>"``.
_OPERATORS: dict[str, Callable[[Any, Any], bool]] = {
    ">=": operator.ge, "<=": operator.le, ">": operator.gt, "<": operator.lt, "=": operator.eq}


def parse_stop_cond(text: str) -> tuple[str, float, Callable[[Any, Any], bool]]:
    """``"accuracy >= 0.8"`` as (metric, target, comparison); ValueError when malformed."""
    parts = text.split(" ")
    if len(parts) != 3 or parts[1] not in _OPERATORS:
        raise ValueError(f"stop_cond {text!r} is not '<metric> <op> <number>' (op: >=, <=, >, <, =)")
    try:
        target = float(parts[2])
    except ValueError:
        raise ValueError(f"stop_cond {text!r}: {parts[2]!r} is not a number") from None
    return parts[0], target, _OPERATORS[parts[1]]


def _steps_weight(result: FLModel) -> float:
    """FLARE 2.9's weight of a result: ``NUM_STEPS_CURRENT_ROUND``, 1.0 when it is missing,
    not a number, not finite or not positive."""
    steps = result.meta.get(NUM_STEPS_KEY)
    if isinstance(steps, bool) or not isinstance(steps, (int, float)):
        return 1.0
    return float(steps) if math.isfinite(steps) and steps > 0 else 1.0


class _FedAvgAggregator(InTimeAccumulateWeightedAggregator):
    """Weighted averaging of FULL or DIFF results: a round takes the kind of its first result.

    Each result weighs ``aggregation_weights[site]`` (1.0) × its steps, as FLARE 2.9's
    FedAvg weighs it; the aggregate describes that in ``meta["metrics_aggregation_info"]``.
    """

    #: ``{"name", "mode", "mode_source"}`` of the metric ``stop_cond`` names, or None.
    key_metric: dict[str, Any] | None = None

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        if not self._sites:
            self.expected_data_kind = "WEIGHT_DIFF" if result.params_type == "DIFF" else "WEIGHTS"
        accepted = super().accept(site, result, ctx)
        if accepted:
            self._site_weights.append({"name": site, "weight": self._weight(site, result)[0],
                                       "weight_key": "effective_fedavg_metric_weight"})
        return accepted

    def _weight(self, site: str, result: FLModel) -> tuple[float | None, str | None]:
        return _steps_weight(result) * (self.aggregation_weights or {}).get(site, 1.0), None

    def aggregate(self, ctx: RunContext) -> FLModel:
        weights = list(self._site_weights)
        model = super().aggregate(ctx)
        info: dict[str, Any] = {
            "metric_source": "client_reported_flmodel_metrics",
            "aggregation": {"method": "weighted_average", "weight_key": "effective_fedavg_metric_weight",
                            "metric_policy": "finite_numeric_metrics_only_per_key_denominator",
                            "weight_formula": "aggregation_weight * NUM_STEPS_CURRENT_ROUND"},
        }
        if self.key_metric:
            info["key_metric"] = dict(self.key_metric)
        if weights:
            info["site_weights"] = weights
        model.meta[METRICS_AGGREGATION_INFO] = info
        return model

    def reset(self, ctx: RunContext | None = None) -> None:
        super().reset(ctx)
        self._site_weights: list[dict[str, Any]] = []


class _ReplacingGenerator(FullModelShareableGenerator):
    """FLARE 2.9 FedAvg's update with a custom aggregator: a FULL aggregate is the next
    global model as it is (k-means centers replace the first round's settings)."""

    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        if aggregated.params_type != "FULL" or aggregated.rc != ReturnCode.OK:
            return super().shareable_to_learnable(aggregated, ctx)
        current = (getattr(ctx, "props", None) or {}).get("global_model")
        meta = dict(current.meta) if isinstance(current, FLModel) else {}
        return FLModel(params=dict(aggregated.params), meta=meta, metrics=dict(aggregated.metrics),
                       params_type="FULL")


class _CustomAggregator(Aggregator):
    """The config's own aggregator (``aggregator``): a flconfig Aggregator, or a FLARE
    ``ModelAggregator`` (``accept_model``/``aggregate_model``/``reset_stats``). Its
    aggregate gets the round and FLARE's ``metrics_aggregation_info`` when it has none."""

    def __init__(self, inner: Any, key_metric: dict[str, Any] | None) -> None:
        self.inner = inner
        self.key_metric = key_metric
        self.id = getattr(inner, "id", "") or ""
        self._accepted = 0
        #: Why each refused result was refused (ScatterAndGather reports it).
        self.rejections: dict[str, str] = {}

    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        if isinstance(self.inner, Aggregator):
            accepted = self.inner.accept(site, result, ctx)
            self.rejections = dict(getattr(self.inner, "rejections", {}) or {})
        else:
            self.inner.fl_ctx = _flare_ctx(ctx)
            self.inner.accept_model(_flare_model(site, result, ctx))
            accepted = True
        self._accepted += int(bool(accepted))
        return accepted

    def aggregate(self, ctx: RunContext) -> FLModel:
        if isinstance(self.inner, Aggregator):
            model = self.inner.aggregate(ctx)
        else:
            self.inner.fl_ctx = _flare_ctx(ctx)
            model = _from_flare_model(self.inner.aggregate_model())
        current = (getattr(ctx, "props", None) or {}).get("current_round")
        model.meta = {**model.meta, "nr_aggregated": self._accepted, "current_round": current}
        info = model.meta.get(METRICS_AGGREGATION_INFO)
        if isinstance(info, dict):
            info = dict(info)
            if self.key_metric and "key_metric" not in info:
                info["key_metric"] = dict(self.key_metric)
            if "sites" not in info and "use_contribution_sites" not in info:
                info["use_contribution_sites"] = False
        else:
            info = {"metric_source": "custom_aggregator_flmodel_metrics", "use_contribution_sites": False}
            if self.key_metric:
                info["key_metric"] = dict(self.key_metric)
        model.meta[METRICS_AGGREGATION_INFO] = info
        return model

    def reset(self, ctx: RunContext) -> None:
        self._accepted = 0
        self.rejections = {}
        if isinstance(self.inner, Aggregator):
            self.inner.reset(ctx)
        else:
            self.inner.reset_stats()


class FedAvg(ScatterAndGather):
    """FLARE's ``FedAvg`` (a ModelController): federated averaging without an aggregator or
    shareable generator in the config.

    Round ``r`` (``start_round`` .. ``start_round + num_rounds - 1``) sends the global model
    to ``num_clients`` sites picked at random among the connected ones (all of them when
    there are no more), waits for every result, averages them weighted by the sites'
    ``NUM_STEPS_CURRENT_ROUND`` (1.0 when missing or not positive) times
    ``aggregation_weights`` and saves the model every ``persist_every_n_rounds`` rounds and
    at the end. The aggregate's metrics are described in ``metrics_aggregation_info`` (what
    MetricsArtifactWriter writes).

    As FLARE 2.9's FedAvg:

    * ``aggregator``: a nested aggregator spec (``CollectAndAssembleModelAggregator``, a
      FLARE ``ModelAggregator`` of the job's code, any flconfig Aggregator) replaces the
      built-in averaging;
    * ``stop_cond`` (``"<metric> <op> <number>"``, e.g. ``"loss < 0.1"``) is checked on the
      round's aggregated metrics: the run ends after the first round that meets it, and the
      global model is saved only when the metric improved; ``patience`` also ends it after
      that many rounds without improvement;
    * ``fedprox_mu`` (> 0) travels in every train task's meta as ``fedprox_mu``, for the
      sites' FedProx loss (0 or None: not sent);
    * ``model`` (``{name: array}``) is the initial model instead of the persistor's; without
      a persistor the global model is saved to ``save_filename`` in the run folder, in
      flconfig's model format (FLARE writes its FOBS format there).
    """

    #: With an initial ``model``, a default persistor that is not there is not needed.
    DEFAULT_REF_OPTIONAL: ClassVar[dict[str, str]] = {"persistor_id": "model"}
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "stop_cond": {"anyOf": [{"type": "null"}, {
            "type": "string", "pattern": r"^\S+ (>=|<=|>|<|=) [-+]?(\d+\.?\d*|\.\d+)([eE][-+]?\d+)?$",
            "patternErrorMessage": "'<metric> <op> <number>' with one space between, op one of "
                                   ">=, <=, >, <, = (e.g. \"accuracy >= 0.8\")"}]},
        "patience": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 0}]},
        "fedprox_mu": {"anyOf": [{"type": "null"}, {"type": "number", "minimum": 0}]},
        "model": {"anyOf": [{"type": "null"}, {"type": "object"}]},
        "aggregator": {"anyOf": [{"type": "null"}, {"type": "object"}],
                       "description": "an aggregator spec, {\"path\": ..., \"args\": {...}}"},
        "save_filename": {"anyOf": [{"type": "null"}, {
            "type": "string", "pattern": r"^(?!\.\.?$)[^/\\]+$",
            "patternErrorMessage": "a file name without a folder"}]},
        "aggregation_weights": {"anyOf": [{"type": "null"}, {
            "type": "object", "additionalProperties": {"type": "number", "minimum": 0}}]},
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
            model: the initial model, ``{name: array}``, instead of the persistor's.
            save_filename: the file the global model is saved to when there is no persistor.
            aggregator: an aggregator (nested spec) that replaces the built-in averaging.
            stop_cond: ``"<metric> <op> <number>"``: end the run once the aggregated metric
                meets it.
            patience: with ``stop_cond``: end the run after this many rounds without
                improvement.
            fedprox_mu: FedProx's proximal coefficient, sent in the train task's meta.
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
        self._stop = parse_stop_cond(stop_cond) if stop_cond else None
        self._best: Any = None  # the best value of stop_cond's metric so far
        self._rounds_without_improvement = 0

    def _end_round(self) -> int:
        return self.start_round + self.num_rounds

    def _min_sites(self, ctx: ServerContext) -> int:
        """``num_clients``, or every site of the run when it has fewer (FLARE trains all then)."""
        sites = len(getattr(ctx, "client_sites", ()) or ())
        return min(self.num_clients, sites) if sites else self.num_clients

    def _choose_targets(self, alive: list[str]) -> list[str]:
        if len(alive) <= self.num_clients:
            return alive
        return sorted(random.sample(alive, self.num_clients))

    def _parts(self, ctx: ServerContext) -> tuple[Aggregator, ShareableGenerator]:
        aggregator: Aggregator
        if self.aggregator is not None:
            if not isinstance(self.aggregator, Aggregator) and not callable(
                    getattr(self.aggregator, "accept_model", None)):
                raise JobError(f"{self._owner()}: aggregator is a {type(self.aggregator).__name__}, not an "
                               "aggregator (a flconfig Aggregator or a FLARE ModelAggregator)")
            aggregator = _CustomAggregator(self.aggregator, self._key_metric())
            generator: FullModelShareableGenerator = _ReplacingGenerator()
        else:
            builtin = _FedAvgAggregator(exclude_vars=self.exclude_vars,
                                        aggregation_weights=self.aggregation_weights or None,
                                        expected_data_kind="WEIGHTS")
            builtin.key_metric = self._key_metric()
            builtin.id = f"{self.id or 'FedAvg'}.aggregator"
            aggregator = builtin
            generator = FullModelShareableGenerator()
        generator.id = f"{self.id or 'FedAvg'}.shareable_generator"
        return aggregator, generator

    def _key_metric(self) -> dict[str, Any] | None:
        """The metric ``stop_cond`` names and whether higher is better (FLARE's description)."""
        if self._stop is None or self.stop_cond is None:
            return None
        op = self.stop_cond.split(" ")[1]
        if op == "=":
            return None
        return {"name": self._stop[0], "mode": "max" if op.startswith(">") else "min",
                "mode_source": "derived_from_stop_condition"}

    def _find_persistor(self, ctx: ServerContext) -> ModelPersistor | None:
        """The persistor; with an initial ``model``, a ``persistor_id`` that names nothing means
        none (FLARE saves to ``save_filename`` then)."""
        if self.model is not None and (not self.persistor_id or ctx.get_component(self.persistor_id) is None):
            return None
        return super()._find_persistor(ctx)

    def _initial_model(self, ctx: ServerContext) -> FLModel | None:
        """``model`` when given, else the persistor's."""
        if self.model is None:
            return super()._initial_model(ctx)
        if isinstance(self.model, FLModel):
            return self.model
        import numpy as np

        params = {str(name): np.asarray(value) if isinstance(value, (list, tuple)) else value
                  for name, value in dict(self.model).items()}
        site_logger(ctx, log).info("%s: the initial model is the config's 'model' (%d entries)", self._owner(), len(params))
        return FLModel(params=params, params_type="FULL")

    def _task_meta(self) -> dict[str, Any]:
        return {FEDPROX_MU: float(self.fedprox_mu)} if self.fedprox_mu else {}

    def _persist_now(self, current: int, aggregated: FLModel) -> bool:
        """Without ``stop_cond``: as ScatterAndGather. With it: when the round's aggregated
        metric improved on the best so far (and counts the rounds without improvement)."""
        if self._stop is None:
            return super()._persist_now(current, aggregated)
        name, _, better = self._stop
        value = aggregated.metrics.get(name) if isinstance(aggregated.metrics, dict) else None
        if value is None:
            return False
        if self._best is None or better(value, self._best):
            if self.patience and self._best == value:
                self._rounds_without_improvement += 1
                return False
            self._best = value
            self._rounds_without_improvement = 0
            return True
        self._rounds_without_improvement += 1
        return False

    def _save(self, model: FLModel, ctx: ServerContext) -> None:
        """Through the persistor; without one, to ``save_filename`` in the run folder."""
        if self._persistor is not None:
            self._persistor.save(model, ctx)
        elif self.save_filename:
            path = inside(ctx.run_dir, self.save_filename)
            write_atomic(path, encode_model(FLModel(params=model.params, params_type="FULL", meta={
                k: v for k, v in model.meta.items() if isinstance(v, (str, int, float, bool))})))
            site_logger(ctx, log).info("%s: saved the global model to %s", self._owner(), path)

    def _stop_after(self, current: int, aggregated: FLModel, ctx: ServerContext) -> bool:
        """``stop_cond`` met by the round's aggregated metrics, or ``patience`` rounds without
        improvement."""
        if self._stop is None or current >= self._end_round() - 1:
            return False
        name, target, meets = self._stop
        if self.patience and self._rounds_without_improvement >= self.patience:
            ctx.progress(f"{self._owner()}: {self.patience} round(s) without improvement of {name} "
                         f"(patience): stopping after round {current + 1}/{self._end_round()}")
            return True
        value = aggregated.metrics.get(name) if isinstance(aggregated.metrics, dict) else None
        if value is None:
            site_logger(ctx, log).warning("%s: stop_cond names %r, which the round's aggregated metrics lack: %s",
                                 self._owner(), name, sorted(aggregated.metrics or {}))
            return False
        if meets(value, target):
            ctx.progress(f"{self._owner()}: stop_cond '{self.stop_cond}' met ({name} = {value:.6g}): "
                         f"stopping after round {current + 1}/{self._end_round()}")
            return True
        return False



def _flare_ctx(ctx: RunContext) -> Any:
    return flare_context(ctx, current_round=(getattr(ctx, "props", None) or {}).get("current_round"))


def _flare_model(site: str, result: FLModel, ctx: RunContext) -> Any:
    """A site's result as FLARE's FLModel, its site in ``meta["client_name"]``."""

    current = (getattr(ctx, "props", None) or {}).get("current_round")
    return FlareModel(params=dict(result.params), params_type=result.params_type, metrics=dict(result.metrics),
                      meta={**result.meta, "client_name": site}, current_round=result.meta.get("current_round", current))


def _from_flare_model(model: Any) -> FLModel:
    """What a FLARE ModelAggregator returned, as flconfig's FLModel; JobError for nothing, or a
    model without params (it would replace the global model with an empty one)."""
    if isinstance(model, FLModel):
        return model
    if model is None or not getattr(model, "params", None):
        raise JobError(f"the aggregator's aggregate_model() returned {'None' if model is None else 'a model without params'}"
                       ": the global model is kept as it was; the round cannot be aggregated")
    params_type = getattr(model, "params_type", None)
    params_type = getattr(params_type, "value", params_type) or "FULL"
    return FLModel(params=dict(getattr(model, "params", None) or {}), params_type=str(params_type),
                   metrics=dict(getattr(model, "metrics", None) or {}), meta=dict(getattr(model, "meta", None) or {}))
