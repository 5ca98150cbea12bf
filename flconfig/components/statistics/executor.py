"""StatisticsExecutor: a site's local statistics, computed by the job's generator (FLARE's)."""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any, ClassVar

from ...compat.nvflare.app_common.abstract.statistics_spec import DataType, Histogram, HistogramType
from ...compat.shareables import flare_context
from ...errors import JobError
from ...types import Event, EventType, FLModel, ReturnCode, RunContext, Signal
from ..base import Executor, site_logger
from ._values import (
    COUNT,
    FAILURE_COUNT,
    FEATURES,
    FIRST,
    GLOBAL_COUNT,
    GLOBAL_MEAN,
    HISTOGRAM,
    MAX,
    MEAN,
    MIN,
    PRE_RUN_TASK,
    QUANTILE,
    STATS_TASK,
    STDDEV,
    SUM,
    TARGETS,
    TASK_KEY,
    VAR,
    encode,
    feature_bins,
    feature_range,
    plain,
    quantile_targets,
)

log = logging.getLogger(__name__)


class StatisticsExecutor(Executor):
    """Computes this site's statistics with the job's generator (FLARE's ``StatisticsExecutor``).

    ``generator_id`` names the job's ``Statistics`` (``nvflare.app_common.abstract.
    statistics_spec``), initialized when the run starts and finalized when it ends. Task
    ``fed_stats`` asks for a list of statistics; each is computed for every numeric (INT or
    FLOAT) feature of every dataset the generator's ``features()`` lists, with count and
    failure count always added (the privacy rules need them). Sums, means, standard
    deviations and variances are rounded to ``precision`` digits. A statistic that fails for
    one feature is logged and left out. Task ``fed_stats_pre_run`` hands the generator the
    configuration (``pre_run``).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"generator_id": {"minLength": 1}, "precision": {"minimum": 0}}

    def __init__(self, generator_id: str, precision: int = 4) -> None:
        """
        Args:
            generator_id: id of the job's statistics generator (a FLARE ``Statistics``).
            precision: digits statistics are rounded to.
        """
        self.generator_id = generator_id
        self.precision = precision
        self._generator: Any = None

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """START_RUN: initialize the generator; END_RUN: finalize it."""
        if event.type == EventType.START_RUN:
            self._start(ctx)
        elif event.type == EventType.END_RUN and self._generator is not None:
            self._generator.finalize(_fl_ctx(ctx))

    def _start(self, ctx: RunContext) -> Any:
        if self._generator is None:
            generator = ctx.get_component(self.generator_id)
            if generator is None or not callable(getattr(generator, "features", None)):
                what = "no component" if generator is None else f"a {type(generator).__name__}"
                raise JobError(f"StatisticsExecutor: generator_id '{self.generator_id}' names {what}, not a FLARE "
                               "Statistics (nvflare.app_common.abstract.statistics_spec.Statistics)")
            generator.initialize(_fl_ctx(ctx))
            self._generator = generator
        return self._generator

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        """``fed_stats``: the statistics the task lists; ``fed_stats_pre_run``: the hand-shake."""
        if task_name not in (STATS_TASK, PRE_RUN_TASK):
            return FLModel.error(ReturnCode.TASK_UNKNOWN, f"StatisticsExecutor has no task {task_name!r}")
        generator = self._start(ctx)
        targets = [(str(t[0]), dict(t[1] or {})) for t in data.params.get(TARGETS) or []]
        try:
            if task_name == PRE_RUN_TASK:
                return FLModel(params={"pre_run": _plain_json(self._pre_run(generator, targets))})
            return FLModel(params=self._statistics(generator, data.params, targets, ctx))
        except Exception as exc:  # noqa: BLE001 - the job's generator failed: the task's error result
            site_logger(ctx, log).exception("StatisticsExecutor: task %s failed", task_name)
            return FLModel.error(ReturnCode.EXECUTION_EXCEPTION, f"{type(exc).__name__}: {exc}")

    @staticmethod
    def _pre_run(generator: Any, targets: list[tuple[str, dict[str, Any]]]) -> Any:
        names = [name for name, _ in targets]
        bins: dict[str, Any] | None = None
        ranges: dict[str, Any] | None = None
        for name, config in targets:
            if name == HISTOGRAM:
                bins = {feature: feature_bins(feature, config) for feature in config}
                ranges = {feature: feature_range(feature, config) for feature in config}
        return generator.pre_run(names, bins, ranges)

    def _statistics(self, generator: Any, inputs: Mapping[str, Any], targets: list[tuple[str, dict[str, Any]]],
                    ctx: RunContext) -> dict[str, Any]:
        datasets = {ds: [f for f in features if f.data_type in (DataType.INT, DataType.FLOAT)]
                    for ds, features in (generator.features() or {}).items()}
        names = [name for name, _ in targets]
        targets = [*targets, *[(n, {}) for n in (COUNT, FAILURE_COUNT) if n not in names]]
        targets.sort(key=lambda t: t[0] == FAILURE_COUNT)
        result: dict[str, Any] = {}
        for name, config in targets:
            compute = self._functions(generator, inputs).get(name)
            if compute is None:
                raise JobError(f"StatisticsExecutor: unknown statistic {name!r}")
            result[name] = {}
            for ds, features in datasets.items():
                result[name][ds] = {}
                for feature in features:
                    try:
                        result[name][ds][feature.feature_name] = compute(ds, feature.feature_name, config)
                    except Exception as exc:  # noqa: BLE001 - FLARE logs and leaves the feature out
                        site_logger(ctx, log).warning("statistic %s of dataset %s feature %s failed: %s: %s", name, ds,
                                             feature.feature_name, type(exc).__name__, exc)
                        result[name][ds].pop(feature.feature_name, None)
        task = inputs.get(TASK_KEY)
        out: dict[str, Any] = {TASK_KEY: task, str(task): encode(result)}
        if task == FIRST:
            out[FEATURES] = {ds: [[f.feature_name, int(f.data_type)] for f in features]
                             for ds, features in datasets.items()}
        return out

    def _functions(self, gen: Any, inputs: Mapping[str, Any]) -> dict[str, Callable[[str, str, dict[str, Any]], Any]]:
        precision = self.precision

        def rounded(value: Any) -> Any:
            value = plain(value)
            return None if value is None else round(value, precision)

        def mean(ds: str, f: str, _: dict[str, Any]) -> Any:
            count, total = plain(gen.count(ds, f)), plain(gen.sum(ds, f))
            return rounded(total / count) if count and total is not None else rounded(gen.mean(ds, f))

        def var(ds: str, f: str, _: dict[str, Any]) -> Any:
            mean_, count = _global(inputs, GLOBAL_MEAN, ds, f), _global(inputs, GLOBAL_COUNT, ds, f)
            return None if mean_ is None or count is None else rounded(gen.variance_with_mean(ds, f, mean_, count))

        def histogram(ds: str, f: str, config: dict[str, Any]) -> Any:
            low, high = _global(inputs, MIN, ds, f), _global(inputs, MAX, ds, f)
            if low is None or high is None:
                return Histogram(HistogramType.STANDARD, [])
            bin_range = feature_range(f, config) or [low, high]
            return gen.histogram(ds, f, feature_bins(f, config), bin_range[0], bin_range[1])

        def extreme(which: int, method: str) -> Callable[[str, str, dict[str, Any]], Any]:
            def compute(ds: str, f: str, config: dict[str, Any]) -> Any:
                configured = feature_range(f, config)
                return plain(getattr(gen, method)(ds, f)) if configured is None else configured[which]
            return compute

        return {
            COUNT: lambda ds, f, _: plain(gen.count(ds, f)),
            FAILURE_COUNT: lambda ds, f, _: plain(gen.failure_count(ds, f)),
            SUM: lambda ds, f, _: rounded(gen.sum(ds, f)),
            MEAN: mean,
            STDDEV: lambda ds, f, _: rounded(gen.stddev(ds, f)),
            VAR: var,
            HISTOGRAM: histogram,
            MIN: extreme(0, "min_value"),
            MAX: extreme(1, "max_value"),
            QUANTILE: lambda ds, f, config: gen.quantiles(ds, f, quantile_targets(f, config)),
        }


def _global(inputs: Mapping[str, Any], key: str, ds: str, feature: str) -> Any:
    """The server's global value of ``key`` for a dataset's feature, or None."""
    values = inputs.get(key)
    found = values.get(ds, {}).get(feature) if isinstance(values, Mapping) else None
    return found


def _plain_json(value: Any) -> Any:
    if isinstance(value, Mapping):
        return {str(k): _plain_json(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain_json(v) for v in value]
    return plain(value)


def _fl_ctx(ctx: RunContext) -> Any:
    return flare_context(ctx)

