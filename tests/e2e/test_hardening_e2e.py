"""Hostile and faulty input against the real processes: a site that speaks for the server,
callers that try to starve the server, a disk that fills up, a module that fails to
import, many sites sharing one process's log files.

Each test launches the example job with ``flconfig launch`` (server and sites as real
processes over gRPC on loopback) and checks what a user would see: the exit code, one
clear line, and every record each site logged in the server's TensorBoard files, read
back with tensorboard's own reader. docs/reliability.md tabulates them.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness.event_files import read_event_file
from harness.tb_launch import (
    Output,
    check_logged,
    launch,
    logged_steps,
    make_job,
    started_by,
    steps_of,
    stop,
    tb_files,
)

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

JOB_ID = "simulate_job"


def use_learner(job: Path, module: str, source: str, cls: str) -> None:
    """Put ``source`` into the job's custom/ as ``module`` and make ``cls`` the sites' learner."""
    custom = job / "app" / "custom"
    custom.mkdir(exist_ok=True)
    (custom / f"{module}.py").write_text(source)
    file = job / "app" / "config" / "config_fed_client.json"
    file.write_text(file.read_text().replace("flconfig.examples.digits.DigitsLearner", f"{module}.{cls}"))


def all_event_files(ws: Path) -> list[Path]:
    return sorted((ws / "server" / JOB_ID / "tb_events").rglob("events.out.tfevents.*"))


# --- a site must not speak for the server or for other sites ------------------------------

HOSTILE_LEARNER = '''
import asyncio
import gc

from flconfig.examples.digits import DigitsLearner
from flconfig.transport.link import SiteLink


class HostileLearner(DigitsLearner):
    """site-2 sends the run's end event (and a record claiming to be it) on its own link."""

    def train(self, data, ctx, abort_signal):
        if ctx.site_name == "site-2" and not getattr(self, "attacked", False):
            self.attacked = True
            comm = next(o for o in gc.get_objects()
                        if isinstance(o, SiteLink) and o.site == ctx.site_name)
            comm.send_events([
                {"event_type": "_end_run", "data": None},
                {"event_type": "_about_to_end_run", "data": {"site": "server"}},
                {"event_type": "_end_run", "kind": "scalar", "tag": "x", "value": 1.0,
                 "step": 0, "wall_time": 1.0},
            ])
            # Its own link's loop (the learner runs on a training thread beside it).
            assert asyncio.run_coroutine_threadsafe(comm.flush(30), comm._loop).result() == 0
        return super().train(data, ctx, abort_signal)
