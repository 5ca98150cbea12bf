"""flconfig's HOCON reader against pyhocon on every ``.conf`` file of NVIDIA FLARE's history.

FLARE parses its ``.conf`` job files with pyhocon; flconfig reads them itself, with
the position of every value. This reads each distinct ``.conf`` file on the given
branches of a FLARE git repository (``fetch`` NVIDIA/NVFlare, or a clone) with both
and counts the files whose data differ and those either refuses; and times both readers.
flconfig reads them as the deployed server would, but with this process's environment
for a ``${X}`` the file does not define (pyhocon reads it too), and with no folder:
an ``include`` is refused (pyhocon reads blobs without their folder too).

    python benchmarks/hocon_corpus.py --repo /path/to/NVFlare.git [--branches 2.4,2.5,2.6,main]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from flconfig.config import hocon  # noqa: E402


def conf_blobs(repo: Path, branches: list[str]) -> dict[str, str]:
    """Blob id -> one path it has, for every .conf file on ``branches``."""
    blobs: dict[str, str] = {}
    for branch in branches:
        out = subprocess.run(["git", "-C", str(repo), "ls-tree", "-r", branch], capture_output=True,
                             text=True, check=False).stdout
        for line in out.splitlines():
            meta, _, path = line.partition("\t")
            if path.endswith(".conf"):
                blobs.setdefault(meta.split()[2], f"{branch}:{path}")
    return blobs


def plain(value: object) -> object:
    if hasattr(value, "as_plain_ordered_dict"):
        value = value.as_plain_ordered_dict()
    elif isinstance(value, list):
        value = [plain(v) for v in value]
    return json.loads(json.dumps(value))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repo", type=Path, required=True, help="a git repository of NVIDIA/NVFlare")
    parser.add_argument("--branches", default="2.4,2.5,2.6,2.7,2.8,HEAD")
    ns = parser.parse_args()
    from pyhocon import ConfigFactory

    blobs = conf_blobs(ns.repo, [b for b in ns.branches.split(",") if b])
    counts = {"files": len(blobs), "same": 0, "different": 0, "flconfig_refused": 0, "pyhocon_refused": 0}
    environ = dict(os.environ)
    ours_s = theirs_s = 0.0
    examples: list[str] = []
    for blob, where in sorted(blobs.items()):
        text = subprocess.run(["git", "-C", str(ns.repo), "cat-file", "-p", blob], capture_output=True,
                              check=True).stdout.decode("utf-8-sig")
        start = time.perf_counter()
        try:
            theirs = plain(ConfigFactory.parse_string(text))
        except Exception:  # noqa: BLE001 - pyhocon's many exception types
            theirs = None
            counts["pyhocon_refused"] += 1
        theirs_s += time.perf_counter() - start
        start = time.perf_counter()
        try:
            ours = hocon.parse(text, where, environ=environ).data
        except hocon.HoconError as exc:
            counts["flconfig_refused"] += 1
            if theirs is not None:
                examples.append(f"refused {where}: {exc.message}")
            continue
        finally:
            ours_s += time.perf_counter() - start
        if theirs is None or ours == theirs:
            counts["same" if theirs is not None else "different"] += 1
        else:
            counts["different"] += 1
            examples.append(f"different: {where}")
    result = {"benchmark": "hocon_corpus", **counts, "flconfig_s": round(ours_s, 3),
              "pyhocon_s": round(theirs_s, 3), "examples": examples[:20],
              "pass": counts["different"] == 0 and counts["flconfig_refused"] <= counts["pyhocon_refused"]}
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
