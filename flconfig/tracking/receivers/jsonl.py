"""Analytics records as JSON lines on the server, one file per site."""

from __future__ import annotations

import json
import logging
import os
from pathlib import Path
from typing import Any, ClassVar

from ...files import inside
from ...types import RunContext
from . import AnalyticsReceiver

log = logging.getLogger(__name__)


class JsonLinesReceiver(AnalyticsReceiver):
    """Appends each record as one JSON line to ``<run_dir>/<file_name>``: a tracker
    that needs no extra package.

    Each line is the record (see :mod:`flconfig.tracking.records`) with the
    site first: ``{"site": "site-1", "event_type": ..., "kind": "scalar",
    "tag": ..., "value": ..., "step": ..., "wall_time": ...}``. All sites share
    the file; lines of one site are in the order it logged them. NaN and
    infinite values are written as Python's ``json`` writes them (``NaN``,
    ``Infinity``).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"file_name": {
            "minLength": 1,
            "pattern": r"^(?!\.\.?$)[^/\\]+$",
            "patternErrorMessage": "a file name without a folder",
        }}

    def __init__(self, file_name: str = "analytics.jsonl", events: list[str] | None = None) -> None:
        """
        Args:
            file_name: name of the file in the run directory.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        super().__init__(events)
        self.file_name = file_name
        self.path: Path | None = None
        self._file: Any = None
        self._lines: list[str] = []

    def initialize(self, ctx: RunContext) -> None:
        self.path = inside(ctx.run_dir, self.file_name)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._file = open(self.path, "ab")  # noqa: SIM115 - closed in finalize

    def save(self, record: dict[str, Any], origin: str) -> None:
        self._lines.append(json.dumps({"site": origin, **record}, ensure_ascii=False))

    def after_batch(self) -> None:
        if self._lines:
            data = ("\n".join(self._lines) + "\n").encode("utf-8")
            start = self._file.seek(0, os.SEEK_END)
            try:
                self._file.write(data)
                self._file.flush()
            except OSError:
                self._file = _reopen_truncated(self._file, self.path, start)
                raise
            self._lines = []

    def discard(self) -> None:
        self._lines = []

    def finalize(self, ctx: RunContext) -> None:
        self.after_batch()
        self._file.close()


def _reopen_truncated(file: Any, path: Any, size: int) -> Any:
    """After a failed write: drop what the file object still buffers, cut the file
    back to ``size`` bytes (the end of its last complete line) and reopen it."""
    try:
        os.close(file.fileno())  # close the descriptor first: the buffer is never flushed
    except OSError:
        pass
    try:
        file.close()
    except OSError:
        pass
    os.truncate(path, size)
    return open(path, "ab")  # noqa: SIM115 - closed in finalize


