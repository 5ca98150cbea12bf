"""``flconfig runs [WORKSPACE]``: every run of a workspace, with its status, time and metrics."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..runs import RunRecord, runs, with_metrics
from ..runs.plot import plot_run
from . import path_problem

EXAMPLES = """examples:
  flconfig runs                                 the runs in ./workspace
  flconfig runs ws --format json                for scripts
  flconfig runs ws --plot RUN                   draw RUN's metrics into ws/server/RUN/metrics.png
  flconfig runs ws --plot RUN -o curves.png
"""


def register(sub: Any) -> None:
    """Add the ``runs`` subcommand."""
    parser = sub.add_parser(
        "runs", help="list the runs of a workspace: status, time, metrics",
        description="List every run flconfig launch recorded in a workspace, oldest first: its "
                    "id, job, status (running, finished, failed, interrupted), start, duration, "
                    "sites, and each metric's last value averaged over the sites; or draw one "
                    "run's metrics (--plot).",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("workspace", nargs="?", default="workspace", metavar="WORKSPACE",
                        help="the launch's workspace (default: ./workspace)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.add_argument("--plot", metavar="RUN", help="draw this run's metrics as a PNG")
    parser.add_argument("-o", "--output", metavar="PNG",
                        help="where --plot writes (default: the run's server folder, metrics.png)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """List the runs, or plot one."""
    workspace = Path(ns.workspace)
    problem = path_problem(workspace) or (None if workspace.is_dir() else (
        f"{workspace} is a file, not a workspace" if workspace.exists() else f"{workspace}: no such workspace"))
    if problem is not None:
        print(f"flconfig runs: {problem}", file=sys.stderr)
        return 2
    records, damaged = runs(workspace)
    for path in damaged:
        print(f"flconfig runs: note: {path} is not a run record flconfig can read; left out", file=sys.stderr)
    found = [with_metrics(workspace, r) for r in records]
    if ns.plot is not None:
        return _plot(workspace, found, ns.plot, ns.output)
    if ns.format == "json":
        print(json.dumps([r.as_json() for r in found], indent=2))
    elif not found:
        print(f"no runs in {workspace} (each flconfig launch JOB -w {workspace} records one)")
    else:
        print(table(found))
    return 0


def _plot(workspace: Path, found: list[RunRecord], run_id: str, output: str | None) -> int:
    record = next((r for r in found if r.run_id == run_id), None)
    if record is None:
        known = ", ".join(r.run_id for r in found[-5:]) or "none"
        print(f"flconfig runs: no run {run_id!r} in {workspace} (the latest: {known})", file=sys.stderr)
        return 2
    if not record.tb_folder or not (workspace / record.tb_folder).is_dir():
        print(f"flconfig runs: run {run_id} has no TensorBoard files to draw", file=sys.stderr)
        return 1
    out = Path(output) if output else workspace / "server" / run_id / "metrics.png"
    try:
        tags = plot_run(workspace / record.tb_folder, out, title=f"{record.job}: {run_id}")
    except ValueError as exc:
        print(f"flconfig runs: {exc}", file=sys.stderr)
        return 1
    print(f"flconfig: drew {', '.join(tags)} of run {run_id} into {out}")
    return 0


def _metrics(record: RunRecord) -> str:
    """Each metric's last value, averaged over the sites that logged it."""
    words = []
    for tag, by_site in sorted((record.metrics or {}).items()):
        if by_site:
            words.append(f"{tag} {sum(by_site.values()) / len(by_site):.4g}")
    return ", ".join(words) or "-"


def table(found: list[RunRecord]) -> str:
    """The runs, one line each, in aligned columns."""
    rows = [("RUN", "JOB", "STATUS", "STARTED", "TIME", "SITES", "METRICS (last, mean over sites)")]
    for r in found:
        took = f"{r.elapsed_s:.1f} s" if r.elapsed_s is not None else "-"
        rows.append((r.run_id, r.job, r.status, r.started_text, took, str(len(r.sites)), _metrics(r)))
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]) - 1)]
    return "\n".join("  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=False)) + "  " + row[-1]
                     for row in rows)
