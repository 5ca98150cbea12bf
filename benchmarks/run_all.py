"""Run the quick benchmarks one after another (`make bench`), each in its own process.

    python benchmarks/run_all.py [--with-slow]

Quick (a few minutes in all on a 2-core machine): validate cold start, add_scalar
cost, checksums, end-to-end streaming, launch → first task, a 320 MB model round
trip, 64 sites. ``--with-slow`` adds 1,024 sites and the reliability scenarios.
Runs never overlap: on a small machine a benchmark running beside another measures
both. Exits 1 if any benchmark did.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
QUICK = [
    ["validate_cold_start.py"],
    ["streaming_add_scalar.py"],
    ["crc32c_speed.py"],
    ["streaming_throughput.py"],
    ["first_task.py"],
    ["big_model.py"],
    ["many_sites.py", "--sites", "64"],
]
SLOW = [["many_sites.py", "--sites", "1024"], ["reliability.py"]]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--with-slow", action="store_true", help="add 1,024 sites and reliability")
    args = parser.parse_args()
    failed = []
    for cmd in QUICK + (SLOW if args.with_slow else []):
        print(f"\n=== {' '.join(cmd)}", flush=True)
        if subprocess.run([sys.executable, str(HERE / cmd[0]), *cmd[1:]]).returncode != 0:
            failed.append(" ".join(cmd))
    if failed:
        print("\nfailed: " + "; ".join(failed))
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
