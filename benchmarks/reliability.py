"""The faults and attacks of docs/reliability.md, measured: records logged vs written,
processes left over, time to recover, and what the user saw.

Each scenario launches the example job for real (``flconfig launch``: server and sites
as processes over gRPC on loopback) with the same set-ups as
``tests/e2e/test_hardening_e2e.py``, then reads the server's TensorBoard files back with
tensorboard's own reader. The disk scenarios mount a small tmpfs (root only; skipped
otherwise).

    python benchmarks/reliability.py [--json OUT.json]
"""

from __future__ import annotations

import argparse
import contextlib
import json
import re
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from test_hardening import read_event_file  # noqa: E402
from test_hardening_e2e import (  # noqa: E402
    HOSTILE_LEARNER,
    MISSING_IMPORT,
    all_event_files,
    fill,
    peak_rss_mb,
    use_learner,
)
from test_launch_tensorboard import (  # noqa: E402
    Output,
    launch,
    logged_steps,
    make_job,
    started_by,
    stop,
    tb_files,
)


def count(steps: dict[str, dict[str, list[int]]]) -> int:
    return sum(len(v) for tags in steps.values() for v in tags.values())


def written(ws: Path) -> tuple[int, int]:
    """(scalars on disk, event files with a torn or corrupt record)."""
    torn = 0
    for file in all_event_files(ws):
        try:
            read_event_file(file)
        except AssertionError:
            torn += 1
    files = tb_files(ws)
    return sum(len(points) for tags in files.values() for points in tags.values()), torn


def left_over(ws: Path) -> int:
    time.sleep(1.0)
    return len(started_by(ws))


def last_line(text: str) -> str:
    lines = [line for line in text.splitlines() if line.startswith(("flconfig: job", "flconfig launch:"))]
    return lines[-1] if lines else text.strip().splitlines()[-1]


@contextlib.contextmanager
def tmpfs(folder: Path, size: str = "64m") -> Iterator[bool]:
    folder.mkdir(parents=True, exist_ok=True)
    ok = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(folder)],
                        capture_output=True).returncode == 0
    try:
        yield ok
    finally:
        if ok:
            for _ in range(50):
                if subprocess.run(["umount", str(folder)], capture_output=True).returncode == 0:
                    break
                time.sleep(0.2)


def run_job(job: Path, ws: Path, *args: str, during: Callable[[Output], dict[str, Any]] | None = None,
            after: Callable[[], dict[str, Any]] | None = None) -> dict[str, Any]:
    started = time.monotonic()
    proc = launch(job, ws, *args)
    out = Output(proc)
    extra: dict[str, Any] = {}
    try:
        if during is not None:
            extra = during(out)
        rc = proc.wait(timeout=300)
    finally:
        stop(proc, ws)
    wall = time.monotonic() - started
    text = out.rest()
    logged = count(logged_steps(job))
    on_disk, torn = written(ws)
    result = {"exit": rc, "wall_s": round(wall, 1), "logged": logged, "written": on_disk,
              "torn_files": torn, "left_over": left_over(ws), "traceback": "Traceback" in text,
              "last_line": last_line(text), **extra}
    if after is not None:
        result.update(after())
    return result


def baseline(tmp: Path) -> dict[str, Any]:
    job = make_job(tmp, num_rounds=4, epochs=4)  # the job the hostile callers attack
    return run_job(job, tmp / "ws", "--quiet-metrics")


def hostile_site(tmp: Path) -> dict[str, Any]:
    job = make_job(tmp, num_rounds=2, epochs=1)
    use_learner(job, "hostile_learner", HOSTILE_LEARNER, "HostileLearner")
    ws = tmp / "ws"
    result = run_job(job, ws, "--quiet-metrics")
    log = (ws / "server" / "simulate_job" / "log.txt").read_text()
    result["refused_records"] = log.count("dropped a bad event record from site site-2")
    return result


def hostile_callers(tmp: Path) -> dict[str, Any]:
    import grpc

    from flconfig.transport.contract import method_path

    job = make_job(tmp, num_rounds=4, epochs=4)
    ws = tmp / "ws"
    release = threading.Event()
    peaks: list[float] = []

    def during(out: Output) -> dict[str, Any]:
        port = int(out.wait_for(r"server listening on 127\.0\.0\.1:(\d+)", 120).group(1))
        pid = next(int(line.split()[0]) for line in started_by(ws) if " server --spec" in line)
        channel = grpc.insecure_channel(f"127.0.0.1:{port}", options=[
            ("grpc.max_send_message_length", -1), ("grpc.use_local_subchannel_pool", 1)])

        def never() -> Iterator[bytes]:
            release.wait()
            return
            yield b""

        silent = [channel.stream_unary(method_path(m)).future(never(), timeout=300)
                  for m in ["Heartbeat", "GetTask", "SendEvents"] * 8]
        body = b"\0" * (256 * 1024 * 1024)
        t0 = time.monotonic()
        bogus = [channel.unary_unary(method_path("SendEvents")).future(
            body, timeout=120, metadata=(("flconfig-site", "site-1"), ("flconfig-token", "wrong")))
            for _ in range(6)]
        codes = sorted({str(call.exception().code()) for call in bogus})  # type: ignore[union-attr]
        refused_in = time.monotonic() - t0
        del body

        def watch() -> None:
            while True:
                try:
                    peaks.append(peak_rss_mb(pid))
                except OSError:
                    return
                time.sleep(0.2)

        threading.Thread(target=watch, daemon=True).start()
        threading.Thread(target=lambda: (time.sleep(280), release.set()), daemon=True).start()
        return {"silent_calls": len(silent), "bogus_calls": len(bogus), "bogus_codes": codes,
                "bogus_refused_in_s": round(refused_in, 2)}

    try:
        result = run_job(job, ws, "--quiet-metrics", during=during)
    finally:
        release.set()
    result["server_peak_rss_mb"] = round(max(peaks), 0) if peaks else None
    return result


