"""Runs: each ``flconfig launch`` under a workspace, recorded so that none overwrites another
and every one can be found again (``flconfig runs``).

A run has an id (``--job-id``, else the job's name and the time it started, made unique
in the workspace), its results in ``WORKSPACE/server/RUN/`` and ``WORKSPACE/SITE/RUN/``,
and a record, ``WORKSPACE/server/RUN/run.json``, written when it starts and again when it
ends: what ran, when, how it ended. A record still saying "running" whose launcher is gone
is read as "interrupted". The metrics of a run (each site's last value of each scalar) are
read from its TensorBoard files when first asked for, and kept in the record.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

from ..files import write_atomic

RECORD_FILE = "run.json"
#: Where a run's server results live under the workspace.
SERVER_FOLDER = "server"
#: What a run's status may be.
STATUSES = ("running", "finished", "failed", "interrupted")


@dataclass(frozen=True)
class RunRecord:
    """What is known of one run."""

    run_id: str
    job: str
    #: The job folder as given to the launch.
    job_path: str
    #: When it started: seconds since the epoch.
    started: float
    status: str = "running"
    #: Seconds it took (once ended).
    elapsed_s: float | None = None
    exit_code: int | None = None
    sites: tuple[str, ...] = ()
    #: The launching process (to tell a run still going from one cut off).
    pid: int = 0
    backend: str = "process"
    #: The run's TensorBoard folder, relative to the workspace ("" when the job has none).
    tb_folder: str = ""
    #: What went wrong, in one line (failed runs).
    error: str = ""
    #: Tag -> {site: the site's last value}; None until read from the TensorBoard files.
    metrics: Mapping[str, Mapping[str, float]] | None = field(default=None, compare=False)

    @property
    def started_text(self) -> str:
        """The start as local date and time."""
        return _dt.datetime.fromtimestamp(self.started).strftime("%Y-%m-%d %H:%M:%S")

    def as_json(self) -> dict[str, Any]:
        """The record as run.json holds it."""
        data = asdict(self)
        data["sites"] = list(self.sites)
        return data


def record_path(workspace: Path, run_id: str) -> Path:
    """Where the record of ``run_id`` is."""
    return workspace / SERVER_FOLDER / run_id / RECORD_FILE


def new_run_id(workspace: Path, job_name: str, now: float | None = None) -> str:
    """An id for a new run of ``job_name`` that no run in ``workspace`` has: the job's name
    and the time, e.g. ``tensorboard-streaming-20261207-223015``."""
    stamp = time.strftime("%Y%m%d-%H%M%S", time.localtime(time.time() if now is None else now))
    base = f"{re.sub(r'[^A-Za-z0-9._-]+', '-', job_name).strip('-.') or 'run'}-{stamp}"[-120:].lstrip("-.")
    run_id, n = base, 1
    while (workspace / SERVER_FOLDER / run_id).exists():
        n += 1
        run_id = f"{base}-{n}"
    return run_id


def write_record(workspace: Path, record: RunRecord) -> None:
    """Write (or replace) the record of ``record.run_id``, atomically."""
    path = record_path(workspace, record.run_id)
    path.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(path, (json.dumps(record.as_json(), indent=2) + "\n").encode())


def ended(record: RunRecord, exit_code: int, error: str = "") -> RunRecord:
    """``record`` once its launch returned ``exit_code``."""
    status = "finished" if exit_code == 0 else ("interrupted" if exit_code == 130 else "failed")
    return replace(record, status=status, exit_code=exit_code, error=error,
                   elapsed_s=round(time.time() - record.started, 1))


def read_record(path: Path) -> RunRecord | None:
    """The record in ``path``; None if it is not a record (unreadable, or not ours)."""
    try:
        data = json.loads(path.read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(data, dict) or not isinstance(data.get("run_id"), str):
        return None
    if not _well_formed(data):
        return None
    known = {f for f in RunRecord.__dataclass_fields__}
    values = {k: v for k, v in data.items() if k in known}
    values["sites"] = tuple(values.get("sites") or ())
    try:
        record = RunRecord(**values)
    except TypeError:
        return None
    if record.status == "running" and not _alive(record.pid):
        record = replace(record, status="interrupted")
    return record


#: The type each field of a record must have (a record written by hand or damaged is skipped).
_FIELD_TYPES: dict[str, tuple[type, ...]] = {
    "run_id": (str,), "job": (str,), "job_path": (str,), "started": (int, float), "status": (str,),
    "elapsed_s": (int, float, type(None)), "exit_code": (int, type(None)), "sites": (list,),
    "pid": (int,), "backend": (str,), "tb_folder": (str,), "error": (str,), "metrics": (dict, type(None)),
}


def _well_formed(data: dict[str, Any]) -> bool:
    for key, types in _FIELD_TYPES.items():
        if key in data and (not isinstance(data[key], types) or isinstance(data[key], bool)):
            return False
    started = data.get("started")
    return (isinstance(started, (int, float)) and 0 <= started < 1e11 and data.get("status") in STATUSES
            and all(isinstance(site, str) for site in data.get("sites") or ())
            and not Path(str(data["run_id"])).is_absolute() and "/" not in data["run_id"])


def runs(workspace: Path) -> tuple[list[RunRecord], list[Path]]:
    """Every run recorded in ``workspace``, oldest first; and the record files that could
    not be read as one (damaged, or not flconfig's)."""
    found: list[RunRecord] = []
    damaged: list[Path] = []
    for path in _record_files(workspace):
        record = read_record(path)
        if record is None:
            damaged.append(path)
        else:
            found.append(record)
    return sorted(found, key=lambda r: (r.started, r.run_id)), damaged


def _record_files(workspace: Path) -> Iterator[Path]:
    folder = workspace / SERVER_FOLDER
    if folder.is_dir():
        yield from (p / RECORD_FILE for p in sorted(folder.iterdir()) if (p / RECORD_FILE).is_file())


def _alive(pid: int) -> bool:
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def with_metrics(workspace: Path, record: RunRecord) -> RunRecord:
    """``record`` with its metrics, read from its TensorBoard files once and then kept in
    its record (a run still going is read afresh each time)."""
    if record.metrics is not None or not record.tb_folder:
        return record
    tb_dir = workspace / record.tb_folder
    metrics = last_values(tb_dir) if tb_dir.is_dir() else {}
    updated = replace(record, metrics=metrics)
    if record.status != "running":
        try:
            write_record(workspace, updated)
        except OSError:
            pass  # a read-only workspace: read again next time
    return updated


def site_scalars(tb_dir: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Site -> tag -> [(step, value)] of every scalar in a run's TensorBoard folder (one
    folder per site), read with TensorBoard's own reader."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    out: dict[str, dict[str, list[tuple[int, float]]]] = {}
    for folder in sorted(p for p in tb_dir.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        tags = acc.Tags().get("scalars", [])
        if tags:
            out[folder.name] = {tag: [(e.step, e.value) for e in acc.Scalars(tag)] for tag in tags}
    return out


def last_values(tb_dir: Path) -> dict[str, dict[str, float]]:
    """Tag -> site -> the site's last value of that scalar."""
    out: dict[str, dict[str, float]] = {}
    for site, tags in site_scalars(tb_dir).items():
        for tag, points in tags.items():
            if points and math.isfinite(points[-1][1]):  # NaN or inf: not a value to average
                out.setdefault(tag, {})[site] = points[-1][1]
    return out
