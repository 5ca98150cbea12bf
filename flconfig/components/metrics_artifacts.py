"""MetricsArtifactWriter: the metrics of each round, and a summary, as FLARE 2.9 writes them.

FLARE 2.9 adds this widget to the server of every recipe built on ``BaseFedJob``. It
writes two files in the server's run folder (``<results_dir>/``, ``metrics/`` by default):

``round_metrics.jsonl``
    one compact JSON object per round, appended when the round's aggregate is in:
    ``{"round", "aggregated_metrics": [{"name", "value"}], "sites": [{"name", "metrics",
    "weight", "weight_key"}], "skipped_metrics": [{"name", "reason", "site"}]}``, plus
    ``aggregation`` and ``key_metric`` when the workflow describes them.
``metrics_summary.json``
    written at the end of the run when some round reported metrics: the final round and
    its aggregated metrics, the best round the model selector chose, the aggregation
    method (indented JSON).

Metric names are values, never keys, so a site cannot shape the JSON. A value is kept
when it is a bool, an int of at most ``max_int_bit_length`` bits or a finite float (a
site's metric may also be a string of at most ``max_string_value_length`` characters,
an aggregated one may not); any other value is listed in ``skipped_metrics`` with the
reason (``non_finite_number``, ``unsupported_type``, ``string_too_long``,
``number_too_large``, ``too_many_metrics``, ``too_many_sites``, ``empty_metric_name``,
``sites_truncated`` ...). ``limits`` bounds every list and both files' sizes.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

import json
import logging
import math
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ..files import inside, write_atomic
from ..types import Event, EventType, FLModel, RunContext
from .base import AppEventType, Widget, site_logger

log = logging.getLogger(__name__)

#: The meta key of an aggregate that describes how its metrics were aggregated (FLARE's).
METRICS_AGGREGATION_INFO = "metrics_aggregation_info"
#: The ``ctx.props`` key a model selector describes its choice under before it fires
#: ``_global_best_model_available`` (FLARE's ``METRICS_SELECTION_INFO``).
METRICS_SELECTION_INFO = "metrics_selection_info"
NUM_STEPS = "NUM_STEPS_CURRENT_ROUND"

#: The ``limits`` keys and their defaults (FLARE 2.9's).
DEFAULT_LIMITS: dict[str, int] = {
    "max_metric_name_length": 256,
    "max_string_value_length": 1024,
    "max_metrics_per_site_per_round": 512,
    "max_sites_per_round": 10000,
    "max_site_metric_records_per_round": 10000,
    "max_skipped_metrics_per_round": 1024,
    "max_round_record_bytes": 1048576,
    "max_summary_bytes": 1048576,
    "max_int_bit_length": 1023,
}
NOTES = [
    "Aggregated metrics are weighted averages of client-reported metric values.",
    "Nonlinear metrics are not recomputed from pooled predictions.",
]


class MetricsArtifactWriter(Widget):
    """Writes each round's aggregated and per-site metrics to ``round_metrics.jsonl`` and a
    summary to ``metrics_summary.json`` in the server's run folder (FLARE 2.9's
    ``MetricsArtifactWriter``; see the module docstring for the files).

    It listens to what the workflows fire: each accepted site result
    (``_after_contribution_accept``: the site's metrics and ``NUM_STEPS_CURRENT_ROUND``),
    each aggregate (``_after_aggregation``: the aggregated metrics, and the workflow's
    ``metrics_aggregation_info``), the model selector's choice
    (``_global_best_model_available``) and the end of the run. A round whose aggregate and
    sites carry no metrics writes no line; a run without any writes no summary.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "results_dir": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
                        "patternErrorMessage": "a relative path inside the run folder (no leading '/', "
                                               "drive or '..')"},
        "summary_file_name": {"minLength": 1, "pattern": r"^(?!\.\.?$)[^/\\]+$",
                              "patternErrorMessage": "a file name without a folder"},
        "round_file_name": {"minLength": 1, "pattern": r"^(?!\.\.?$)[^/\\]+$",
                            "patternErrorMessage": "a file name without a folder"},
        "limits": {"anyOf": [{"type": "null"}, {
            "type": "object",
            "properties": {
                "max_metric_name_length": {"type": "integer", "minimum": 0},
                "max_string_value_length": {"type": "integer", "minimum": 0},
                "max_metrics_per_site_per_round": {"type": "integer", "minimum": 0},
                "max_sites_per_round": {"type": "integer", "minimum": 0},
                "max_site_metric_records_per_round": {"type": "integer", "minimum": 0},
                "max_skipped_metrics_per_round": {"type": "integer", "minimum": 0},
                "max_round_record_bytes": {"type": "integer", "minimum": 0},
                "max_summary_bytes": {"type": "integer", "minimum": 0},
                "max_int_bit_length": {"type": "integer", "minimum": 0},
            },
            "additionalProperties": False}]},
    }

    def __init__(
        self,
        results_dir: str = "metrics",
        summary_file_name: str = "metrics_summary.json",
        round_file_name: str = "round_metrics.jsonl",
        limits: dict[str, int] | None = None,
    ) -> None:
        """
        Args:
            results_dir: folder of both files, inside the server's run folder.
            summary_file_name: the summary's file name.
            round_file_name: the per-round file's name (one JSON object a line).
            limits: bounds on names, values, lists and file sizes; the keys of
                ``DEFAULT_LIMITS``, each defaulting to FLARE's value.
        """
        self.results_dir = results_dir
        self.summary_file_name = summary_file_name
        self.round_file_name = round_file_name
        self.limits = limits
        self._limits = {**DEFAULT_LIMITS, **(limits or {})}
        self._reset()

    def _reset(self) -> None:
        self._has_metrics = False
        self._final_round: int | None = None
        self._final_metrics: list[dict[str, Any]] = []
        self._selection: dict[str, Any] | None = None
        self._key_metric: dict[str, Any] | None = None
        self._aggregation: dict[str, Any] | None = None
        self._metric_source: str | None = None
        self._metric_split: str | None = None
        self._round_sites: dict[Any, list[dict[str, Any]]] = {}
        self._round_skipped: dict[Any, list[dict[str, Any]]] = {}
        self._round_site_records: dict[Any, int] = {}
        self._silent_custom_rounds: list[Any] = []

    # -- events ---------------------------------------------------------------------

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Collect site metrics and aggregates as the rounds go; write the summary at the end."""
        if event.type == EventType.START_RUN:
            self._reset()
        elif event.type == AppEventType.AFTER_CONTRIBUTION_ACCEPT and isinstance(event.data, Mapping):
            self._contribution(event.data, ctx)
        elif event.type == AppEventType.AFTER_AGGREGATION and isinstance(event.data, FLModel):
            self._aggregated(event.data, ctx)
        elif event.type == AppEventType.GLOBAL_BEST_MODEL_AVAILABLE:
            self._best_model(ctx)
        elif event.type == EventType.END_RUN:
            self._write_summary(ctx)

    def _contribution(self, data: Mapping[str, Any], ctx: RunContext) -> None:
        result = data.get("result")
        if data.get("accepted") is False or not isinstance(result, FLModel) or not result.metrics:
            return
        site = str(data.get("site") or result.meta.get("client_name") or "?")
        current = _round_of(result, ctx)
        skipped: list[dict[str, Any]] = []
        metrics = self._metrics(result.metrics, site, skipped)
        self._merge(self._round_skipped.setdefault(current, []), skipped)
        if not metrics:
            return
        sites = self._round_sites.setdefault(current, [])
        if len(sites) >= self._limits["max_sites_per_round"]:
            self._merge(self._round_skipped[current], [self._skip(site, "", "too_many_sites")])
            return
        used = self._round_site_records.get(current, 0)
        if used + len(metrics) > self._limits["max_site_metric_records_per_round"]:
            self._merge(self._round_skipped[current], [self._skip(site, "", "too_many_metrics")])
            metrics = metrics[: max(0, self._limits["max_site_metric_records_per_round"] - used)]
            if not metrics:
                return
        self._round_site_records[current] = used + len(metrics)
        record: dict[str, Any] = {"name": self._text(site), "metrics": metrics}
        weight = self._weight(result.meta.get(NUM_STEPS))
        if weight is not None:
            record["weight"] = weight
            record["weight_key"] = NUM_STEPS
        sites.append(record)

    def _aggregated(self, model: FLModel, ctx: RunContext) -> None:
        info = model.meta.get(METRICS_AGGREGATION_INFO)
        info = info if isinstance(info, Mapping) else {}
        current = _round_of(model, ctx)
        skipped: list[dict[str, Any]] = []
        aggregated = self._metrics(model.metrics, None, skipped, aggregated=True)
        fallback_sites = self._round_sites.pop(current, [])
        fallback_skipped = self._round_skipped.pop(current, [])
        self._round_site_records.pop(current, None)
        sites = self._listed_sites(info.get("sites"), skipped)
        if not sites and info.get("use_contribution_sites", True) is not False:
            sites = fallback_sites
            self._merge(skipped, fallback_skipped)
        weights = self._site_weights(info.get("site_weights"), skipped)
        for site in sites:
            site.update(weights.get(site["name"], {}))
        if not aggregated and not sites and not skipped:
            if info.get("metric_source") == "custom_aggregator_flmodel_metrics":
                self._silent_custom_rounds.append(current)
            return
        record: dict[str, Any] = {"round": current, "aggregated_metrics": aggregated, "sites": sites,
                                  "skipped_metrics": skipped}
        aggregation = self._plain(info.get("aggregation"))
        if aggregation:
            record["aggregation"] = aggregation
        key_metric = self._key_metric_of(info.get("key_metric"))
        if key_metric:
            record["key_metric"] = key_metric
        self._append(ctx, record)
        self._has_metrics = True
        self._final_round = current
        self._final_metrics = aggregated
        self._metric_source = self._text_or_none(info.get("metric_source"))
        self._metric_split = self._text_or_none(info.get("metric_split"))
        self._aggregation = aggregation or self._aggregation
        self._key_metric = key_metric or self._key_metric

    def _best_model(self, ctx: RunContext) -> None:
        selection = (getattr(ctx, "props", None) or {}).get(METRICS_SELECTION_INFO)
        if not isinstance(selection, Mapping):
            return
        chosen: dict[str, Any] = {}
        best_round = selection.get("best_round")
        if isinstance(best_round, int) and not isinstance(best_round, bool):
            chosen["best_round"] = best_round
        for field in ("best_metrics", "best_aggregated_metrics"):
            metrics = self._metric_list(selection.get(field))
            if metrics:
                chosen[field] = metrics
        key_metric = self._key_metric_of(selection.get("key_metric"))
        if key_metric:
            chosen["key_metric"] = key_metric
            self._key_metric = key_metric
        for source, target in (("source", "best_metric_source"), ("metric_source", "best_metric_detail_source")):
            text = self._text_or_none(selection.get(source))
            if text:
                chosen[target] = text
        if chosen:
            self._selection = chosen

    # -- files ----------------------------------------------------------------------

    def _paths(self, ctx: RunContext) -> tuple[Path, Path]:
        folder = inside(ctx.run_dir, self.results_dir)
        return inside(folder, self.round_file_name), inside(folder, self.summary_file_name)

    def _append(self, ctx: RunContext, record: dict[str, Any]) -> None:
        limit = self._limits["max_round_record_bytes"]
        record = self._fit(record)
        line = _dumps(record)
        if line is None or len(line.encode("utf-8")) > limit:
            reason = "serialization_failed" if line is None else "round_record_too_large"
            line = _dumps({"round": record["round"],
                           "aggregated_metrics": self._fit_list(record["aggregated_metrics"], limit),
                           "sites": [], "skipped_metrics": [{"name": "", "reason": reason}]})
            if line is None or len(line.encode("utf-8")) > limit:
                return
        path, _ = self._paths(ctx)
        path.parent.mkdir(parents=True, exist_ok=True)
        with path.open("a", encoding="utf-8") as out:
            out.write(line + "\n")

    def _write_summary(self, ctx: RunContext) -> None:
        if self._silent_custom_rounds:
            rounds = self._silent_custom_rounds
            shown = (str(rounds) if len(rounds) <= 10
                     else f"{len(rounds)} rounds (first={rounds[0]}, last={rounds[-1]})")
            site_logger(ctx, log).warning(
                "MetricsArtifactWriter wrote no metrics for round(s) %s: the custom aggregator's results "
                "carry no FLModel.metrics; return the aggregated metrics in FLModel.metrics to have them "
                "written", shown)
        if not self._has_metrics:
            return
        summary: dict[str, Any] = {
            "schema_version": "1",
            "status": "metrics_reported",
            "final_round": self._final_round,
            "final_aggregated_metrics": self._final_metrics,
            "round_metrics_file": self.round_file_name,
            "notes": list(NOTES),
        }
        props = getattr(ctx, "props", None) or {}
        job_name = self._text_or_none(props.get("job_name")) or self._text_or_none(getattr(ctx, "job_id", None))
        if job_name:
            summary["job_name"] = job_name
        if self._metric_source:
            summary["metric_source"] = self._metric_source
        if self._metric_split:
            summary["metric_split"] = self._metric_split
        selection = self._selection or {}
        key_metric = selection.get("key_metric") or self._key_metric
        if key_metric:
            summary["key_metric"] = key_metric
        for field in ("best_round", "best_metrics", "best_aggregated_metrics", "best_metric_source",
                      "best_metric_detail_source"):
            if field in selection:
                summary[field] = selection[field]
        if self._aggregation:
            summary["aggregation"] = self._aggregation
        text = _dumps(summary, indent=2)
        if text is not None and len(text.encode("utf-8")) > self._limits["max_summary_bytes"]:
            summary.pop("notes")
            text = _dumps(summary, indent=2)
        if text is None or len(text.encode("utf-8")) > self._limits["max_summary_bytes"]:
            site_logger(ctx, log).warning("MetricsArtifactWriter: the metrics summary exceeds max_summary_bytes; not written")
            return
        _, path = self._paths(ctx)
        write_atomic(path, text.encode("utf-8"))

    # -- values ---------------------------------------------------------------------

    def _fit(self, record: dict[str, Any]) -> dict[str, Any]:
        """``record`` with as many sites and skipped entries as ``max_round_record_bytes`` allows."""
        limit = self._limits["max_round_record_bytes"]
        fitted: dict[str, Any] = {"round": record["round"],
                                  "aggregated_metrics": self._fit_list(record["aggregated_metrics"], limit),
                                  "sites": [], "skipped_metrics": []}
        for field in ("aggregation", "key_metric"):
            if field in record:
                fitted[field] = record[field]
        used = len((_dumps(fitted) or "").encode("utf-8"))
        for field in ("sites", "skipped_metrics"):
            for item in record[field]:
                text = _dumps(item)
                if text is None:
                    continue
                if used + len(text.encode("utf-8")) + 2 > limit:
                    fitted["skipped_metrics"].append({"name": "", "reason": f"{field}_truncated"})
                    return fitted
                fitted[field].append(item)
                used += len(text.encode("utf-8")) + 2
        return fitted

    @staticmethod
    def _fit_list(items: list[Any], limit: int) -> list[Any]:
        out, used = [], 0
        for item in items:
            text = _dumps(item)
            if text is None:
                continue
            used += len(text.encode("utf-8")) + 1
            if used > limit:
                break
            out.append(item)
        return out

    def _metrics(self, metrics: Any, site: str | None, skipped: list[dict[str, Any]],
                 aggregated: bool = False) -> list[dict[str, Any]]:
        """``[{"name", "value"}]`` of the values that may be written; the others in ``skipped``."""
        if not isinstance(metrics, Mapping):
            return []
        out: list[dict[str, Any]] = []
        for name, value in metrics.items():
            if len(out) >= self._limits["max_metrics_per_site_per_round"]:
                self._merge(skipped, [self._skip(site, name, "too_many_metrics")])
                break
            if not isinstance(name, str):
                self._merge(skipped, [self._skip(site, "", "non_string_metric_name")])
                continue
            clean = self._text(name)
            if not clean:
                self._merge(skipped, [self._skip(site, "", "empty_metric_name")])
                continue
            kept, reason = self._value(value, aggregated)
            if reason is not None:
                self._merge(skipped, [self._skip(site, clean, reason)])
                continue
            out.append({"name": clean, "value": kept})
        return out

    def _metric_list(self, metrics: Any) -> list[dict[str, Any]]:
        """A selector's metrics (a dict, or a list of ``{"name", "value"}``) as written."""
        if isinstance(metrics, Mapping):
            return self._metrics(metrics, None, [], aggregated=True)
        out: list[dict[str, Any]] = []
        for item in metrics if isinstance(metrics, list) else []:
            if len(out) >= self._limits["max_metrics_per_site_per_round"]:
                break
            name = item.get("name") if isinstance(item, Mapping) else None
            if not isinstance(name, str) or not self._text(name):
                continue
            kept, reason = self._value(item.get("value"), True)
            if reason is None:
                out.append({"name": self._text(name), "value": kept})
        return out

    def _value(self, value: Any, aggregated: bool) -> tuple[Any, str | None]:
        value = _scalar(value)
        if isinstance(value, bool):
            return value, None
        if isinstance(value, int):
            if value.bit_length() > self._limits["max_int_bit_length"]:
                return None, "number_too_large"
            return value, None
        if isinstance(value, float):
            return (value, None) if math.isfinite(value) else (None, "non_finite_number")
        if isinstance(value, str) and not aggregated:
            if len(value) > self._limits["max_string_value_length"]:
                return None, "string_too_long"
            return _printable(value), None
        return None, "unsupported_type"

    def _weight(self, value: Any) -> int | float | None:
        value = _scalar(value)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            return None
        if isinstance(value, int) and value.bit_length() > self._limits["max_int_bit_length"]:
            return None
        if isinstance(value, float) and not math.isfinite(value):
            return None
        return value if value > 0 else None

    def _listed_sites(self, sites: Any, skipped: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The per-site metrics a workflow listed itself in ``metrics_aggregation_info["sites"]``."""
        out: list[dict[str, Any]] = []
        records = 0
        for site in sites if isinstance(sites, list) else []:
            if not isinstance(site, Mapping):
                continue
            if len(out) >= self._limits["max_sites_per_round"]:
                self._merge(skipped, [self._skip(site.get("name"), "", "too_many_sites")])
                break
            metrics = self._metrics(site.get("metrics"), site.get("name"), skipped)
            if not metrics:
                continue
            allowed = self._limits["max_site_metric_records_per_round"] - records
            if len(metrics) > allowed:
                self._merge(skipped, [self._skip(site.get("name"), "", "too_many_metrics")])
                metrics = metrics[: max(0, allowed)]
                if not metrics:
                    break
            records += len(metrics)
            entry: dict[str, Any] = {"name": self._text(site.get("name", "")), "metrics": metrics}
            weight = self._weight(site.get("weight"))
            if weight is not None:
                entry["weight"] = weight
            weight_key = self._text_or_none(site.get("weight_key"))
            if weight_key:
                entry["weight_key"] = weight_key
            out.append(entry)
        return out

    def _site_weights(self, weights: Any, skipped: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for item in weights if isinstance(weights, list) else []:
            if not isinstance(item, Mapping):
                continue
            if len(out) >= self._limits["max_sites_per_round"]:
                self._merge(skipped, [self._skip(item.get("name"), "", "too_many_sites")])
                break
            name = self._text(item.get("name", ""))
            entry: dict[str, Any] = {}
            weight = self._weight(item.get("weight"))
            if weight is not None:
                entry["weight"] = weight
            weight_key = self._text_or_none(item.get("weight_key"))
            if weight_key:
                entry["weight_key"] = weight_key
            if name and entry:
                out[name] = entry
        return out

    def _key_metric_of(self, value: Any) -> dict[str, Any] | None:
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str) or not value["name"]:
            return None
        out: dict[str, Any] = {"name": self._text(value["name"])}
        if value.get("mode") in ("max", "min"):
            out["mode"] = value["mode"]
        source = self._text_or_none(value.get("mode_source"))
        if source:
            out["mode_source"] = source
        return out

    def _plain(self, value: Any) -> Any:
        """A workflow's description as JSON: string keys, values that may be written."""
        if isinstance(value, Mapping):
            return {self._text(k): v for k, v in ((k, self._plain(c)) for k, c in value.items()
                                                  if isinstance(k, str)) if v is not None}
        if isinstance(value, list):
            return [v for v in (self._plain(c) for c in value) if v is not None]
        kept, reason = self._value(value, False)
        return None if reason is not None else kept

    def _skip(self, site: Any, name: Any, reason: str) -> dict[str, Any]:
        entry: dict[str, Any] = {"name": self._text(name), "reason": reason}
        if site is not None:
            entry["site"] = self._text(site)
        return entry

    def _merge(self, target: list[dict[str, Any]], entries: list[dict[str, Any]]) -> None:
        room = self._limits["max_skipped_metrics_per_round"] - len(target)
        target.extend(entries[: max(0, room)])

    def _text(self, value: Any) -> str:
        return _printable(value[: self._limits["max_metric_name_length"]]) if isinstance(value, str) else ""

    def _text_or_none(self, value: Any) -> str | None:
        return self._text(value) if isinstance(value, str) else None


def _round_of(model: FLModel, ctx: RunContext) -> Any:
    """The round a result or aggregate belongs to: its meta's, else the workflow's current one."""
    value = model.meta.get("current_round")
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    value = (getattr(ctx, "props", None) or {}).get("current_round")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _scalar(value: Any) -> Any:
    """A numpy scalar as the Python value it holds; anything else as it is."""
    item = getattr(value, "item", None)
    if type(value).__module__ == "numpy" and callable(item) and getattr(value, "shape", None) == ():
        try:
            return item()
        except (TypeError, ValueError, OverflowError):
            return value
    return value


def _printable(text: str) -> str:
    """``text`` without control characters (a line of the file stays one line)."""
    return "".join(ch for ch in text if ord(ch) >= 32 and ch != "\x7f")


def _dumps(value: Any, indent: int | None = None) -> str | None:
    try:
        return json.dumps(value, allow_nan=False, indent=indent,
                          separators=None if indent else (",", ":"))
    except (TypeError, ValueError, OverflowError):
        return None

