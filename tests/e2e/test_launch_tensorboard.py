"""Seeing a run: `flconfig launch --tensorboard` serves the metrics live, and the terminal
shows each site's latest values while the job runs.

The end-to-end tests start real processes (server, client workers, TensorBoard) and
compare what TensorBoard serves over HTTP and what is in the event files with what the
example learner logged: ``train_loss`` once per step, ``validation_accuracy`` once per
epoch, steps counted on across rounds.
"""

from __future__ import annotations

import re
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path
from typing import Any

import pytest
from harness.tb_launch import (
    SITES,
    Output,
    assert_all_gone,
    check_logged,
    get_json,
    launch,
    logged_steps,
    make_job,
    steps_of,
    stop,
    tb_files,
    tb_http,
)

from flconfig.runtime.fed_events import records_to_events
from flconfig.runtime.live_metrics import LiveMetrics
from flconfig.types import Event, EventType

pytestmark = pytest.mark.timeout(240)
slow = pytest.mark.slow

# A live metrics line with both sites on it: "[   4.1s] site-1: train_loss 0.92 @ 22, ..."
METRICS_LINE = re.compile(r"^\[\s*[\d.]+s\] site-1: train_loss \S+ @ \d+.* \| site-2: train_loss ",
                          re.MULTILINE)


# --- helpers ----------------------------------------------------------------------------------


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
    # Seen before anything starts (tests/cli/test_one_line_errors.py has the exact line).
    assert done.stderr == (f"flconfig launch: --tensorboard-port {port}: the port is in use on 127.0.0.1; "
                           "pick another, or 0 for any free port\n")
    assert done.stdout == ""
    assert_all_gone(ws)


# --- live metrics and the files of a plain launch ---------------------------------------------


@pytest.fixture(scope="module")
def plain_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    """One plain launch (no --tensorboard), 2 rounds of 2 epochs: (job, workspace, output)."""
    tmp = tmp_path_factory.mktemp("plain")
    job = make_job(tmp, num_rounds=2, epochs=2)
    ws = tmp / "ws"
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
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
