"""Choosing the best global model from what the sites report (FLARE's ``IntimeModelSelector``)."""

from __future__ import annotations

import logging
import math
import re
from collections.abc import Mapping
from typing import Any, ClassVar

from ..types import Event, EventType, FLModel, RunContext
from .base import AppEventType, Widget

log = logging.getLogger(__name__)

#: Where FLARE's learners and its Client API put the metrics of the model they received.
INITIAL_METRICS = "initial_metrics"
NUM_STEPS = "NUM_STEPS_CURRENT_ROUND"

# Metric names that usually mean lower is better: warn when they are maximised.
_LOWER_SUBSTRINGS = ("loss", "err")
_LOWER_TOKENS = frozenset({"bce", "ce", "cer", "mae", "mse", "nll", "perplexity", "ppl", "rmse", "wer"})


def looks_lower_is_better(name: str) -> bool:
    """True for names such as ``val_loss``, ``error_rate`` or ``mse``, not ``neg_loss``."""
    low = name.lower()
    tokens = re.split(r"[^a-z0-9]+", low)
    if "neg" in tokens:
        return False
    return any(s in low for s in _LOWER_SUBSTRINGS) or any(t in _LOWER_TOKENS for t in tokens)


class IntimeModelSelector(Widget):
    """Tells the persistor when the global model is the best so far (FLARE's ``IntimeModelSelector``).

    Each site validates the global model it receives before it trains on it
    and sends that metric with its result (``meta["initial_metrics"]``; the
    Client API's ``FLModel.metrics``). As results arrive (``_before_contribution_accept``)
    the selector takes ``key_metric`` from each, weighted by
    ``aggregation_weights[site]`` (default 1) and, with ``weigh_by_local_iter``,
    by the site's ``NUM_STEPS_CURRENT_ROUND``. Before aggregation it compares
    the weighted mean with the best so far; a better one fires
    ``_global_best_model_available`` with the model sent this round, which the
    persistor saves as the best model (``best_FL_global_model.pt``).

    As in FLARE, round 0 is skipped (the model sent then is the initial one),
    a result from another round or without the metric is left out (logged),
    and higher is better unless ``negate_key_metric``. With a selector in the
    job, the workflow does not choose the best model itself.
    """

    #: ScatterAndGather leaves the choice of the best model to a component that says so.
    SELECTS_BEST_MODEL: ClassVar[bool] = True
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "validation_metric_name": {"minLength": 1},
        "key_metric": {"minLength": 1},
        "aggregation_weights": {"additionalProperties": {"type": "number", "minimum": 0}},
    }

    def __init__(
        self,
        weigh_by_local_iter: bool = False,
        aggregation_weights: dict[str, float] | None = None,
        validation_metric_name: str = INITIAL_METRICS,
        key_metric: str = "val_accuracy",
        negate_key_metric: bool = False,
    ) -> None:
        """
        Args:
            weigh_by_local_iter: weigh each site's metric by the steps it
                trained that round (``NUM_STEPS_CURRENT_ROUND``).
            aggregation_weights: weight of each site's metric by site name;
                a site not listed weighs 1.
            validation_metric_name: the result's meta key holding the metric
                (a number, or a dict from which ``key_metric`` is taken).
            key_metric: the metric compared when the sites report several.
            negate_key_metric: lower is better (a loss): compare the negated
                metric.
        """
        self.weigh_by_local_iter = weigh_by_local_iter
        self.aggregation_weights = dict(aggregation_weights or {})
        self.validation_metric_name = validation_metric_name
        self.key_metric = key_metric
        self.negate_key_metric = negate_key_metric
        #: The best weighted metric so far (negated when ``negate_key_metric``), or None.
        self.best_metric: float | None = None
        #: The round whose global model is the best so far, or None.
        self.best_round: int | None = None
        self._sum = 0.0
        self._weights = 0.0
        if not negate_key_metric and looks_lower_is_better(key_metric):
            log.warning(
                "IntimeModelSelector: key_metric %r looks like a lower-is-better metric, but higher "
                "values count as better; set negate_key_metric to true if lower is better",
                key_metric)

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Reset at the start of the run and of each round, take each result's metric,
        and announce a new best model before aggregation."""
        if event.type in (EventType.START_RUN, EventType.ROUND_STARTED):
            self._reset()
        elif event.type == AppEventType.BEFORE_CONTRIBUTION_ACCEPT and isinstance(event.data, Mapping):
            site, result = event.data.get("site"), event.data.get("result")
            if isinstance(result, FLModel):
                self._take(str(site), result, ctx)
        elif event.type == AppEventType.BEFORE_AGGREGATION:
            self._choose(ctx)

    def _reset(self) -> None:
        self._sum = 0.0
        self._weights = 0.0

    def _take(self, site: str, result: FLModel, ctx: RunContext) -> None:
        current = _props(ctx).get("current_round")
        if current == 0:
            return  # the model sent in round 0 is the initial model
        sent_round = result.meta.get("current_round")
        if sent_round is not None and current is not None and sent_round != current:
            _log(ctx).warning("model selection: result of site %s is for round %s, not round %s; "
                              "left out", site, sent_round, current)
            return
        metric = result.meta.get(self.validation_metric_name)
        if metric is None and self.validation_metric_name == INITIAL_METRICS and result.metrics:
            metric = dict(result.metrics)
        if metric is None:
            _log(ctx).warning("model selection: site %s sent no validation metric (%s)",
                              site, self.validation_metric_name)
            return
        if isinstance(metric, Mapping):
            if self.key_metric not in metric:
                _log(ctx).warning("model selection: site %s sent no %r among its metrics %s",
                                  site, self.key_metric, sorted(map(str, metric)))
                return
            metric = metric[self.key_metric]
        try:
            value = float(metric)
        except (TypeError, ValueError):
            _log(ctx).warning("model selection: the metric %r of site %s is not a number", metric, site)
            return
        if not math.isfinite(value):
            _log(ctx).warning("model selection: the metric %r of site %s is not finite", value, site)
            return
        if self.negate_key_metric:
            value = -value
        steps = result.meta.get(NUM_STEPS, 1.0) if self.weigh_by_local_iter else 1.0
        weight = float(steps) * float(self.aggregation_weights.get(site, 1.0))
        self._sum += value * weight
        self._weights += weight

    def _choose(self, ctx: RunContext) -> None:
        if self._weights <= 0:
            return
        metric = self._sum / self._weights
        self._reset()
        if self.best_metric is not None and metric <= self.best_metric:
            return
        props = _props(ctx)
        model = props.get("global_model")
        self.best_metric, self.best_round = metric, props.get("current_round")
        shown = -metric if self.negate_key_metric else metric
        _log(ctx).info("new best global model at round %s: %s %.4g", self.best_round,
                       self.key_metric, shown)
        if isinstance(props, dict):  # what the choice was, for MetricsArtifactWriter (FLARE 2.9's)
            name = type(self).__name__
            props["metrics_selection_info"] = {
                "source": name, "metric_source": self.validation_metric_name,
                "key_metric": {"name": self.key_metric, "mode": "min" if self.negate_key_metric else "max",
                               "mode_source": f"{name}.negate_key_metric"},
                "best_round": self.best_round, "best_metrics": {self.key_metric: shown}}
        if isinstance(model, FLModel) and model.params:
            best = FLModel(params=model.params, meta={**model.meta, "validation_metric": metric},
                           metrics=dict(model.metrics), params_type=model.params_type)
            ctx.fire_event(AppEventType.GLOBAL_BEST_MODEL_AVAILABLE, best)


def _props(ctx: RunContext) -> Mapping[str, Any]:
    return getattr(ctx, "props", None) or {}


def _log(ctx: RunContext) -> logging.Logger:
    return getattr(ctx, "log", None) or log
