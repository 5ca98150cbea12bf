"""Scale side by side with Flower (flwr[simulation], Ray backend), alternately (issue 8).

    python benchmarks/flower_scale.py [--sites 8,64,256,1024] [--pairs 1] [--workload cnn|numpy] [--flower-venv DIR]
                                      [--setup] [--flconfig-args '--site-state release']

The tiny workload at each number of sites: one FedAvg round, every site's result
awaited, each site measuring the held-out accuracy of the global model, training one epoch
on 64 digits images and measuring its held-out accuracy again (flconfig: ``benchmarks/many_sites.py``, which also streams every site's scalars
to TensorBoard and checks them; Flower: ``benchmarks/flower_tiny/run.py``, the same data,
model and optimiser, no metric streaming). Flower runs in a venv of its own (``--setup``:
``torch==2.13.0``, then ``flwr[simulation]``, scikit-learn). Wall time is start to exit;
memory is the peak RSS summed over all the run's processes (flconfig: as many_sites.py
reports it; Flower: the process tree, Ray's processes included, sampled every 0.1 s).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
DEFAULT_VENV = ROOT / ".venvs" / "flower"
sys.path.insert(0, str(HERE))

from side_by_side import run  # noqa: E402


def flconfig_run(sites: int, extra: list[str] | None = None, workload: str = "cnn") -> dict[str, object]:
    """``many_sites.py --sites N --workload W EXTRA`` (e.g. ``--site-state release``,
    ``--backend ray``)."""
    done = subprocess.run([sys.executable, str(HERE / "many_sites.py"), "--sites", str(sites),
                           "--workload", workload, *(extra or [])], capture_output=True, text=True,
                          timeout=1800)
    out = done.stdout
    result = json.loads(out[out.index("{"):])
    return {"wall_s": result["wall_s"], "peak_rss_mb": result["peak_rss_all_processes_mb"],
            "peak_pss_mb": result["peak_pss_all_processes_mb"],
            "ok": done.returncode == 0 and result.get("sites_with_scalars_in_tensorboard") == sites}


def flower_run(venv: Path, sites: int, workload: str = "cnn") -> dict[str, object]:
    env = {**os.environ, "PYTHONPATH": str(ROOT), "RAY_DEDUP_LOGS": "0"}
    r = run([str(venv / "bin" / "python"), str(HERE / "flower_tiny" / "run.py"), str(sites), workload],
            ROOT, env=env)
    found = re.search(r"FIT_RESULTS (\d+) FAILURES (\d+)", str(r["output_tail"]))
    ok = r["rc"] == 0 and found is not None and int(found.group(1)) == sites
    return {"wall_s": r["wall_s"], "peak_rss_mb": r["peak_rss_mb"], "peak_pss_mb": r["peak_pss_mb"],
            "ok": ok,
            **({} if ok else {"output_tail": r["output_tail"]})}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sites", default="8,64,256,1024")
    parser.add_argument("--pairs", type=int, default=1)
    parser.add_argument("--flower-venv", type=Path, default=DEFAULT_VENV)
    parser.add_argument("--setup", action="store_true")
    parser.add_argument("--workload", choices=("cnn", "numpy"), default="cnn",
                        help="cnn: the tiny CNN (default); numpy: a 3x3 model + 1 and one scalar "
                             "a site, which costs nothing itself (the frameworks' own cost)")
    parser.add_argument("--flconfig-args", default="",
                        help="more options for many_sites.py, e.g. '--site-state release'")
    ns = parser.parse_args()
    python = ns.flower_venv / "bin" / "python"
    if ns.setup and not python.exists():
        subprocess.run([sys.executable, "-m", "venv", str(ns.flower_venv)], check=True)
        pip = [str(ns.flower_venv / "bin" / "pip"), "install", "--quiet"]
        subprocess.run([*pip, "torch==2.13.0"], check=True)
        subprocess.run([*pip, "flwr[simulation]==1.42.0", "scikit-learn"], check=True)
    if not python.exists():
        print(f"no Flower in {ns.flower_venv}: run with --setup (or --flower-venv DIR)")
        return 2
    rows = []
    for sites in (int(s) for s in ns.sites.split(",")):
        pairs = []
        for _ in range(ns.pairs):
            a = flconfig_run(sites, ns.flconfig_args.split(), ns.workload)
            b = flower_run(ns.flower_venv, sites, ns.workload)
            pairs.append({"flconfig": a, "flower": b,
                          "wall_ratio": round(a["wall_s"] / b["wall_s"], 3)})  # type: ignore[operator]
            print(json.dumps({"sites": sites, **pairs[-1]}), flush=True)
        rows.append({
            "sites": sites,
            "flconfig_wall_s": statistics.median(p["flconfig"]["wall_s"] for p in pairs),
            "flower_wall_s": statistics.median(p["flower"]["wall_s"] for p in pairs),
            "flconfig_rss_mb": statistics.median(p["flconfig"]["peak_rss_mb"] for p in pairs),
            "flower_rss_mb": statistics.median(p["flower"]["peak_rss_mb"] for p in pairs),
            "flconfig_pss_mb": statistics.median(p["flconfig"]["peak_pss_mb"] for p in pairs),
            "flower_pss_mb": statistics.median(p["flower"]["peak_pss_mb"] for p in pairs),
            "median_wall_ratio": statistics.median(p["wall_ratio"] for p in pairs),
            "all_ok": all(p["flconfig"]["ok"] and p["flower"]["ok"] for p in pairs),
        })
    print(json.dumps({"benchmark": "flower_scale", "rows": rows}, indent=2))
    return 0 if all(r["all_ok"] for r in rows) else 1


if __name__ == "__main__":
    sys.exit(main())