'''


def test_a_site_that_sends_the_end_of_the_run_stops_no_one(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=2, epochs=1)
    use_learner(job, "hostile_learner", HOSTILE_LEARNER, "HostileLearner")
    ws = tmp_path / "ws"
    proc = launch(job, ws, "--quiet-metrics")
    try:
        out, _ = proc.communicate(timeout=240)
    finally:
        stop(proc, ws)
    assert proc.returncode == 0, out
    check_logged(tb_files(ws), logged_steps(job))  # every record of both sites, none late
    server_log = (ws / "server" / JOB_ID / "log.txt").read_text()
    assert server_log.count("dropped a bad event record from site site-2") == 3
    assert "reserved for the system" in server_log


# --- the server keeps serving honest sites -------------------------------------------------


def peak_rss_mb(pid: int) -> float:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return 0.0


def test_silent_and_bogus_callers_do_not_stop_honest_sites(tmp_path: Path) -> None:
    import grpc

    from flconfig.transport.contract import method_path

    job = make_job(tmp_path, num_rounds=8, epochs=8)  # long enough to be under attack
    ws = tmp_path / "ws"
    proc = launch(job, ws, "--quiet-metrics")
    out = Output(proc)
    release = threading.Event()
    channel = None
    peaks: list[float] = []
    try:
        port = int(out.wait_for(r"server listening on 127\.0\.0\.1:(\d+)", 120).group(1))
        server_pid = next(int(line.split()[0]) for line in started_by(ws) if " server --spec" in line)

        def watch() -> None:  # the server's high-water memory mark, until it exits
            while proc.poll() is None:
                with contextlib.suppress(OSError):
                    peaks.append(peak_rss_mb(server_pid))
                time.sleep(0.2)

        watcher = threading.Thread(target=watch, daemon=True)
        watcher.start()
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", -1), ("grpc.use_local_subchannel_pool", 1)])

        def never_send() -> Iterator[bytes]:
            release.wait()
            return
            yield b""  # a generator that sends no body

        # 24 calls without credentials that never send their body (more than the
        # server's handler threads), then 6 with a wrong token and 256 MiB bodies.
        silent = [channel.stream_unary(method_path(m)).future(never_send(), timeout=200)
                  for m in ["Heartbeat", "GetTask", "SendEvents"] * 8]
        bogus_body = b"\0" * (256 * 1024 * 1024)
        bogus = [channel.unary_unary(method_path("SendEvents")).future(
            bogus_body, timeout=120,
            metadata=(("flconfig-site", "site-1"), ("flconfig-token", "not-the-token")))
            for _ in range(6)]
        del bogus_body
        # Refused on their metadata; a client still sending its body may see the refusal
        # as the stream being reset (UNAVAILABLE). None got through.
        codes = {call.exception().code() for call in bogus}  # type: ignore[union-attr]
        assert codes <= {grpc.StatusCode.UNAUTHENTICATED, grpc.StatusCode.UNAVAILABLE}, codes
        server_running = proc.poll() is None
        with contextlib.suppress(OSError):
            peaks.append(peak_rss_mb(server_pid))  # a high-water mark: it saw the bogus calls
        assert proc.wait(timeout=240) == 0, out.rest()
        watcher.join(5)
        assert all(not call.done() or call.exception() is not None for call in silent)
    finally:
        release.set()
        if channel is not None:
            channel.close()
        stop(proc, ws)
    check_logged(tb_files(ws), logged_steps(job))
    assert server_running, "the job ended before the attack was over: make it longer"
    assert peaks and max(peaks) < 1024, f"server peak RSS {max(peaks or [0]):.0f} MB"
    log = (ws / "server" / JOB_ID / "log.txt").read_text()
    assert "missing site credentials" in log
    # Refused on their credentials before a body was read. (A call whose connection the
    # server reset while refusing another may never reach it: UNAVAILABLE above.)
    assert 1 <= log.count("/flconfig.Comm/SendEvents: bad credentials for site site-1") <= 6


# --- a full disk --------------------------------------------------------------------------


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "64m") -> Iterator[Path]:
    """A small RAM file system at ``folder`` (needs root; skips where mounting is not allowed)."""
    folder.mkdir(parents=True, exist_ok=True)
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                             capture_output=True, text=True)
    if mounted.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield folder
    finally:
        for _ in range(50):
            if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
                break
            time.sleep(0.2)


def fill(folder: Path) -> Path:
    """Write a file into ``folder`` until its file system is full; returns the file."""
    ballast = folder / "ballast"
    chunk = b"\0" * (1024 * 1024)
    fd = os.open(ballast, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        while True:
            try:
                os.write(fd, chunk)
            except OSError as exc:
                assert exc.errno == errno.ENOSPC
                if len(chunk) == 1:
                    return ballast
                chunk = chunk[: len(chunk) // 16] or b"\0"
    finally:
        os.close(fd)


def assert_written_records_are_whole_and_in_order(ws: Path, job: Path) -> int:
    """Every event file reads to its end; what each site has on disk is the start of what
    it logged, in order, each once. Returns how many scalars are on disk."""
    for file in all_event_files(ws):
        read_event_file(file)
    on_disk = steps_of(tb_files(ws))
    expected = logged_steps(job)
    total = 0
    for site, tags in on_disk.items():
        for tag, steps in tags.items():
            assert steps == expected[site][tag][: len(steps)], (site, tag)
            total += len(steps)
    return total


def test_a_disk_that_stays_full_fails_the_job_in_one_line_and_tears_no_record(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    job = make_job(tmp_path, num_rounds=2, epochs=40)
    with tmpfs(ws):
        proc = launch(job, ws)
        out = Output(proc)
        try:
            out.wait_for(r"site-\d: train_loss", 120)  # records are flowing
            fill(ws)
            rc = proc.wait(timeout=240)
        finally:
            stop(proc, ws)
        text = out.rest()
        assert rc == 1, text
        assert "Traceback" not in text
        assert re.search(rf"^flconfig: job failed after [\d.]+ s: (server: )?no space left on device in {re.escape(str(ws))}$",
                         text, re.MULTILINE), text
        written = assert_written_records_are_whole_and_in_order(ws, job)
        logged = sum(len(steps) for tags in logged_steps(job).values() for steps in tags.values())
        assert 0 < written < logged
        # Readable the same once space returns: nothing was torn.
        (ws / "ballast").unlink()
        assert assert_written_records_are_whole_and_in_order(ws, job) == written


def test_records_wait_while_the_disk_is_full_and_all_arrive_once_space_returns(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    job = make_job(tmp_path, num_rounds=1, epochs=80)  # one model save, after training
    with tmpfs(ws):
        proc = launch(job, ws)
        out = Output(proc)
        try:
            out.wait_for(r"site-\d: train_loss", 120)
            ballast = fill(ws)
            out.wait_for(r"records not written: no space left on device in .*the sites keep them", 60)
            ballast.unlink()
            rc = proc.wait(timeout=240)
        finally:
            stop(proc, ws)
        text = out.rest()
        assert rc == 0, text
        for file in all_event_files(ws):
            read_event_file(file)
        check_logged(tb_files(ws), logged_steps(job))  # every record, each once, in order


def test_a_full_disk_before_launch_is_one_line(tmp_path: Path) -> None:
    ws = tmp_path / "ws"
    with tmpfs(ws, "1m"):
        fill(ws)
        proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(make_job(tmp_path)),
                               "-w", str(ws)], capture_output=True, text=True, timeout=120)
    out = proc.stdout + proc.stderr
    assert proc.returncode != 0 and "Traceback" not in out
    assert out.strip().splitlines()[-1] == f"flconfig launch: no space left on device in {ws}"


UNSENDABLE_LEARNER = '''
from flconfig.examples.digits import DigitsLearner


