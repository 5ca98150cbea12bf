"""The seed job in POC mode (issue 10): `flconfig poc prepare/start`, then `flconfig submit`
of the example job, timed from the admin's side, against `flconfig launch` of the same job.

Measured per run: submit (the server validated and stored the job: the command's wall
time), submit → first task (the job's server log says "workflow ... started", right
before it broadcasts round 1), submit → finished (as `flconfig jobs` reports it), and
the scalars written per site, read back with TensorBoard's reader, against those of
the simulator's run.

    python benchmarks/deploy_poc.py [--runs 3]
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
TAGS = ("train_loss", "validation_accuracy")


def flconfig(*args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    result = subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                            env={**os.environ, **env}, timeout=600)
    if result.returncode != 0:
        raise SystemExit(f"flconfig {' '.join(args)} failed:\n{result.stdout}{result.stderr}")
    return result


def records(folder: Path) -> int:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    total = 0
    for site in sorted(p for p in folder.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(site), size_guidance={"scalars": 0})
        acc.Reload()
        total += sum(len(acc.Scalars(tag)) for tag in TAGS if tag in acc.Tags()["scalars"])
    return total


def first_task_at(log: Path) -> float:
    for line in log.read_text().splitlines():
        if "workflow scatter_and_gather (ScatterAndGather) started" in line:
            stamp = datetime.datetime.strptime(line[:23], "%Y-%m-%d %H:%M:%S,%f")
            return stamp.timestamp()
    raise SystemExit(f"no first task in {log}")


def one_job(env: dict[str, str], workspace: Path) -> dict[str, float | int]:
    start = time.time()
    out = flconfig("submit", str(EXAMPLE), env=env).stdout
    submitted = time.time() - start
    job_id = out.strip().splitlines()[-1].split()[2]
    while True:
        jobs = json.loads(flconfig("jobs", "--json", env=env).stdout)["jobs"]
        job = next(j for j in jobs if j["id"] == job_id)
        if job["state"] in ("finished", "failed", "aborted"):
            break
        time.sleep(0.1)
    if job["state"] != "finished":
        raise SystemExit(f"job {job_id} {job['state']}: {job['error']}")
    run = workspace / job_id
    return {"submit_s": round(submitted, 2), "first_task_s": round(first_task_at(run / "log.txt") - start, 2),
            "finished_s": round(float(job["ended_at"]) - start, 2),
            "records": records(run / "tb_events")}


def simulator(tmp: Path) -> dict[str, float | int]:
    start = time.time()
    subprocess.run([sys.executable, "-m", "flconfig", "launch", str(EXAMPLE), "-w", str(tmp / "sim"),
                    "--quiet-metrics"], check=True, capture_output=True, timeout=600)
    return {"wall_s": round(time.time() - start, 2),
            "records": records(tmp / "sim" / "server" / "simulate_job" / "tb_events")}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=int, default=3)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        env = {"FLCONFIG_POC_DIR": str(tmp / "poc")}
        t0 = time.time()
        flconfig("poc", "prepare", "-n", "2", "--port", "0", env=env)
        prepared = time.time() - t0
        t0 = time.time()
        flconfig("poc", "start", env=env)
        while len(json.loads(flconfig("jobs", "--json", env=env).stdout)["sites"]) < 2:
            time.sleep(0.1)
        started = time.time() - t0
        try:
            runs = [one_job(env, tmp / "poc" / "server" / "workspace") for _ in range(ns.runs)]
        finally:
            flconfig("poc", "stop", env=env)
        sim = simulator(tmp)
    result = {
        "benchmark": "deploy_poc",
        "poc_prepare_s": round(prepared, 2),
        "poc_start_to_sites_connected_s": round(started, 2),
        "runs": runs,
        "submit_s_median": statistics.median(r["submit_s"] for r in runs),
        "submit_to_first_task_s_median": statistics.median(r["first_task_s"] for r in runs),
        "submit_to_finished_s_median": statistics.median(r["finished_s"] for r in runs),
        "simulator": sim,
        "records_equal_to_simulator": all(r["records"] == sim["records"] for r in runs),
    }
    print(json.dumps(result, indent=2))
    return 0 if result["records_equal_to_simulator"] else 1


if __name__ == "__main__":
    sys.exit(main())
