"""Seeing a run: `flconfig launch --tensorboard` serves the metrics live, and the terminal
shows each site's latest values while the job runs.

The end-to-end tests start real processes (server, client workers, TensorBoard) and
compare what TensorBoard serves over HTTP and what is in the event files with what the
example learner logged: ``train_loss`` once per step, ``validation_accuracy`` once per
epoch, steps counted on across rounds.
"""

from __future__ import annotations

import json
import math
import os
import queue
import re
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from launching import sigint_at_default

from flconfig.runtime.fed_events import records_to_events
from flconfig.runtime.live_metrics import LiveMetrics
from flconfig.types import Event, EventType

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
SITES = ("site-1", "site-2")
TAGS = ("train_loss", "validation_accuracy")
JOB_ID = "simulate_job"

pytestmark = pytest.mark.timeout(240)
slow = pytest.mark.slow

# A live metrics line with both sites on it: "[   4.1s] site-1: train_loss 0.92 @ 22, ..."
METRICS_LINE = re.compile(r"^\[\s*[\d.]+s\] site-1: train_loss \S+ @ \d+.* \| site-2: train_loss ",
                          re.MULTILINE)


# --- helpers ----------------------------------------------------------------------------------


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
    return subprocess.Popen([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), *args],
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


# --- `--tensorboard` ------------------------------------------------------------------------


@slow
def test_tensorboard_serves_every_logged_point_live_and_stops_at_ctrl_c(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, epochs=2)
    ws = tmp_path / "ws"
    proc = launch(job, ws, "--tensorboard")
    try:
        output = Output(proc)
        url = output.wait_for(r"^flconfig: TensorBoard at (http://127\.0\.0\.1:\d+/)$", 150).group(1)
        assert get_json(url + "data/runs") == []  # it answers before any record arrived
        output.wait_for(r"TensorBoard keeps serving .*; press Ctrl-C to stop it", 180)
        text = output.text()
        assert text.index("TensorBoard at") < text.index("round 1/1"), text  # shown before training
        assert f"TensorBoard:   {url}" in text

        expected = logged_steps(job)
        files = tb_files(ws)
        check_logged(files, expected)
        # TensorBoard re-reads its folder every few seconds: wait until it shows everything.
        deadline = time.monotonic() + 60
        served = tb_http(url)
        while served != files and time.monotonic() < deadline:
            time.sleep(0.5)
            served = tb_http(url)
        assert sorted(served) == list(SITES)
        assert steps_of(served) == expected
        assert served == files  # the HTTP answer is the files' content, point for point
        assert proc.poll() is None  # still serving after the job

        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=30) == 0  # the job succeeded; Ctrl-C only stopped TensorBoard
        assert "stopping TensorBoard" in output.rest()
        assert_all_gone(ws)
        with pytest.raises((urllib.error.URLError, OSError)):
            get_json(url + "data/runs")
    finally:
        stop(proc, ws)


@slow
def test_tensorboard_exit_stops_tensorboard_with_the_job_and_quiet_metrics_prints_none(
        tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, epochs=1)
    ws = tmp_path / "ws"
    proc = launch(job, ws, "--tensorboard-exit", "--quiet-metrics")
    try:
        assert proc.wait(timeout=180) == 0
        text = Output(proc).rest()
        assert re.search(r"^flconfig: TensorBoard at http://127\.0\.0\.1:\d+/$", text, re.MULTILINE), text
        assert "job finished" in text
        assert "press Ctrl-C" not in text
        assert not METRICS_LINE.search(text) and "train_loss" not in text
        assert_all_gone(ws)
    finally:
        stop(proc, ws)


@slow
def test_a_busy_tensorboard_port_is_refused_before_training_and_nothing_is_left(
        tmp_path: Path) -> None:
    job = make_job(tmp_path)
    ws = tmp_path / "ws"
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws),
                               "--tensorboard-port", str(port)],
                              capture_output=True, text=True, timeout=180)
    assert done.returncode == 2, done.stdout + done.stderr
    assert "flconfig launch: TensorBoard did not start" in done.stderr
    assert str(port) in done.stderr
    assert "round 1/" not in done.stdout
    assert_all_gone(ws)


