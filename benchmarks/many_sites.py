"""64 client sites on this machine: `flconfig launch -n 64` of the example, FedAvg only.

Reports wall time, each round's time, and the peak memory of all the job's processes
together (sampled from /proc every 0.25 s). For reference (issue 3, same machine):
Flower's Ray simulation runs 64 tiny clients for one round in about 21 s and 1.9 GB;
FLARE's simulator needs about 190 s.

    python benchmarks/many_sites.py [--sites 64] [--rounds 1]
"""

from __future__ import annotations

import argparse
import json
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
ROUND = re.compile(r"round (\d+)/(\d+): results from .*\(([\d.]+)s\)")


def job_without_cross_site_eval(folder: Path, rounds: int) -> Path:
    job = folder / "job"
    shutil.copytree(EXAMPLE, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["num_rounds"] = rounds
    server["workflows"] = server["workflows"][:1]
    server["components"] = [c for c in server["components"] if c["id"] != "json_generator"]
    server_file.write_text(json.dumps(server, indent=2))
    return job


def total_rss_mb(marker: str) -> float:
    total = 0
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            if marker not in (proc / "cmdline").read_bytes().decode(errors="replace"):
                continue
            for line in (proc / "status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            continue
    return total / 1024


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        job = job_without_cross_site_eval(Path(tmp), ns.rounds)
        ws = Path(tmp) / "ws"
        peak = [0.0]
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                peak[0] = max(peak[0], total_rss_mb(str(ws)) + total_rss_mb("flconfig launch"))
                time.sleep(0.25)

        sampler = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        sampler.start()
        proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws),
                               "-n", str(ns.sites), "--quiet-metrics"],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
    rounds = [float(m.group(3)) for m in ROUND.finditer(proc.stdout)]
    result = {
        "benchmark": "many_sites",
        "sites": ns.sites,
        "rounds": ns.rounds,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "round_s": rounds,
        "peak_rss_all_processes_mb": round(peak[0]),
        "pass": proc.returncode == 0 and len(rounds) == ns.rounds,
    }
    if not result["pass"]:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