def disk_stays_full(tmp: Path) -> dict[str, Any]:
    ws = tmp / "ws"
    job = make_job(tmp, num_rounds=2, epochs=40)
    with tmpfs(ws) as ok:
        if not ok:
            return {"skipped": "cannot mount a tmpfs (needs root)"}

        def during(out: Output) -> dict[str, Any]:
            out.wait_for(r"site-\d: train_loss", 120)
            fill(ws)
            return {}

        result = run_job(job, ws, during=during)
        (ws / "ballast").unlink()
        result["written_after_space_returns"], result["torn_after_space_returns"] = written(ws)
    return result


def disk_full_then_free(tmp: Path) -> dict[str, Any]:
    ws = tmp / "ws"
    job = make_job(tmp, num_rounds=1, epochs=80)
    freed: list[float] = []
    with tmpfs(ws) as ok:
        if not ok:
            return {"skipped": "cannot mount a tmpfs (needs root)"}

        def during(out: Output) -> dict[str, Any]:
            out.wait_for(r"site-\d: train_loss", 120)
            ballast = fill(ws)
            full_at = time.time()
            out.wait_for(r"records not written: no space left", 60)
            ballast.unlink()
            freed.append(time.time())
            return {"full_for_s": round(freed[0] - full_at, 2)}

        result = run_job(job, ws, during=during)
        log = (ws / "server" / "simulate_job" / "log.txt").read_text(errors="replace")
        again = re.search(r"^(\S+ \S+) WARNING .*records are written again", log, re.MULTILINE)
        if again and freed:
            import datetime

            stamp = datetime.datetime.strptime(again.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            result["recovered_after_s"] = round(stamp - freed[0], 2)
    return result


def custom_import_fails(tmp: Path) -> dict[str, Any]:
    job = make_job(tmp)
    use_learner(job, "my_learner", MISSING_IMPORT, "MyLearner")
    ws = tmp / "ws"
    started = time.monotonic()
    proc = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws)],
                          capture_output=True, text=True, timeout=300)
    text = proc.stdout + proc.stderr
    return {"exit": proc.returncode, "wall_s": round(time.monotonic() - started, 1),
            "left_over": left_over(ws), "traceback": "Traceback" in text,
            "names_the_module": "imports 'not_a_real_package_xyz'" in last_line(text),
            "last_line": last_line(text)[:160]}


def site_process_killed(tmp: Path) -> dict[str, Any]:
    """site-3's worker process SIGKILLed in round 1, with a 600 s heartbeat timeout: how long
    until the server knows (it used to wait for the heartbeat) and how the job ends."""
    import os
    import signal

    from test_launch import make_job as make_launch_job

    job = make_launch_job(tmp, num_rounds=3, min_clients=2, epochs=1)
    ws = tmp / "ws"
    started = time.monotonic()
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "-n", "3",
                             "--processes", "3", "--heartbeat-timeout", "600", "--quiet-metrics"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    killed_at = noticed_at = None
    text = ""
    for line in proc.stdout:
        text += line
        if killed_at is None and "round 1/" in line:
            rows = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
            for row in rows.splitlines():
                if "flconfig.runtime.worker" in row and "--sites site-3" in row and str(ws) in row:
                    os.kill(int(row.split()[0]), signal.SIGKILL)
                    killed_at = time.monotonic()
        if killed_at is not None and noticed_at is None and "site-3's process died" in line:
            noticed_at = time.monotonic()
    rc = proc.wait(timeout=300)
    said = next((ln.split("] ", 1)[-1] for ln in text.splitlines() if "site-3's process died" in ln), "")
    return {"exit": rc, "wall_s": round(time.monotonic() - started, 1),
            "noticed_after_kill_s": round(noticed_at - killed_at, 2) if killed_at and noticed_at else None,
            "server_said": said, "left_over": left_over(ws), "last_line": last_line(text)}


SCENARIOS: dict[str, Callable[[Path], dict[str, Any]]] = {
    "baseline (no fault)": baseline,
    "site-2 sends _end_run/_about_to_end_run": hostile_site,
    "24 silent + 6 wrong-token 256 MiB calls": hostile_callers,
    "disk fills mid-run and stays full": disk_stays_full,
    "disk fills mid-run, space returns": disk_full_then_free,
    "custom/ module imports a missing package": custom_import_fails,
    "a site's process killed, heartbeat 600 s": site_process_killed,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="also write the results here")
    parser.add_argument("--only", help="run the scenarios whose name contains this")
    ns = parser.parse_args()
    results: dict[str, dict[str, Any]] = {}
    for name, scenario in SCENARIOS.items():
        if ns.only and ns.only not in name:
            continue
        with tempfile.TemporaryDirectory(prefix="flconfig-rel-") as tmp:
            results[name] = scenario(Path(tmp))
        print(f"{name}: {json.dumps(results[name])}", flush=True)
    if ns.json:
        ns.json.write_text(json.dumps(results, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
