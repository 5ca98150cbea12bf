"""The same job under NVIDIA FLARE's simulator and under flconfig: the same global weights (issue 9).

    python benchmarks/flare_equivalence.py [--flare-venv DIR] [--setup] [--rounds 1]

The job is the example Client API job (``configs/client-api``: the digits CNN, its training
script written against ``nvflare.client``) as a FLARE 2.9 job folder: ClientAPIExecutor in
process, ``params_exchange_format`` pytorch, DIFF transfer, ScatterAndGather over 2 sites,
PTFileModelPersistor, InTimeAccumulateWeightedAggregator (WEIGHT_DIFF). Seeds are fixed: the
server's model is built under ``torch.manual_seed(0)`` and each site's script seeds itself
by its site number, so each tool's run is deterministic.

FLARE runs ``nvflare simulator JOB -n 2 -t 2`` in a venv of its own (``--setup`` makes it:
``torch==2.13.0``, ``nvflare==2.9.0``, ``scikit-learn``, ``tensorboard``); flconfig runs
``flconfig launch JOB``. Both global models are read back (FLARE's ``FL_global_model.pt`` with
``torch.load(weights_only=True)``, flconfig's the same way) and compared parameter by
parameter. The bar: every parameter equal to within float32 rounding of the aggregation
(FLARE sums the sites' float32 differences in float32, flconfig in float64): max absolute
difference <= 1e-5 and max relative difference <= 1e-4, with the weights having moved from the
initial model by far more than that.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
sys.path.insert(0, str(HERE))

from side_by_side import find_flare, flare_parser  # noqa: E402

EXAMPLE = ROOT / "configs" / "client-api" / "app" / "custom"
SEEDED_NET = '''"""The example's Net, built under a fixed seed: both tools start from the same weights."""

import torch

from net import Net


class SeededNet(Net):
    def __init__(self):
        torch.manual_seed(0)
        super().__init__()