class UnsendableLearner(DigitsLearner):
    """site-2 fires a fed event whose data JSON cannot carry, once."""

    def train(self, data, ctx, abort_signal):
        if ctx.site_name == "site-2" and not getattr(self, "sent", False):
            self.sent = True
            ctx.fire_fed_event("fed.custom", {"weights": object()})
        return super().train(data, ctx, abort_signal)
'''


def test_an_event_a_site_cannot_send_fails_the_job_naming_it(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, epochs=1)
    use_learner(job, "unsendable_learner", UNSENDABLE_LEARNER, "UnsendableLearner")
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                           "--quiet-metrics"], capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out  # training itself finished: the lost event fails the job
    failed = [line for line in out.splitlines() if line.startswith("flconfig: job failed")]
    assert len(failed) == 1 and "site-2: could not send event 'fed.custom' to the server" in failed[0], out
    assert "Traceback" not in out


# --- bad input gets one clear line -----------------------------------------------------------

MISSING_IMPORT = '''
import not_a_real_package_xyz  # not installed here

from flconfig.examples.digits import DigitsLearner


class MyLearner(DigitsLearner):
    pass
'''


def test_a_custom_module_that_cannot_be_imported_is_named_as_the_cause(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    use_learner(job, "my_learner", MISSING_IMPORT, "MyLearner")
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=240)
    out = proc.stdout + proc.stderr
    assert proc.returncode == 1, out
    failed = [line for line in out.splitlines() if line.startswith("flconfig: job failed")]
    assert len(failed) == 1, out
    assert re.search(r"site-\d: failed: .*config_fed_client\.json:\d+:\d+: error: component "
                     r"'pt_learner' \(MyLearner\): module 'my_learner' \(.*my_learner\.py\) imports "
                     r"'not_a_real_package_xyz', which is not installed here", failed[0]), out
    assert "the server exited" not in out and "Traceback" not in out


# --- per-site logs ----------------------------------------------------------------------------


def test_each_sites_log_holds_exactly_its_own_lines_helper_threads_included(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, epochs=1)
    ws = tmp_path / "ws"
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                           "-n", "12", "--processes", "1", "--quiet-metrics"],
                          capture_output=True, text=True, timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d,\d{3} [A-Z]+ \[(\S+) (\S+)\] ")
    for i in range(1, 13):
        site = f"site-{i}"
        lines = (ws / site / JOB_ID / "log.txt").read_text().splitlines()
        found = [m for m in map(stamp.match, lines) if m]
        assert found, site
        assert {m.group(1) for m in found} == {site}, site
        threads = {m.group(2) for m in found}
        assert all(t.startswith(f"flconfig:{site}:") for t in threads), (site, threads)
        # Its main coroutine and its event stream (a worker's sites share one heartbeat task,
        # whose lines name the site they beat for).
        assert {f"flconfig:{site}:main", f"flconfig:{site}:events"} <= threads
