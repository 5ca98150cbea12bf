"""ValidationJsonGenerator: writes cross-site validation results to a JSON file."""

from __future__ import annotations

import json
import logging
import math
from pathlib import Path
from typing import Any, ClassVar

from ..files import inside
from ..types import Event, EventType, FLModel, ReturnCode, RunContext
from .base import AppEventType, Widget, write_atomic

log = logging.getLogger(__name__)


class ValidationJsonGenerator(Widget):
    """Collects the validation results of cross-site evaluation and writes them,
    by site and model, to one JSON file (FLARE's ``ValidationJsonGenerator``).

    It listens to ``_validation_result_received``, which CrossSiteModelEval
    fires for every result, and at ``END_RUN`` writes
    ``{site: {model: metrics}}`` to ``<run dir>/<results_dir>/<json_file_name>``
    (atomically; nothing is written when no result arrived). Failed
    validations are left out, as in FLARE.

    CrossSiteModelEval also writes the same results to
    ``<run dir>/<cross_val_dir>/cross_val_results.json`` when it finishes,
    so this widget is only needed to get the file under another name or
    folder. With both defaults the two write the same file with the same
    content.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "results_dir": {
            "minLength": 1,
            "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
            "patternErrorMessage": "a relative path inside the run folder (no leading '/', drive or '..')",
        },
        "json_file_name": {
            "minLength": 1,
            "pattern": r"^(?!\.\.?$)[^/\\]+$",
            "patternErrorMessage": "a file name without a folder",
        },
    }

    def __init__(
        self,
        results_dir: str = "cross_site_val",
        json_file_name: str = "cross_val_results.json",
    ) -> None:
        """
        Args:
            results_dir: folder, relative to the server's run directory, of the file.
            json_file_name: name of the JSON file.
        """
        self.results_dir = results_dir
        self.json_file_name = json_file_name
        self._results: dict[str, dict[str, dict[str, Any]]] = {}

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Collect each validation result; write the file at END_RUN."""
        if event.type == EventType.START_RUN:
            self._results = {}
        elif event.type == AppEventType.VALIDATION_RESULT_RECEIVED:
            data = event.data if isinstance(event.data, dict) else {}
            site, model, result = (
                data.get("data_client"),
                data.get("model_owner"),
                data.get("result"),
            )
            if isinstance(site, str) and isinstance(model, str) and isinstance(result, FLModel):
                entry = validation_entry(result)
                if entry is not None:
                    self._results.setdefault(site, {})[model] = entry
        elif event.type == EventType.END_RUN and self._results:
            path = inside(ctx.run_dir, self.results_dir) / self.json_file_name
            write_json(path, self._results)
            (getattr(ctx, "log", None) or log).info(
                "wrote cross-site validation results to %s", path
            )


def validation_entry(result: FLModel) -> dict[str, Any] | None:
    """What the results file records for one validation: its metrics; None if it failed."""
    if result.rc != ReturnCode.OK:
        return None
    # NaN and infinities are not JSON: record them as null.
    return {
        name: None if isinstance(value, float) and not math.isfinite(value) else value
        for name, value in result.metrics.items()
    }


def write_json(path: Path, value: Any) -> None:
    """Write ``value`` as indented JSON, atomically."""
    text = json.dumps(value, indent=2, sort_keys=True, allow_nan=False) + "\n"
    write_atomic(path, text.encode("utf-8"))
