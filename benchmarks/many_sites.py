"""Many client sites on this machine: `flconfig launch -n N` of the example, FedAvg only.

The tiny workload of issue 8: one round, 64 digits images per site (the training part cut
into shares the sites reuse in turn), one local epoch, every site's result awaited. Reports
wall time, each round's time, the peak memory of all the job's processes together (RSS and
PSS, sampled from /proc every 0.25 s), their CPU seconds by role, and checks with
TensorBoard's own reader that every site's scalars are in the server's event files.
Issue 8's bars: 1,024 sites in <= 27 s and <= 2 GB (Flower: 54 s); 4,096 sites complete;
8 sites no slower than 64.

``--workload numpy`` (issue 24) runs instead a job whose sites cost nothing themselves: a
learner in the job's ``custom/`` folder that adds 1 to a 3x3 NumPy model and streams one
scalar (``train_loss``) a round to the server's TensorBoard, FedAvg (ScatterAndGather) on
the server. What such a run costs is the framework's own share of a site. Issue 24's bar:
10,000 sites exit 0, every site's scalar in TensorBoard, peak PSS <= 2 GB, <= 300 s.

    python benchmarks/many_sites.py [--sites 64] [--rounds 1] [--images-per-site 64]
                                    [--workload cnn|numpy] [--verbose]
                                    [--site-state keep|release] [--backend ray [--ray-address ADDR]]

With ``--backend ray`` the memory counts Ray's processes too (its actors, raylets, GCS and
helpers: what the backend costs), and ``--ray-address`` runs on a cluster already started.
"""

from __future__ import annotations

import argparse
import json
import os
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


# The digits' training part (80 % of 1797 images), cut into shares the sites reuse in turn.
DIGITS_TRAIN_IMAGES = 1437


def job_without_cross_site_eval(folder: Path, rounds: int, images_per_site: int,
                                sites: int) -> Path:
    """The example with FedAvg only, every site's result awaited in each round."""
    job = folder / "job"
    shutil.copytree(EXAMPLE, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["num_rounds"] = rounds
    server["min_clients"] = sites  # a round ends when every site has trained
    server["workflows"] = server["workflows"][:1]
    server["components"] = [c for c in server["components"] if c["id"] != "json_generator"]
    server_file.write_text(json.dumps(server, indent=2))
    meta = json.loads((job / "meta.json").read_text())
    meta["min_clients"] = sites
    (job / "meta.json").write_text(json.dumps(meta, indent=2))
    if images_per_site:
        client_file = job / "app" / "config" / "config_fed_client.json"
        client = json.loads(client_file.read_text())
        learner = next(c for c in client["components"] if c["id"] == "pt_learner")
        learner["args"]["num_sites"] = max(1, DIGITS_TRAIN_IMAGES // images_per_site)
        learner["args"]["epochs"] = 1  # the tiny workload: one local epoch
        client_file.write_text(json.dumps(client, indent=2))
    return job


# The NumPy workload's learner, written into the job's custom/ folder: nothing of its own
# to speak of, so what a run costs is the framework's.
NUMPY_LEARNER = '''"""A learner that costs nothing: the 3x3 model + 1, one scalar a round."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import numpy as np

from flconfig.interfaces import Learner
from flconfig.types import FLModel, RunContext, Signal


class NumpyLearner(Learner):
    """Adds 1 to every weight of ``numpy_key`` and logs ``train_loss`` through the
    SummaryWriter-like component ``analytic_sender_id`` names."""

    def __init__(self, analytic_sender_id: str = "log_writer") -> None:
        self.analytic_sender_id = analytic_sender_id
        self.writer: Any = None
        self.round = 0

    def initialize(self, parts: Mapping[str, Any], ctx: RunContext) -> None:
        self.writer = parts.get(self.analytic_sender_id)

    def train(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        weights = np.asarray(data.params["numpy_key"], dtype=np.float32) + 1
        if self.writer is not None:
            self.writer.add_scalar("train_loss", 1.0 / (self.round + 1), global_step=self.round)
        self.round += 1
        return FLModel(params={"numpy_key": weights}, params_type="FULL",
                       meta={"NUM_STEPS_CURRENT_ROUND": 1})
'''


def numpy_job(folder: Path, rounds: int, sites: int) -> Path:
    """A job of the NumPy workload: FLARE's hello-numpy server (NPModelPersistor, FedAvg by
    ScatterAndGather) with a TBAnalyticsReceiver, the learner above at every site."""
    job = folder / "job"
    (job / "app" / "config").mkdir(parents=True)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "numpy_learner.py").write_text(NUMPY_LEARNER)
    server = {
        "format_version": 2,
        "server": {"heart_beat_timeout": 600},
        "task_data_filters": [], "task_result_filters": [],
        "components": [
            {"id": "persistor", "path": "nvflare.app_common.np.np_model_persistor.NPModelPersistor",
             "args": {}},
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
        "workflows": [
            {"id": "scatter_and_gather",
             "path": "nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather",
             "args": {"min_clients": sites, "num_rounds": rounds, "start_round": 0,
                      "wait_time_after_min_received": 10, "aggregator_id": "aggregator",
                      "persistor_id": "persistor", "shareable_generator_id": "shareable_generator",
                      "train_task_name": "train", "train_timeout": 0}},
        ],
    }
    client = {
        "format_version": 2,
        "executors": [{"tasks": ["train"], "executor": {
            "id": "Executor", "path": "nvflare.app_common.executors.learner_executor.LearnerExecutor",
            "args": {"learner_id": "np_learner"}}}],
        "task_result_filters": [], "task_data_filters": [],
        "components": [
            {"id": "np_learner", "path": "numpy_learner.NumpyLearner",
             "args": {"analytic_sender_id": "log_writer"}},
            {"id": "log_writer", "path": "nvflare.app_opt.tracking.tb.tb_writer.TBWriter",
             "args": {"event_type": "analytix_log_stats"}},
            {"id": "event_to_fed",
             "path": "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
             "args": {"events_to_convert": ["analytix_log_stats"], "fed_event_prefix": "fed."}},
        ],
    }
    meta = {"name": "many-sites-numpy", "resource_spec": {}, "min_clients": sites,
            "deploy_map": {"app": ["@ALL"]}}
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server, indent=2))
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client, indent=2))
    (job / "meta.json").write_text(json.dumps(meta, indent=2))
    return job


