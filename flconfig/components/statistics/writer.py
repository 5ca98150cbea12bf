"""JsonStatsFileWriter: the combined statistics as the JSON file FLARE writes."""

from __future__ import annotations

import json
import logging
from typing import Any, ClassVar

from ...files import inside, write_atomic
from ...types import RunContext
from ..base import Component
from ._values import plain

log = logging.getLogger(__name__)


class _Encoder(json.JSONEncoder):
    """FLARE's ObjectEncoder for what statistics hold: numpy scalars and arrays."""

    def default(self, obj: Any) -> Any:
        value = plain(obj)
        if value is not obj:
            return value
        if hasattr(obj, "tolist"):
            return obj.tolist()
        return super().default(obj)


class JsonStatsFileWriter(Component):
    """Writes the statistics StatisticsController combined to ``output_path`` in the server's run
    folder (FLARE's ``JsonStatsFileWriter``), as FLARE writes them: one JSON object,
    ``{feature: {statistic: {site or "Global": {dataset: value}}}}``, a histogram as a list of
    ``[low, high, count]`` buckets, quantiles as ``{percentile: value}``.

    ``output_path`` is relative (``statistics/adults_stats.json``): FLARE resolves it against
    the job's folder on the server, flconfig against the server's run folder of the job, and
    both refuse a path that leaves it. The file is replaced atomically.
    """

    kind = "statistics_writer"
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "output_path": {"minLength": 1, "pattern": r"^(?![/\\])(?!.:)(?!(.*[/\\])?\.\.([/\\]|$))",
                        "patternErrorMessage": "a relative path inside the job's run folder (no leading '/', "
                                               "drive or '..')"},
        "json_encoder_path": {"enum": ["", "nvflare.app_common.utils.json_utils.ObjectEncoder"],
                              "description": "FLARE's built-in encoder (flconfig's own does the same); a job's "
                                             "own encoder class is not supported yet"},
    }

    def __init__(self, output_path: str, json_encoder_path: str = "") -> None:
        """
        Args:
            output_path: the file, relative to the server's run folder of the job.
            json_encoder_path: FLARE's ObjectEncoder or "" (both: numpy values as numbers).
        """
        self.output_path = output_path
        self.json_encoder_path = json_encoder_path

    def save(self, data: dict[str, Any], overwrite_existing: bool, ctx: RunContext) -> None:
        """Write ``data``; with ``overwrite_existing`` false, an existing file is an error."""
        path = inside(ctx.run_dir, self.output_path)
        if path.exists() and not overwrite_existing:
            raise FileExistsError(f"{path} exists and overwrite_existing is false")
        write_atomic(path, json.dumps(data, cls=_Encoder).encode("utf-8"))
        (getattr(ctx, "log", None) or log).info("statistics saved to %s", path)
