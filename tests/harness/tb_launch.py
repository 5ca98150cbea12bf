"""`flconfig launch --tensorboard` as a user runs it: the example job, its processes, what its
sites logged, and TensorBoard's files and HTTP answers to compare them with."""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shutil
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

from harness.launching import sigint_at_default

ROOT = Path(__file__).resolve().parents[2]  # the repository


EXAMPLE = ROOT / "configs" / "tensorboard-streaming"


SITES = ("site-1", "site-2")


TAGS = ("train_loss", "validation_accuracy")


JOB_ID = "simulate_job"


def make_job(tmp_path: Path, num_rounds: int = 1, epochs: int = 2) -> Path:
    """The example job, ``num_rounds`` rounds of ``epochs`` epochs, without cross-site validation."""
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["num_rounds"] = num_rounds
    server["workflows"] = server["workflows"][:1]
    server["components"] = [c for c in server["components"] if c["id"] != "json_generator"]
    server_file.write_text(json.dumps(server, indent=2))
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["components"][0]["args"]["epochs"] = epochs
    client_file.write_text(json.dumps(client, indent=2))
    return job


def logged_steps(job: Path) -> dict[str, dict[str, list[int]]]:
    """The steps each site's learner logs each tag at, from its data size, batch size and epochs."""
    from flconfig.examples.data import load_site_data

    server = json.loads((job / "app" / "config" / "config_fed_server.json").read_text())
    args = json.loads((job / "app" / "config" / "config_fed_client.json").read_text())["components"][0]["args"]
    assert args.get("max_train_batches") is None and args.get("dataset", "digits") == "digits"
    epochs = args["epochs"] * server["num_rounds"]
    steps: dict[str, dict[str, list[int]]] = {}
    for index, site in enumerate(SITES):
        train_size = len(load_site_data("digits", len(SITES), index).y_train)
        per_epoch = math.ceil(train_size / args.get("batch_size", 32))
        steps[site] = {"train_loss": list(range(per_epoch * epochs)),
                       "validation_accuracy": list(range(epochs))}
    return steps


def tb_files(ws: Path) -> dict[str, dict[str, list[tuple[float, int, float]]]]:
    """(wall_time, step, value) of every scalar in the server's event files, read by tensorboard."""
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    root = ws / "server" / JOB_ID / "tb_events"
    runs: dict[str, dict[str, list[tuple[float, int, float]]]] = {}
    for folder in sorted(p for p in root.iterdir() if p.is_dir()):
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        runs[folder.name] = {tag: [(e.wall_time, e.step, e.value) for e in acc.Scalars(tag)]
                             for tag in acc.Tags()["scalars"]}
    return runs


_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # loopback: no proxy


def get_json(url: str) -> Any:
    with _OPENER.open(url, timeout=10) as reply:
        return json.loads(reply.read())


def tb_http(url: str) -> dict[str, dict[str, list[tuple[float, int, float]]]]:
    """(wall_time, step, value) of every scalar TensorBoard serves, over its HTTP API."""
    runs = get_json(url + "data/runs")
    tags = get_json(url + "data/plugin/scalars/tags")
    served: dict[str, dict[str, list[tuple[float, int, float]]]] = {}
    for run in runs:
        served[run] = {}
        for tag in tags.get(run, {}):
            query = urllib.parse.urlencode({"run": run, "tag": tag})
            points = get_json(f"{url}data/plugin/scalars/scalars?{query}")
            served[run][tag] = [(wall, step, value) for wall, step, value in points]
    return served


def steps_of(runs: dict[str, dict[str, list[tuple[float, int, float]]]]) -> dict[str, dict[str, list[int]]]:
    return {run: {tag: [step for _, step, _ in points] for tag, points in tags.items()}
            for run, tags in runs.items()}


class Output:
    """The merged output of a process, read on a thread, so a test can wait for a line."""

    def __init__(self, proc: subprocess.Popen[str]) -> None:
        self.lines: list[str] = []
        self._new: queue.Queue[str | None] = queue.Queue()
        assert proc.stdout is not None
        self._thread = threading.Thread(target=self._read, args=(proc.stdout,), daemon=True)
        self._thread.start()

    def _read(self, stream: Any) -> None:
        for line in stream:
            self.lines.append(line)
            self._new.put(line)
        self._new.put(None)

    def wait_for(self, pattern: str, timeout: float) -> re.Match[str]:
        regex = re.compile(pattern)
        for line in list(self.lines):
            if found := regex.search(line):
                return found
        deadline = time.monotonic() + timeout
        while True:
            try:
                line = self._new.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                raise AssertionError(f"no line matching {pattern!r} within {timeout} s:\n{self.text()}") from None
            if line is None:
                raise AssertionError(f"the process ended without a line matching {pattern!r}:\n{self.text()}")
            if found := regex.search(line):
                return found

    def rest(self, timeout: float = 30) -> str:
        self._thread.join(timeout)
        return self.text()

    def text(self) -> str:
        return "".join(self.lines)


def started_by(ws: Path) -> list[str]:
    """Processes whose command line names the workspace: workers, TensorBoard and its data server."""
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    # Not the test runner itself (its tmp paths hold "pytest" too, so match by pid and command).
    mine = {os.getpid(), os.getppid()}
    return [line.strip() for line in out.splitlines()
            if str(ws) in line and int(line.split()[0]) not in mine and "-m pytest" not in line
            and " ps " not in line]


def assert_all_gone(ws: Path, timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while started_by(ws) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert started_by(ws) == []


def launch(job: Path, ws: Path, *args: str) -> subprocess.Popen[str]:
    # Started with SIGINT at its default: a test sends it Ctrl-C.
    return subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws), *args],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=sigint_at_default)


def stop(proc: subprocess.Popen[str], ws: Path) -> None:
    """Cleanup after a failed test: the launcher, then anything it left."""
    if proc.poll() is None:
        proc.kill()
        proc.wait()
    for line in started_by(ws):
        subprocess.run(["kill", "-9", line.split()[0]], capture_output=True)


def check_logged(files: dict[str, dict[str, list[tuple[float, int, float]]]],
                 expected: dict[str, dict[str, list[int]]]) -> None:
    assert steps_of(files) == expected  # every point, at the step the learner logged it
    for site in SITES:
        for tag in TAGS:
            values = [value for _, _, value in files[site][tag]]
            assert all(math.isfinite(v) for v in values), (site, tag)
        assert all(0.0 <= v <= 1.0 for _, _, v in files[site]["validation_accuracy"])
        assert all(v > 0.0 for _, _, v in files[site]["train_loss"])