def sites_with_scalars(ws: Path, rounds: int = 1) -> int:
    """How many sites have train_loss scalars in the server's TensorBoard files (read by
    tensorboard's own reader; with ``rounds`` > 1 the NumPy workload's one a round each).

    Each site folder is read by an :class:`EventFileLoader` (what EventAccumulator reads
    with), scalars only, no accumulator's reservoir: 10,000 folders in seconds."""
    from tensorboard.backend.event_processing.event_file_loader import EventFileLoader
    from tensorboard.util import tensor_util

    found = 0
    for root in ws.glob("server/*/tb_events"):
        for folder in root.iterdir():
            steps = set()
            for path in sorted(folder.glob("events.out.tfevents.*")):
                for event in EventFileLoader(str(path)).Load():
                    for value in event.summary.value:
                        if value.tag == "train_loss":
                            if value.HasField("tensor"):
                                tensor_util.make_ndarray(value.tensor)
                            steps.add(event.step)
            if len(steps) >= rounds:
                found += 1
    return found


TICKS = os.sysconf("SC_CLK_TCK")


def job_processes(markers: tuple[str, ...]) -> list[tuple[str, str, float, float, float]]:
    """(pid, role, RSS MB, PSS MB, CPU seconds so far) of each process whose command line
    holds one of ``markers``. PSS shares each page among the processes mapping it (torch's
    libraries are in every process); RSS counts it once per process."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            cmdline = (proc / "cmdline").read_bytes().decode(errors="replace")
            if not any(m in cmdline for m in markers):
                continue
            rss = pss = 0
            for line in (proc / "smaps_rollup").read_text().splitlines():
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
            fields = (proc / "stat").read_text().rpartition(")")[2].split()
            if "ray::" in cmdline:  # a Ray worker: the sites' actors (or one Ray keeps idle)
                role = "ray-actors"
            elif any(m in cmdline for m in ("/ray/", "raylet", "gcs_server")):  # Ray's daemons
                role = "ray"
            else:
                role = next((r for r in ("server", "clients", "launch") if r in cmdline), "other")
            found.append((proc.name, role, rss / 1024, pss / 1024,
                          (int(fields[11]) + int(fields[12])) / TICKS))
        except (OSError, IndexError, ValueError):
            continue
    return found


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--sites", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=1)
    parser.add_argument("--images-per-site", type=int, default=64,
                        help="training images per site (shares are reused when the sites "
                             "outnumber them); 0: the digits split between the sites")
    parser.add_argument("--processes", type=int, default=None,
                        help="worker processes (launch's --processes); default: launch's own choice")
    parser.add_argument("--site-state", choices=("keep", "release"), default=None,
                        help="launch's --site-state: keep each site's components between tasks "
                             "(the default) or release them after each task")
    parser.add_argument("--workload", choices=("cnn", "numpy"), default="cnn",
                        help="cnn: the digits CNN (default); numpy: a learner that costs "
                             "nothing (3x3 model + 1, one scalar a round), for the framework's "
                             "own cost")
    parser.add_argument("--backend", choices=("process", "ray"), default="process",
                        help="launch's --backend (ray: the sites in Ray actors)")
    parser.add_argument("--ray-address", default=None,
                        help="launch's --ray-address: a running Ray cluster (default: a local one)")
    parser.add_argument("--verbose", action="store_true", help="print the launch's output")
    ns = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        if ns.workload == "numpy":
            job = numpy_job(Path(tmp), ns.rounds, ns.sites)
        else:
            job = job_without_cross_site_eval(Path(tmp), ns.rounds, ns.images_per_site, ns.sites)
        ws = Path(tmp) / "ws"
        peak = {"rss": 0.0, "pss": 0.0}
        peak_by_role: dict[str, float] = {}
        peak_pss_by_role: dict[str, float] = {}
        cpu: dict[str, tuple[str, float]] = {}
        done = threading.Event()

        def sample() -> None:
            while not done.is_set():
                procs = job_processes(markers)
                peak["rss"] = max(peak["rss"], sum(p[2] for p in procs))
                peak["pss"] = max(peak["pss"], sum(p[3] for p in procs))
                for pid, role, _, _, seconds in procs:
                    cpu[pid] = (role, seconds)
                for role in {p[1] for p in procs}:
                    total = sum(p[2] for p in procs if p[1] == role)
                    peak_by_role[role] = max(peak_by_role.get(role, 0.0), total)
                    pss = sum(p[3] for p in procs if p[1] == role)
                    peak_pss_by_role[role] = max(peak_pss_by_role.get(role, 0.0), pss)
                time.sleep(0.25)

        # Ray's processes (actors "ray::SiteGroup", raylets, GCS, helpers) count for its backend.
        markers = (str(ws), "flconfig launch") + (("ray::", "/ray/", "raylet", "gcs_server")
                                                   if ns.backend == "ray" else ())
        sampler = threading.Thread(target=sample, daemon=True)
        start = time.perf_counter()
        sampler.start()
        proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws),
                               "-n", str(ns.sites), "--quiet-metrics",
                               *([] if ns.processes is None else ["--processes", str(ns.processes)]),
                               *([] if ns.site_state is None else ["--site-state", ns.site_state]),
                               *(["--backend", "ray"] if ns.backend == "ray" else []),
                               *([] if ns.ray_address is None else ["--ray-address", ns.ray_address])],
                              capture_output=True, text=True, check=False)
        wall = time.perf_counter() - start
        done.set()
        sampler.join()
        if ns.verbose:
            print(proc.stdout, proc.stderr[-3000:], file=sys.stderr)
        with_scalars = sites_with_scalars(ws, ns.rounds if ns.workload == "numpy" else 1)
    rounds = [float(m.group(3)) for m in ROUND.finditer(proc.stdout)]
    result = {
        "benchmark": "many_sites",
        "workload": ns.workload,
        "sites": ns.sites,
        "backend": ns.backend,
        "rounds": ns.rounds,
        "images_per_site": (ns.images_per_site or None) if ns.workload == "cnn" else None,
        "exit_code": proc.returncode,
        "wall_s": round(wall, 1),
        "round_s": rounds,
        "peak_rss_all_processes_mb": round(peak["rss"]),
        "peak_pss_all_processes_mb": round(peak["pss"]),
        "peak_rss_by_role_mb": {r: round(v) for r, v in sorted(peak_by_role.items())},
        # Each role's own peak (they need not peak together): the split of a site's cost
        # between the server and the workers.
        "peak_pss_by_role_mb": {r: round(v) for r, v in sorted(peak_pss_by_role.items())},
        # CPU seconds by role, as last sampled (every 0.25 s) before each process exited.
        "cpu_s": {role: round(sum(c for r, c in cpu.values() if r == role), 1)
                  for role in sorted({r for r, _ in cpu.values()})},
        "sites_with_scalars_in_tensorboard": with_scalars,
        "pass": proc.returncode == 0 and len(rounds) == ns.rounds and with_scalars == ns.sites,
    }
    if not result["pass"]:
        print(proc.stdout[-3000:], proc.stderr[-3000:], file=sys.stderr)
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
