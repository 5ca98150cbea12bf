"""The seed recipe script under NVIDIA FLARE 2.9.0 and under flconfig, alternately (issue 22).

    python benchmarks/job_script_side_by_side.py [--pairs 3] [--num-rounds 5]
                                                 [--flare-venv DIR] [--setup] [--json OUT]
                                                 [--flare-threads N]

The seed recipe script is ``examples/job-api-tensorboard`` as it stands: ``job.py``
(FedAvgRecipe, 2 sites, ``add_experiment_tracking(recipe, "tensorboard")``, SimEnv),
``client.py`` (FLARE's Client API on synthetic CIFAR-shaped data, 320 images a site in
batches of 16, one local epoch: ``train_loss`` at every step, ``local_accuracy`` once a
round, through FLARE's SummaryWriter) and ``model.py``. Its three files are copied
unchanged into a fresh folder for every run, and the same script runs under both tools with
``--num_rounds N --workspace_root WS``: FLARE runs ``python job.py`` with its own venv's
python (``side_by_side.py``'s ``--setup`` makes one; default ``/tmp/flare-venv``), flconfig
runs ``flconfig run job.py`` (this venv); each with the copy as its working folder.

Measured as in ``side_by_side.py``: each run timed from start to exit; its peak memory the
sum of RSS (and PSS) over the process and all its descendants, sampled every 0.1 s; its CPU
seconds (user + system of the process and the descendants it reaped), which a busy machine
skews less than wall time. Runs alternate, flconfig then FLARE, ``--pairs`` times; the
result gives every pair's ratio (flconfig/FLARE) and the medians. Each run must exit 0 and
leave every scalar of both sites in the server's TensorBoard files
(``WS/fedavg_tensorboard/server/simulate_job/tb_events/<site>/`` under both tools), read
with tensorboard's own reader: ``train_loss`` at steps 0..20·rounds-1 and
``local_accuracy`` at 0..rounds-1, each step once. Each site's last ``local_accuracy`` and
the global model's accuracy (the last round's aggregate in the server's
``metrics/metrics_summary.json``) are reported for each tool; they are comparable, not
equal (``job.py`` seeds nothing, so the initial model differs from run to run). The load
average before each run is recorded, as other work on the machine skews wall times.

torch runs as many intra-op threads as there are cores in each of FLARE's processes, while
flconfig gives each worker one; ``--flare-threads 1`` sets ``OMP_NUM_THREADS=1`` for
FLARE's runs to compare like with like.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import statistics
import sys
import tempfile
from pathlib import Path
from typing import cast

sys.path.insert(0, str(Path(__file__).resolve().parent))
from side_by_side import ROOT, find_flare, flare_parser, run  # noqa: E402

SCRIPT = ROOT / "examples" / "job-api-tensorboard"
JOB_NAME = "fedavg_tensorboard"  # the recipe's name in job.py
SITES = ("site-1", "site-2")
STEPS_PER_ROUND = -(-320 // 16)  # client.py's defaults: --train_size 320, --batch_size 16, 1 epoch
TOOLS = ("flconfig", "flare")


def expected_steps(tag: str, rounds: int) -> list[int]:
    """The steps at which ``client.py`` logs ``tag`` in a job of ``rounds`` rounds."""
    return list(range(rounds * STEPS_PER_ROUND if tag == "train_loss" else rounds))


def server_scalars(workspace: Path) -> dict[str, dict[str, list[tuple[int, float]]]]:
    """Every scalar in the server's TensorBoard files: site → tag → [(step, value)] by step."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    tb_events = workspace / JOB_NAME / "server" / "simulate_job" / "tb_events"
    found: dict[str, dict[str, list[tuple[int, float]]]] = {}
    if not tb_events.is_dir():
        return found
    for folder in sorted(p for p in tb_events.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        found[folder.name] = {
            tag: sorted((e.step, e.value) for e in acc.Scalars(tag))
            for tag in acc.Tags().get("scalars", [])
        }
    return found


def check_scalars(scalars: dict[str, dict[str, list[tuple[int, float]]]],
                  rounds: int) -> list[str]:
    """What is missing, duplicated or extra among the sites' scalars (empty: all there)."""
    problems = []
    for site in SITES:
        tags = scalars.get(site, {})
        for tag in ("train_loss", "local_accuracy"):
            steps = [step for step, _ in tags.get(tag, [])]
            want = expected_steps(tag, rounds)
            if steps != want:
                missing = sorted(set(want) - set(steps))
                surplus = sorted(set(steps) - set(want)) or sorted(
                    {step for step in steps if steps.count(step) > 1})
                problems.append(f"{site} {tag}: {len(steps)} scalars, {len(want)} expected; "
                                f"missing steps {missing[:10]}, extra or repeated {surplus[:10]}")
        extra = sorted(set(tags) - {"train_loss", "local_accuracy"})
        if extra:
            problems.append(f"{site}: unexpected tags {extra}")
    extra_sites = sorted(set(scalars) - set(SITES))
    if extra_sites:
        problems.append(f"unexpected site folders {extra_sites}")
    return problems


def global_accuracy(workspace: Path) -> float | None:
    """The last round's aggregated ``accuracy`` in the server's metrics summary (both tools
    write ``metrics/metrics_summary.json``), or None where there is none."""
    summary = workspace / JOB_NAME / "server" / "simulate_job" / "metrics" / "metrics_summary.json"
    try:
        metrics = json.loads(summary.read_text())["final_aggregated_metrics"]
        return next(round(float(m["value"]), 2) for m in metrics if m["name"] == "accuracy")
    except (OSError, ValueError, KeyError, TypeError, StopIteration):
        return None


def leftovers(paths: tuple[Path, ...]) -> list[int]:
    """Processes still alive whose working folder or command line is in one of ``paths`` (a
    run's copy and workspace) after the run exited: ones that outlived it."""
    found = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
                cwd = os.readlink(proc / "cwd")
            except OSError:
                continue
            if any(str(path) in cmdline or Path(cwd).is_relative_to(path) for path in paths):
                found.append(int(proc.name))
    return found


def one_run(tool: str, base: Path, index: int, rounds: int, flare_python: Path,
            flare_threads: int | None) -> dict[str, object]:
    """The script, copied afresh, run once under ``tool``; its figures and scalars."""
    copy = base / f"{tool}-{index}"
    shutil.copytree(SCRIPT, copy, ignore=shutil.ignore_patterns("__pycache__"))
    workspace = base / f"ws-{tool}-{index}"
    script_args = ["--num_rounds", str(rounds), "--workspace_root", str(workspace)]
    load = os.getloadavg()[0]
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    if tool == "flconfig":
        result = run([sys.executable, "-m", "flconfig", "run", "job.py", *script_args], copy)
    else:
        env = {**os.environ, "PYTHONPATH": ""}
        if flare_threads:
            env["OMP_NUM_THREADS"] = str(flare_threads)
        result = run([str(flare_python), "job.py", *script_args], copy, env=env)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    scalars = server_scalars(workspace)
    result["cpu_s"] = round(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime, 1)
    result["load_before"] = round(load, 2)
    result["scalar_counts"] = {site: {tag: len(v) for tag, v in tags.items()}
                               for site, tags in scalars.items()}
    result["problems"] = check_scalars(scalars, rounds)
    result["leftover_processes"] = leftovers((copy, workspace))
    result["last_local_accuracy"] = {site: round(tags["local_accuracy"][-1][1], 2)
                                     for site, tags in scalars.items() if tags.get("local_accuracy")}
    result["final_global_accuracy"] = global_accuracy(workspace)
    result["last_train_loss"] = {site: round(tags["train_loss"][-1][1], 4)
                                 for site, tags in scalars.items() if tags.get("train_loss")}
    return result


def num(result: dict[str, object], key: str) -> float:
    """A run's figure ``key`` (wall_s, cpu_s, peak_rss_mb ...) as a number."""
    return cast(float, result[key])


def table(pairs: list[dict[str, dict[str, object]]], summary: dict[str, object]) -> str:
    """The runs, the per-pair ratios and the medians as a markdown table."""
    lines = ["| pair | tool | load before | wall s | CPU s | peak RSS MB | peak PSS MB | scalars "
             "site-1 / site-2 (train_loss, local_accuracy) | last local_accuracy site-1 / site-2 | "
             "global accuracy |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    for i, pair in enumerate(pairs, 1):
        for tool in TOOLS:
            r = pair[tool]
            counts = cast(dict[str, dict[str, int]], r["scalar_counts"])
            acc = cast(dict[str, float], r["last_local_accuracy"])
            lines.append(
                f"| {i} | {tool} | {r['load_before']} | {r['wall_s']} | {r['cpu_s']} | {r['peak_rss_mb']} | "
                f"{r['peak_pss_mb']} | "
                + " / ".join(f"{counts.get(s, {}).get('train_loss', 0)}, "
                             f"{counts.get(s, {}).get('local_accuracy', 0)}" for s in SITES)
                + " | " + " / ".join(f"{acc.get(s, float('nan')):.1f}" for s in SITES)
                + f" | {r['final_global_accuracy']} |")
        ratios = cast(dict[str, float], pair["ratios"])
        lines.append(f"| {i} | ratio | | {ratios['wall']:.3f} | {ratios['cpu']:.3f} | "
                     f"{ratios['rss']:.3f} | {ratios['pss']:.3f} | | | |")
    medians = cast(dict[str, dict[str, float]], summary["medians"])
    for tool in TOOLS:
        m = medians[tool]
        lines.append(f"| median | {tool} | | {m['wall_s']} | {m['cpu_s']} | {m['peak_rss_mb']} | "
                     f"{m['peak_pss_mb']} | | | |")
    mr = cast(dict[str, float], summary["median_ratios"])
    lines.append(f"| median | ratio | | {mr['wall']:.3f} | {mr['cpu']:.3f} | {mr['rss']:.3f} | "
                 f"{mr['pss']:.3f} | | | |")
    return "\n".join(lines)


def main() -> int:
    parser = flare_parser(__doc__.split("\n")[0])
    parser.set_defaults(flare_venv=Path("/tmp/flare-venv"))
    parser.add_argument("--pairs", type=int, default=3)
    parser.add_argument("--num-rounds", type=int, default=5)
    parser.add_argument("--json", type=Path, metavar="OUT", help="save the results here")
    parser.add_argument("--flare-threads", type=int, metavar="N",
                        help="OMP_NUM_THREADS for FLARE's runs (default: torch's own, one per "
                             "core in each process; flconfig gives each worker 1)")
    ns: argparse.Namespace = parser.parse_args()
    if ns.pairs < 1 or ns.num_rounds < 1:
        parser.error("--pairs and --num-rounds must be at least 1")
    if find_flare(ns) is None:
        return 2
    flare_python = ns.flare_venv / "bin" / "python"
    pairs: list[dict[str, dict[str, object]]] = []
    failed = False
    with tempfile.TemporaryDirectory(prefix="job-script-sbs-") as tmp:
        for i in range(ns.pairs):
            pair: dict[str, dict[str, object]] = {}
            for tool in TOOLS:
                r = one_run(tool, Path(tmp), i, ns.num_rounds, flare_python,
                            ns.flare_threads)
                tail = cast(str, r.pop("output_tail"))
                if r["leftover_processes"]:
                    print(f"{tool} run {i + 1} left processes behind: {r['leftover_processes']}",
                          file=sys.stderr)
                if r["rc"] != 0 or r["problems"]:
                    failed = True
                    print(f"{tool} run {i + 1} failed (exit {r['rc']}): {r['problems']}\n{tail}",
                          file=sys.stderr)
                pair[tool] = r
            a, b = pair["flconfig"], pair["flare"]
            pair["ratios"] = {"wall": round(num(a, "wall_s") / num(b, "wall_s"), 3),
                              "cpu": round(num(a, "cpu_s") / num(b, "cpu_s"), 3),
                              "rss": round(num(a, "peak_rss_mb") / num(b, "peak_rss_mb"), 3),
                              "pss": round(num(a, "peak_pss_mb") / num(b, "peak_pss_mb"), 3)}
            pairs.append(pair)
            print(json.dumps(pair), flush=True)

    summary: dict[str, object] = {
        "benchmark": "job_script_side_by_side",
        "script": str(SCRIPT.relative_to(ROOT)),
        "pairs": len(pairs),
        "num_rounds": ns.num_rounds,
        "cpus": os.cpu_count(),
        "flare_omp_num_threads": ns.flare_threads,
        "all_runs_ok": not failed,
        "medians": {t: {k: statistics.median(num(p[t], k) for p in pairs)
                        for k in ("wall_s", "cpu_s", "peak_rss_mb", "peak_pss_mb")} for t in TOOLS},
        "median_ratios": {k: statistics.median(cast(dict[str, float], p["ratios"])[k]
                                               for p in pairs) for k in ("wall", "cpu", "rss", "pss")},
        "expected_scalars_per_site": {tag: len(expected_steps(tag, ns.num_rounds))
                                      for tag in ("train_loss", "local_accuracy")},
        "runs": pairs,
    }
    print(table(pairs, summary))
    if ns.json:
        ns.json.write_text(json.dumps(summary, indent=2) + "\n")
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
