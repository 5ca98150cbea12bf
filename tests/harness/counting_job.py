"""A job whose sites say, for each task, which instance of their trainer ran it: one
instance per site for the run (site_state "keep") or a new one per task ("release")."""

from __future__ import annotations

import json
import re
from pathlib import Path

from harness.numpy_job import SERVER, write_job

# A FLARE executor that says, for each task, which instance ran it and how many tasks
# that instance has run: one instance per site for the run, or a new one per task.
COUNTING = '''
from nvflare.apis.dxo import DXO, DataKind, from_shareable
from nvflare.apis.executor import Executor


class CountingTrainer(Executor):
    built = 0

    def __init__(self):
        super().__init__()
        CountingTrainer.built += 1
        self.instance = CountingTrainer.built
        self.tasks = 0

    def execute(self, task_name, shareable, fl_ctx, abort_signal):
        self.tasks += 1
        self.log_info(fl_ctx, f"instance {self.instance} ran its task {self.tasks}")
        weights = from_shareable(shareable).data["numpy_key"] + 1
        return DXO(DataKind.WEIGHTS, data={"numpy_key": weights},
                   meta={"NUM_STEPS_CURRENT_ROUND": 1}).to_shareable()
'''

RAN = re.compile(r"instance (\d+) ran its task (\d+)")


def counting_job(root: Path, site_state: str | None) -> Path:
    """FLARE's hello-numpy job, 3 rounds of FedAvg, the sites' trainer a CountingTrainer."""
    job = write_job(root)
    server = json.loads(json.dumps(SERVER))
    server["workflows"] = server["workflows"][:1]  # FedAvg only
    (job / "app" / "config" / "config_fed_server.json").write_text(json.dumps(server))
    client = {"format_version": 2, "executors": [
        {"tasks": ["train"], "executor": {"path": "counting.CountingTrainer", "args": {}}}]}
    (job / "app" / "config" / "config_fed_client.json").write_text(json.dumps(client))
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "counting.py").write_text(COUNTING)
    if site_state is not None:
        meta = json.loads((job / "meta.json").read_text())
        (job / "meta.json").write_text(json.dumps({**meta, "site_state": site_state}))
    return job


def runs_of(ws: Path, site: str) -> list[tuple[int, int]]:
    """(instance, its task number) for each task ``site`` ran, from its log in a launch's
    workspace ``ws``."""
    return runs_in((ws / site / "simulate_job" / "log.txt").read_text())


def runs_in(log: str) -> list[tuple[int, int]]:
    """(instance, its task number) for each task a site's ``log`` text says it ran."""
    return [(int(a), int(b)) for a, b in RAN.findall(log)]
