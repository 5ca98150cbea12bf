"""StatisticsController: federated statistics of the sites' data (FLARE's)."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any, ClassVar

from ...compat.nvflare.app_common.abstract.statistics_spec import Bin
from ...compat.shareables import flare_context
from ...errors import JobError
from ...types import FLModel, ReturnCode, Signal
from ..base import Controller
from ..task_controllers import wait_for_sites
from ._values import (
    COUNT,
    FEATURES,
    FIRST,
    GLOBAL,
    GLOBAL_COUNT,
    GLOBAL_MEAN,
    HISTOGRAM,
    MAX,
    MEAN,
    MEAN_COUNT,
    MIN,
    ORDERED,
    PRE_RUN_TASK,
    QUANTILE,
    SECOND,
    STATS_TASK,
    STDDEV,
    TARGETS,
    TASK_KEY,
    VAR,
    decode,
    global_statistics,
)

if TYPE_CHECKING:
    from ...types import ServerContext

log = logging.getLogger(__name__)

class StatisticsController(Controller):
    """Federated statistics (FLARE's ``StatisticsController``): each site's and the global
    count, sum, mean, standard deviation, variance, histograms, quantiles, min and max of
    every numeric feature of every dataset, written by the ``writer_id`` component.

    ``statistic_configs`` names the statistics: ``{"count": {}, "mean": {}, "histogram":
    {"*": {"bins": 20}, "Age": {"bins": 10, "range": [0, 120]}}, "quantile": {"*": [0.1,
    0.5]}}``. Two rounds of task ``fed_stats`` go to every site (after the optional
    ``fed_stats_pre_run`` hand-shake): count, sum, mean, min, max and quantiles; then, with
    the global count, mean, min and max, failure counts, histograms (over the configured
    range, else the global min-max) and variances around the global mean, whose root is
    the global standard deviation. A histogram's range, when not configured, comes from the
    sites' noised min and max (AddNoiseToMinMax on the sites). It waits for ``min_clients``
    sites (all of the run's by default); a site's failed task stops the job. Numbers are
    rounded to ``precision`` digits. Quantiles need the ``fastdigest`` package (as FLARE):
    without it they are empty.

    Unlike FLARE, a site whose feature's statistics a privacy rule withheld (too few
    records) counts in neither the global mean nor the variance of that feature: FLARE
    divides the other sites' sum by every site's count. The global count stays every site's.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "statistic_configs": {"type": "object", "minProperties": 1,
                              "propertyNames": {"enum": ["count", "sum", "mean", "stddev", "var", "histogram",
                                                         "quantile", "min", "max", "failure_count"]},
                              "additionalProperties": {"type": "object"}},
        "writer_id": {"minLength": 1},
        "wait_time_after_min_received": {"minimum": 0},
        "result_wait_timeout": {"minimum": 0},
        "precision": {"minimum": 0},
        "min_clients": {"anyOf": [{"type": "null"}, {"type": "integer", "minimum": 1}]},
    }
    REFERENCES: ClassVar[dict[str, str]] = {"writer_id": "any"}

    def __init__(
        self,
        statistic_configs: dict[str, dict[str, Any]],
        writer_id: str,
        wait_time_after_min_received: int = 1,
        result_wait_timeout: int = 10,
        precision: int = 4,
        min_clients: int | None = None,
        enable_pre_run_task: bool = True,
    ) -> None:
        """
        Args:
            statistic_configs: the statistics to compute and their settings.
            writer_id: id of the component that saves the result (JsonStatsFileWriter).
            wait_time_after_min_received: seconds to wait for more sites once ``min_clients``
                answered.
            result_wait_timeout: accepted (flconfig has every result once the task returns).
            precision: digits numbers are rounded to.
            min_clients: sites whose statistics are needed (None: every site of the run).
            enable_pre_run_task: send ``fed_stats_pre_run`` (the generators' ``pre_run``) first.
        """
        self.statistic_configs = statistic_configs
        self.writer_id = writer_id
        self.wait_time_after_min_received = wait_time_after_min_received
        self.result_wait_timeout = result_wait_timeout
        self.precision = precision
        self.min_clients = min_clients
        self.enable_pre_run_task = enable_pre_run_task
        #: ``{statistic: {site: {dataset: {feature: value}}}}`` as the sites sent them.
        self.client_statistics: dict[str, dict[str, Any]] = {}
        #: ``{statistic: {dataset: {feature: value}}}``, the global statistics.
        self.global_statistics: dict[str, Any] = {}
        self.client_features: dict[str, Any] = {}

    def _owner(self) -> str:
        return f"workflow {self.id or type(self).__name__}"

    def start_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Check the writer exists."""
        writer = ctx.get_component(self.writer_id)
        if writer is None or not callable(getattr(writer, "save", None)):
            what = "no component" if writer is None else f"a {type(writer).__name__}"
            raise JobError(f"{self._owner()}: writer_id '{self.writer_id}' names {what}, not a statistics writer "
                           "(JsonStatsFileWriter, or a FLARE StatisticsWriter)")
        self.client_statistics, self.global_statistics, self.client_features = {}, {}, {}

    def stop_controller(self, ctx: ServerContext) -> None:  # type: ignore[override]
        """Nothing to release."""

    def control_flow(self, abort_signal: Signal, ctx: ServerContext) -> None:  # type: ignore[override]
        """The optional hand-shake, the two rounds of statistics, then the combined result saved."""
        need = self.min_clients or len(ctx.client_sites) or 1
        sites = wait_for_sites(self._owner(), need, abort_signal, ctx)
        if sites is None:
            return
        if self.enable_pre_run_task:
            targets = [[name, config] for name, config in self._all_targets()]
            self._broadcast(PRE_RUN_TASK, FLModel(params={TARGETS: targets}), sites, need, abort_signal, ctx)
        for task in (FIRST, SECOND):
            if abort_signal.triggered:
                return
            started = time.monotonic()
            results = self._broadcast(STATS_TASK, self._inputs(task), sites, need, abort_signal, ctx)
            for site, result in results.items():
                self._take(site, result)
            global_statistics(self.global_statistics, self.client_statistics, task, self.statistic_configs,
                              self.precision)
            ctx.progress(f"statistics ({'first' if task == FIRST else 'second'} task): results from "
                         f"{', '.join(sorted(results))} ({time.monotonic() - started:.1f}s)")
        if abort_signal.triggered:
            return
        self._check_enough(need)
        writer = ctx.get_component(self.writer_id)
        combined = self.combined()
        if getattr(type(writer), "_flare_component", False):  # a FLARE StatisticsWriter of the job's code

            writer.save(combined, overwrite_existing=True, fl_ctx=flare_context(ctx))
        else:
            writer.save(combined, True, ctx)
        ctx.progress(f"statistics of {len(self.client_features) or len(sites)} site(s) saved by '{self.writer_id}'")

    # -- tasks ----------------------------------------------------------------------

    def _broadcast(self, task: str, data: FLModel, sites: list[str], need: int, abort_signal: Signal,
                   ctx: ServerContext) -> dict[str, FLModel]:
        results = ctx.comm.broadcast_and_wait(task, data, sites, min_responses=need,
                                              wait_time_after_min_received=self.wait_time_after_min_received,
                                              abort=abort_signal)
        for site, result in results.items():
            if result.rc != ReturnCode.OK:
                raise JobError(f"{self._owner()}: task '{task}' failed: {result.rc} "
                               f"({result.meta.get('error') or 'no message'})", site)
        return results

    def _all_targets(self) -> list[tuple[str, dict[str, Any]]]:
        """Every configured statistic (FLARE's pre-run list): with a histogram, min and max too."""
        configs = self.statistic_configs
        order = ["count", "failure_count", "sum", "mean", "var", "stddev", "quantile"]
        targets = [(name, dict(configs[name])) for name in order if name in configs]
        if HISTOGRAM in configs:
            targets += [(MIN, dict(configs[HISTOGRAM])), (MAX, dict(configs[HISTOGRAM])),
                        (HISTOGRAM, dict(configs[HISTOGRAM]))]
        return targets

    def _targets(self, task: str) -> list[tuple[str, dict[str, Any]]]:
        """The statistics task ``task`` asks for, with their settings (FLARE's order)."""
        configs, ordered = self.statistic_configs, ORDERED[task]
        targets: list[tuple[str, dict[str, Any]]] = []
        for name in configs:
            if name == HISTOGRAM and name not in ordered:  # the first task estimates the range
                for extreme in (MIN, MAX):
                    if extreme not in configs:
                        targets.append((extreme, dict(configs[HISTOGRAM])))
            if name == STDDEV and name in ordered and VAR not in configs:
                targets.append((VAR, {}))
            if name in ordered:
                targets.append((name, dict(configs[name] or {})))
        return targets

    def _inputs(self, task: str) -> FLModel:
        targets = self._targets(task)
        params: dict[str, Any] = {TASK_KEY: task, TARGETS: [[name, config] for name, config in targets]}
        names = {name for name, _ in targets}
        if HISTOGRAM in names:
            for key in (MIN, MAX):
                if key in self.global_statistics:
                    params[key] = self.global_statistics[key]
        if VAR in names:
            counts = self.global_statistics.get(MEAN_COUNT, self.global_statistics.get(COUNT))
            if counts is not None:
                params[GLOBAL_COUNT] = counts
            if MEAN in self.global_statistics:
                params[GLOBAL_MEAN] = self.global_statistics[MEAN]
        return FLModel(params=params)

    def _take(self, site: str, result: FLModel) -> None:
        task = result.params.get(TASK_KEY)
        statistics = result.params.get(task) if isinstance(task, str) else None
        if not isinstance(statistics, dict):
            raise JobError(f"{self._owner()}: site {site} sent no statistics for {task!r}", site)
        for name, per_ds in decode(statistics).items():
            self.client_statistics.setdefault(name, {})[site] = per_ds
        if isinstance(result.params.get(FEATURES), dict):
            self.client_features[site] = result.params[FEATURES]

    def _check_enough(self, need: int) -> None:
        """Every statistic, and every dataset, from at least ``need`` sites (FLARE's check)."""
        if not self.client_statistics:
            raise JobError(f"{self._owner()}: no site sent statistics; {need} needed")
        by_dataset: dict[str, set[str]] = {}
        for name, per_site in self.client_statistics.items():
            if len(per_site) < need:
                raise JobError(f"{self._owner()}: only {len(per_site)} of the {need} sites' '{name}' statistics "
                               "arrived")
            for site, per_ds in per_site.items():
                for ds, features in per_ds.items():
                    by_dataset.setdefault(ds, set())
                    if features:
                        by_dataset[ds].add(site)
        short = {ds: len(found) for ds, found in by_dataset.items() if len(found) < need}
        if not by_dataset or short:
            raise JobError(f"{self._owner()}: statistics of dataset(s) {short or 'any'} came from fewer than the "
                           f"{need} sites needed (a privacy rule withheld them, or a site has no such data)")

    def combined(self) -> dict[str, Any]:
        """``{feature: {statistic: {site or "Global": {dataset: value}}}}`` of the configured
        statistics, as FLARE's writer receives them."""

        precision, configs = self.precision, self.statistic_configs
        out: dict[str, Any] = {}
        for name, per_site in self.client_statistics.items():
            if name not in configs:
                continue
            for site, per_ds in per_site.items():
                for ds, features in per_ds.items():
                    for feature, value in features.items():
                        entry = out.setdefault(feature, {}).setdefault(name, {}).setdefault(site, {})
                        if name == HISTOGRAM:
                            entry[ds] = [Bin(round(b.low_value, precision), round(b.high_value, precision),
                                             b.sample_count) for b in value.bins]
                        elif name == QUANTILE:
                            found = value.get("quantile", {}) if isinstance(value, dict) else {}
                            entry[ds] = {p: (None if v is None else round(v, precision)) for p, v in found.items()}
                        else:
                            entry[ds] = None if value is None else round(value, precision)
        for name, per_ds in self.global_statistics.items():
            if name not in configs:
                continue
            for ds, features in per_ds.items():
                for feature, value in features.items():
                    if feature not in out or name not in out[feature]:
                        continue
                    entry = out[feature][name].setdefault(GLOBAL, {})
                    entry[ds] = list(value.bins) if name == HISTOGRAM else value
        return out