# --- live metrics and the files of a plain launch ---------------------------------------------


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One plain launch (no --tensorboard), 2 rounds of 2 epochs: (job, workspace, output)."""
    tmp = tmp_path_factory.mktemp("plain")
    job = make_job(tmp, num_rounds=2, epochs=2)
    ws = tmp / "ws"
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=200)
    assert done.returncode == 0, done.stdout + done.stderr
    return job, ws, done.stdout


@slow
def test_the_terminal_shows_both_sites_latest_metrics_ending_with_the_last_step(
        plain_run: tuple[Path, Path, str]) -> None:
    job, _, output = plain_run
    lines = METRICS_LINE.findall(output)
    assert lines, output
    last = [line for line in output.splitlines() if METRICS_LINE.match(line + "\n")][-1]
    for site, steps in logged_steps(job).items():
        part = re.search(rf"{site}: ([^|]*)", last)
        assert part, last
        assert re.search(rf"train_loss \S+ @ {steps['train_loss'][-1]}\b", part.group(1)), last
        assert re.search(rf"validation_accuracy \S+ @ {steps['validation_accuracy'][-1]}\b",
                         part.group(1)), last
    # printed after each round, and once more at the end
    assert output.index("round 1/2") < output.index(last)


@slow
def test_the_server_files_hold_every_point_each_site_logged(plain_run: tuple[Path, Path, str]) -> None:
    job, ws, _ = plain_run
    check_logged(tb_files(ws), logged_steps(job))


# --- the live metrics line, without processes -------------------------------------------------


def scalar(tag: str, value: float, step: int | None) -> dict[str, Any]:
    return {"event_type": "fed.analytix_log_stats", "kind": "scalar", "tag": tag, "value": value,
            "step": step, "wall_time": 1.7e9}


def test_the_line_shows_each_sites_latest_value_and_step_once() -> None:
    lines: list[str] = []
    live = LiveMetrics(lines.append)
    live.observe("site-2", records_to_events([scalar("train_loss", 0.5, 9), scalar("train_loss", 0.25, 10)]))
    live.observe("site-1", records_to_events([
        scalar("train_loss", 0.2314, 120), scalar("validation_accuracy", 0.953, 4),
        {"event_type": "fed.analytix_log_stats", "kind": "text", "tag": "note", "value": "hi",
         "step": 1, "wall_time": 1.7e9},
        {"event_type": "fed.other", "data": {"x": 1}},
    ]))
    live.report()
    assert lines == ["site-1: train_loss 0.2314 @ 120, validation_accuracy 0.953 @ 4 | "
                     "site-2: train_loss 0.25 @ 10"]
    live.report()  # nothing new: nothing printed
    assert len(lines) == 1
    live.handle_event(Event(EventType.ROUND_DONE, {}, "local", "server"), None)
    assert len(lines) == 1
    live.observe("site-10", records_to_events([scalar("loss", 1, None)]))
    live.handle_event(Event(EventType.ROUND_DONE, {}, "local", "server"), None)
    assert lines[-1].endswith("| site-10: loss 1")


def test_many_sites_show_min_mean_max_per_tag() -> None:
    lines: list[str] = []
    live = LiveMetrics(lines.append)
    for i in range(1, 17):
        live.observe(f"site-{i}", records_to_events([scalar("train_loss", i / 10, 100 + i)]))
    live.observe("site-1", records_to_events([scalar("validation_accuracy", float("nan"), 3)]))
    live.report()
    assert lines == ["16 sites, min/mean/max: train_loss 0.1/0.85/1.6 @ 101..116 | "
                     "validation_accuracy - @ 3 (1 of 16 sites, 1 not finite)"]


def test_a_long_summary_is_split_one_line_per_site() -> None:
    lines: list[str] = []
    live = LiveMetrics(lines.append, max_tags=3)
    for site in SITES:
        live.observe(site, records_to_events([scalar(f"a_rather_long_metric_name_{k}", 0.5, 7)
                                              for k in range(5)]))
    live.report()
    assert lines == [f"{site}: " + ", ".join(f"a_rather_long_metric_name_{k} 0.5 @ 7" for k in range(3))
                     + ", +2 more" for site in SITES]