'''


def job_folder(dest: Path, rounds: int) -> Path:
    """The example Client API job as a FLARE 2.9 job folder (JSON, FLARE's class paths)."""
    app = dest / "app"
    (app / "config").mkdir(parents=True)
    shutil.copytree(EXAMPLE, app / "custom", ignore=shutil.ignore_patterns("__pycache__"))
    (app / "custom" / "seeded_net.py").write_text(SEEDED_NET)
    server = {
        "format_version": 2,
        "task_data_filters": [], "task_result_filters": [],
        "components": [
            {"id": "persistor", "path": "nvflare.app_opt.pt.file_model_persistor.PTFileModelPersistor",
             "args": {"model": {"path": "seeded_net.SeededNet"}}},
            {"id": "shareable_generator",
             "path": "nvflare.app_common.shareablegenerators.full_model_shareable_generator."
                     "FullModelShareableGenerator", "args": {}},
            {"id": "aggregator",
             "path": "nvflare.app_common.aggregators.intime_accumulate_model_aggregator."
                     "InTimeAccumulateWeightedAggregator", "args": {"expected_data_kind": "WEIGHT_DIFF"}},
        ],
        "workflows": [{"id": "scatter_and_gather",
                       "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
                       "args": {"min_clients": 2, "num_rounds": rounds, "wait_time_after_min_received": 0,
                                "aggregator_id": "aggregator", "persistor_id": "persistor",
                                "shareable_generator_id": "shareable_generator", "train_timeout": 0}}],
    }
    client = {
        "format_version": 2,
        "task_data_filters": [], "task_result_filters": [],
        "executors": [{"tasks": ["train"], "executor": {
            "path": "nvflare.app_common.executors.client_api_executor.ClientAPIExecutor",
            "args": {"execution_mode": "in_process", "task_script_path": "train.py",
                     "task_script_args": "--epochs 1 --batch-size 32",
                     "params_exchange_format": "pytorch", "params_transfer_type": "DIFF"}}}],
        "components": [],
    }
    meta = {"name": "equivalence", "resource_spec": {}, "min_clients": 2, "deploy_map": {"app": ["@ALL"]}}
    (app / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (app / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (dest / "meta.json").write_text(json.dumps(meta, indent=2))
    return dest


def flare_weights(ws: Path, venv: Path) -> dict[str, np.ndarray]:
    """FLARE's saved global model, read in its own venv with torch.load(weights_only=True)."""
    found = sorted(ws.rglob("FL_global_model.pt"))
    if not found:
        raise SystemExit(f"FLARE wrote no FL_global_model.pt under {ws}")
    out = ws.parent / "flare_weights.npz"
    script = ("import sys, numpy as np, torch\n"
              "d = torch.load(sys.argv[1], map_location='cpu', weights_only=True)\n"
              "d = d.get('model', d)\n"
              "np.savez(sys.argv[2], **{k: v.numpy() for k, v in d.items()})\n")
    subprocess.run([str(venv / "bin" / "python"), "-c", script, str(found[0]), str(out)], check=True)
    with np.load(out) as data:
        return {k: data[k] for k in data.files}


def flconfig_weights(ws: Path) -> dict[str, np.ndarray]:
    import torch

    checkpoint = torch.load(ws / "server" / "simulate_job" / "FL_global_model.pt", weights_only=True)
    return {k: v.numpy() for k, v in checkpoint["model"].items()}


def initial_weights(job: Path) -> dict[str, np.ndarray]:
    sys.path.insert(0, str(job / "app" / "custom"))
    from seeded_net import SeededNet  # type: ignore[import-not-found]

    return {k: v.numpy() for k, v in SeededNet().state_dict().items()}


def main() -> int:
    parser = flare_parser(__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=1)
    ns = parser.parse_args()
    nvflare = find_flare(ns)
    if nvflare is None:
        return 2
    with tempfile.TemporaryDirectory() as tmp:
        job = job_folder(Path(tmp) / "job", ns.rounds)
        flare_ws, ours_ws = Path(tmp) / "flare-ws", Path(tmp) / "flconfig-ws"
        flare = subprocess.run([str(nvflare), "simulator", str(job), "-w", str(flare_ws), "-n", "2", "-t", "2"],
                               capture_output=True, text=True, timeout=1200, cwd=tmp)
        if flare.returncode != 0:
            print(flare.stdout[-3000:] + flare.stderr[-3000:])
            raise SystemExit(f"FLARE's simulator failed ({flare.returncode})")
        ours = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ours_ws)],
                              capture_output=True, text=True, timeout=1200, cwd=tmp)
        if ours.returncode != 0:
            print(ours.stdout[-3000:] + ours.stderr[-3000:])
            raise SystemExit(f"flconfig launch failed ({ours.returncode})")
        theirs, mine, start = flare_weights(flare_ws, ns.flare_venv), flconfig_weights(ours_ws), initial_weights(job)
    if sorted(theirs) != sorted(mine):
        raise SystemExit(f"different parameters: FLARE {sorted(theirs)}, flconfig {sorted(mine)}")
    abs_diff = max(float(np.max(np.abs(theirs[k].astype(np.float64) - mine[k]))) for k in mine)
    rel_diff = max(float(np.max(np.abs(theirs[k].astype(np.float64) - mine[k])
                                / np.maximum(np.abs(theirs[k]).astype(np.float64), 1e-3))) for k in mine)
    moved = max(float(np.max(np.abs(mine[k].astype(np.float64) - start[k]))) for k in mine)
    result = {
        "benchmark": "flare_equivalence",
        "flare": "nvflare simulator (" + subprocess.run([str(nvflare), "--version"], capture_output=True,
                                                        text=True).stdout.strip() + ")",
        "rounds": ns.rounds,
        "parameters": len(mine),
        "values": int(sum(v.size for v in mine.values())),
        "max_abs_difference": abs_diff,
        "max_rel_difference": rel_diff,
        "max_change_from_initial": moved,
        "bar": {"max_abs_difference": 1e-5, "max_rel_difference": 1e-4},
        "pass": abs_diff <= 1e-5 and rel_diff <= 1e-4 and moved > 1e-3,
    }
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
