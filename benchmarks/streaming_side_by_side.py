"""Streaming side by side: N scalars from a learner to the server's TensorBoard files, under
flconfig and under NVIDIA FLARE 2.9.0, alternately (issue 8).

    python benchmarks/streaming_side_by_side.py [--scalars 10000,100000,1000000] [--pairs 1]
                                                [--timeout 600] [--flare-venv DIR] [--setup]

The seed job's configuration (FLARE's class paths: TBWriter, ConvertToFedEvent,
TBAnalyticsReceiver, ScatterAndGather ...), one round, 2 sites; each site's learner does
nothing but ``add_scalar("stream", float(step), step)`` N/2 times, each written against its
tool's Learner API (``seed_job/*_stream_learner.py``). Each run is timed from start to exit,
with a limit (``--timeout``); afterwards the scalars in the server's TensorBoard files are
counted with tensorboard's own reader, so a run that timed out or lost records shows what
arrived. FLARE runs ``nvflare simulator -n 2 -t 2`` in its own venv (``side_by_side.py
--setup`` makes it). Flower has no counterpart (it streams no metrics to a server's
TensorBoard), so it is not in this comparison.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import find_flare, flare_parser, job_folder, process_tree  # noqa: E402


def timed(cmd: list[str], cwd: Path, timeout: float, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``cmd`` up to ``timeout`` s; wall time and exit code (None: stopped at the limit)."""
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        rc: int | None = proc.wait(timeout=timeout)
    except subprocess.TimeoutExpired:
        for pid in process_tree(proc.pid):
            try:
                os.kill(pid, signal.SIGKILL)
            except OSError:
                pass
        proc.wait()
        rc = None
    return {"wall_s": round(time.perf_counter() - start, 2), "rc": rc}


def scalars_written(root: Path) -> int:
    """How many ``stream`` scalars the TensorBoard files under ``root`` hold, all sites."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    total = 0
    for folder in {p.parent for p in root.rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        if "stream" in acc.Tags().get("scalars", []):
            total += len(acc.Scalars("stream"))
    return total


def main() -> int:
    parser = flare_parser(__doc__.split("\n")[0])
    parser.add_argument("--scalars", default="10000,100000,1000000")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--timeout", type=float, default=600.0)
    ns = parser.parse_args()
    nvflare = find_flare(ns)
    if nvflare is None:
        return 2
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        for n in (int(x) for x in ns.scalars.split(",")):
            args = {"scalars": n // 2}
            ours = job_folder(base / f"flconfig-{n}", "flconfig_stream_learner", "StreamLearner",
                              args, num_rounds=1)
            theirs = job_folder(base / f"flare-{n}", "flare_stream_learner", "StreamLearner",
                                args, num_rounds=1)
            for i in range(ns.pairs):
                ws_a, ws_b = base / f"ws-a-{n}-{i}", base / f"ws-b-{n}-{i}"
                a = timed([sys.executable, "-m", "flconfig", "launch", str(ours), "-w", str(ws_a),
                           "--quiet-metrics"], base, ns.timeout)
                a["scalars_in_tensorboard"] = scalars_written(ws_a / "server")
                b = timed([str(nvflare), "simulator", str(theirs), "-w", str(ws_b), "-n", "2",
                           "-t", "2"], base, ns.timeout, env={**os.environ, "PYTHONPATH": ""})
                b["scalars_in_tensorboard"] = scalars_written(ws_b)
                for r in (a, b):
                    r["per_s"] = round(int(r["scalars_in_tensorboard"]) / float(r["wall_s"]))  # type: ignore[call-overload]
                row = {"scalars": n, "flconfig": a, "flare": b,
                       "wall_ratio": round(float(a["wall_s"]) / float(b["wall_s"]), 3)}  # type: ignore[arg-type]
                print(json.dumps(row), flush=True)
                rows.append(row)
    print(json.dumps({"benchmark": "streaming_side_by_side", "rows": rows}, indent=2))
    ok = all(r["flconfig"]["rc"] == 0 and r["flconfig"]["scalars_in_tensorboard"] == r["scalars"]  # type: ignore[index]
             for r in rows)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
