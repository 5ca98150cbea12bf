"""The seed job under flconfig and under NVIDIA FLARE 2.9.0, alternately (issue 8).

    python benchmarks/side_by_side.py [--pairs 3] [--flare-venv DIR] [--setup]

The seed job: 2 sites, 2 rounds of FedAvg, 5 local epochs of 16 steps (batch 32) on
synthetic 32×32 RGB images, a LeNet-style CNN, ``train_loss`` logged every step and
streamed to TensorBoard on the server. Both jobs are the same FLARE-format config
(FLARE's class paths: PTFileModelPersistor, ScatterAndGather, LearnerExecutor, TBWriter,
ConvertToFedEvent, TBAnalyticsReceiver ...); only the learner in ``custom/`` differs, each
written against its tool's Learner API and both calling the same training code
(``benchmarks/seed_job/seed_task.py``).

flconfig runs ``flconfig launch JOB`` (this venv); FLARE runs ``nvflare simulator JOB -n 2
-t 2`` in a venv of its own (``--setup`` creates it: ``torch==2.13.0`` then
``nvflare==2.9.0`` and tensorboard, which FLARE's TB receiver imports). Each run is timed
from start to exit; its peak memory is the sum of RSS (and PSS) over the process and all
its descendants, sampled every 0.1 s; and each run must exit 0 with both sites' ``train_loss`` in the server's TensorBoard files (read with
tensorboard's own reader). Runs alternate, flconfig then FLARE, ``--pairs`` times; the
result gives every pair's ratio and the medians. Also measured: time to the first error
on a broken job (a misspelt argument), with each tool's own command.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
SEED = HERE / "seed_job"
DEFAULT_VENV = ROOT / ".venvs" / "flare-2.9.0"


def job_folder(dest: Path, learner_module: str, learner_class: str = "SeedLearner",
               learner_args: dict[str, object] | None = None, num_rounds: int = 2) -> Path:
    """The seed job as a FLARE-format folder whose custom/ holds ``learner_module``
    (its ``learner_class``, with ``learner_args`` besides the analytics sender's id)."""
    app = dest / "app"
    (app / "config").mkdir(parents=True)
    (app / "custom").mkdir()
    for name in ("seed_task.py", f"{learner_module}.py"):
        shutil.copy(SEED / name, app / "custom" / name)
    meta = {"name": "seed_job", "resource_spec": {}, "min_clients": 2,
            "deploy_map": {"app": ["@ALL"]}}
    server = {
        "format_version": 2,
        "task_data_filters": [], "task_result_filters": [],
        "components": [
            {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
             "args": {"model": {"path": "seed_task.LeNet"}}},
            {"id": "shareable_generator",
             "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator."
                     "FullModelShareableGenerator", "args": {}},
            {"id": "aggregator",
             "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator."
                     "InTimeAccumulateWeightedAggregator", "args": {"expected_data_kind": "WEIGHTS"}},
            {"id": "tb_analytics_receiver",
             "path": "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver",
             "args": {"events": ["fed.analytix_log_stats"]}},
        ],
        "workflows": [{
            "id": "scatter_and_gather",
            "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
            "args": {"min_clients": 2, "num_rounds": num_rounds, "start_round": 0,
                     "wait_time_after_min_received": 0, "aggregator_id": "aggregator",
                     "persistor_id": "persistor", "shareable_generator_id": "shareable_generator",
                     "train_task_name": "train", "train_timeout": 0},
        }],
    }  # fmt: skip
    client = {
        "format_version": 2,
        "executors": [{
            "tasks": ["train"],
            "executor": {"id": "Executor",
                         "path": "nvflare.app_common.executors.learner_executor.LearnerExecutor",
                         "args": {"learner_id": "seed_learner"}},
        }],
        "task_result_filters": [], "task_data_filters": [],
        "components": [
            {"id": "seed_learner", "path": f"{learner_module}.{learner_class}",
             "args": {"analytic_sender_id": "analytic_sender", **(learner_args or {})}},
            {"id": "analytic_sender", "path": "nvflare.app_opt.tracking.tb.tb_writer.TBWriter",
             "args": {"event_type": "analytix_log_stats"}},
            {"id": "event_to_fed",
             "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
             "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}},
        ],
    }  # fmt: skip
    (dest / "meta.json").write_text(json.dumps(meta, indent=2))
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    return dest


def process_tree(root: int) -> set[int]:
    """``root`` and all its descendants, by parent links, not by session: FLARE's
    simulator starts each client worker in a session of its own."""
    parents: dict[int, int] = {}
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                fields = (proc / "stat").read_text().rpartition(")")[2].split()
                parents[int(proc.name)] = int(fields[1])
            except (OSError, IndexError, ValueError):
                continue
    tree, grew = {root}, True
    while grew:
        more = {pid for pid, parent in parents.items() if parent in tree and pid not in tree}
        tree |= more
        grew = bool(more)
    return tree


def flare_parser(description: str) -> argparse.ArgumentParser:
    """The command line the scripts run against FLARE share: ``--flare-venv``, ``--setup``."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--flare-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--setup", action="store_true", help="create the FLARE venv first")
    return parser


def find_flare(ns: argparse.Namespace) -> Path | None:
    """The ``nvflare`` command of ``ns.flare_venv`` (made first with ``--setup``), or None."""
    if ns.setup and not (ns.flare_venv / "bin" / "nvflare").exists():
        setup(ns.flare_venv)
    nvflare = ns.flare_venv / "bin" / "nvflare"
    if not nvflare.exists():
        print(f"no FLARE in {ns.flare_venv}: run with --setup (or --flare-venv DIR)")
        return None
    return nvflare


def tree_memory(root: int) -> tuple[float, float]:
    """(RSS MB, PSS MB) summed over ``root`` and all its descendants."""
    rss = pss = 0
    for pid in process_tree(root):
        try:
            for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss += int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss += int(line.split()[1])
        except (OSError, IndexError, ValueError):
            continue
    return rss / 1024, pss / 1024


def run(cmd: list[str], cwd: Path, env: dict[str, str] | None = None) -> dict[str, object]:
    """Run ``cmd``; its wall time, exit code and peak memory (all its processes)."""
    peak = [0.0, 0.0]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, cwd=cwd, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    done = threading.Event()

    def sample() -> None:
        while not done.is_set():
            rss, pss = tree_memory(proc.pid)
            peak[0], peak[1] = max(peak[0], rss), max(peak[1], pss)
            time.sleep(0.1)

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    out, _ = proc.communicate(timeout=900)
    wall = time.perf_counter() - start
    done.set()
    sampler.join()
    return {"wall_s": round(wall, 2), "rc": proc.returncode, "peak_rss_mb": round(peak[0]),
            "peak_pss_mb": round(peak[1]), "output_tail": out[-2000:]}


def sites_logged(tb_root: Path) -> int:
    """Folders under ``tb_root`` holding train_loss scalars (tensorboard's own reader)."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    found = 0
    for folder in {p.parent for p in tb_root.rglob("events.out.tfevents.*")}:
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        if "train_loss" in acc.Tags().get("scalars", []) and len(acc.Scalars("train_loss")) >= 160:
            found += 1
    return found


def setup(venv: Path) -> None:
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = [str(venv / "bin" / "pip"), "install", "--quiet"]
    subprocess.run([*pip, "torch==2.13.0"], check=True)  # the CPU wheel first, as for flconfig
    subprocess.run([*pip, "nvflare==2.9.0", "tensorboard"], check=True)  # its TB receiver needs it


def first_error(tool: str, job: Path, venv: Path) -> float:
    """Seconds until the tool reports a misspelt argument in the client config and exits."""
    broken = job.parent / f"{job.name}-broken"
    shutil.copytree(job, broken)
    config = broken / "app" / "config" / "config_fed_client.json"
    config.write_text(config.read_text().replace('"learner_id"', '"learner_idd"'))
    ws = broken.parent / f"ws-{broken.name}"
    if tool == "flconfig":
        cmd = [sys.executable, "-m", "flconfig", "launch", str(broken), "-w", str(ws)]
    else:
        cmd = [str(venv / "bin" / "nvflare"), "simulator", str(broken), "-w", str(ws), "-n", "2",
               "-t", "2"]
    start = time.perf_counter()
    subprocess.run(cmd, capture_output=True, text=True, timeout=900, cwd=broken.parent)
    return round(time.perf_counter() - start, 2)


def main() -> int:
    parser = flare_parser(__doc__.split("\n")[0])
    parser.add_argument("--pairs", type=int, default=3)
    ns = parser.parse_args()
    nvflare = find_flare(ns)
    if nvflare is None:
        return 2
    pairs = []
    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        ours = job_folder(base / "flconfig-job", "flconfig_seed_learner")
        theirs = job_folder(base / "flare-job", "flare_seed_learner")
        flare_env = {**os.environ, "PYTHONPATH": ""}
        for i in range(ns.pairs):
            ws_a, ws_b = base / f"ws-flconfig-{i}", base / f"ws-flare-{i}"
            a = run([sys.executable, "-m", "flconfig", "launch", str(ours), "-w", str(ws_a),
                     "--quiet-metrics"], base)
            a["sites_in_tensorboard"] = sites_logged(ws_a / "server")
            b = run([str(nvflare), "simulator", str(theirs), "-w", str(ws_b), "-n", "2", "-t", "2"],
                    base, env=flare_env)
            b["sites_in_tensorboard"] = sites_logged(ws_b)
            for name, r in (("flconfig", a), ("flare", b)):
                if r["rc"] != 0 or r["sites_in_tensorboard"] != 2:
                    print(f"{name} run {i + 1} failed:\n{r['output_tail']}")
                    return 1
                del r["output_tail"]
            pairs.append({"flconfig": a, "flare": b,
                          "wall_ratio": round(a["wall_s"] / b["wall_s"], 3),  # type: ignore[operator]
                          "rss_ratio": round(a["peak_rss_mb"] / b["peak_rss_mb"], 3),  # type: ignore[operator]
                          "pss_ratio": round(a["peak_pss_mb"] / b["peak_pss_mb"], 3)})  # type: ignore[operator]
            print(json.dumps(pairs[-1]), flush=True)
        errors = {"flconfig": first_error("flconfig", ours, ns.flare_venv),
                  "flare": first_error("flare", theirs, ns.flare_venv)}

    def median(key: str) -> float:
        return statistics.median(p[key] for p in pairs)

    result = {
        "benchmark": "side_by_side_seed_job",
        "pairs": len(pairs),
        "median_wall_s": {t: statistics.median(p[t]["wall_s"] for p in pairs)
                          for t in ("flconfig", "flare")},
        "median_peak_rss_mb": {t: statistics.median(p[t]["peak_rss_mb"] for p in pairs)
                               for t in ("flconfig", "flare")},
        "median_wall_ratio": median("wall_ratio"),
        "median_rss_ratio": median("rss_ratio"),
        "median_pss_ratio": median("pss_ratio"),
        "first_error_s": errors,
        "bars": {"wall_ratio": 0.2, "pss_ratio": 0.5},  # issue 24
    }
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
