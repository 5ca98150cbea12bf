"""What `flconfig launch` shows while a job runs, as a user sees it: the live view in a real
pseudo-terminal (pexpect), its screen rendered by a terminal emulator (pyte); one JSON
event a line with --format json; and the plain lines, unchanged, where stdout is a pipe."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pexpect
import pyte
import pytest
from harness import REPO
from harness.launching import scalars, sigint_at_default
from harness.numpy_job import write_job
from harness.tb_launch import make_job

pytestmark = [pytest.mark.slow, pytest.mark.timeout(300)]

COLUMNS, ROWS = 120, 60
ESC = "\x1b"


GATED_LEARNER = """\
import time
from pathlib import Path

from flconfig.examples.digits import DigitsLearner


class GatedLearner(DigitsLearner):
    \"\"\"The example's learner; it trains only once the file ``gate`` exists.\"\"\"

    def __init__(self, gate, **kwargs):
        super().__init__(**kwargs)
        self.gate = Path(gate)

    def train(self, data, ctx, abort_signal):
        while not self.gate.exists():
            time.sleep(0.02)
        return super().train(data, ctx, abort_signal)
"""


def gated_job(tmp_path: Path, num_rounds: int) -> tuple[Path, Path]:
    """The example job (one epoch a round) whose sites train only once the returned file exists:
    a test opens it when it has seen the sites training, so a fast round cannot slip by."""
    job = make_job(tmp_path, num_rounds=num_rounds, epochs=1)
    gate = tmp_path / "gate"
    (job / "app" / "custom").mkdir(exist_ok=True)
    (job / "app" / "custom" / "gated_learner.py").write_text(GATED_LEARNER)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    learner = next(c for c in client["components"] if c["id"] == "pt_learner")
    learner["path"] = "gated_learner.GatedLearner"
    learner["args"]["gate"] = str(gate)
    client_file.write_text(json.dumps(client, indent=2))
    return job, gate


def in_terminal(job: Path, ws: Path, *args: str, interrupt_at: str | None = None,
                open_at: tuple[str, Path] | None = None) -> tuple[int, str, str]:
    """``flconfig launch`` in a pseudo-terminal of COLUMNS × ROWS: its exit code, its screen at
    the end (as a terminal shows it) and all it wrote (escape codes removed). With
    ``interrupt_at``, Ctrl-C once that text was written; with ``open_at`` (text, file), the
    file is made once the text was written (escape codes may sit between words)."""
    env = {**os.environ, "TERM": "xterm-256color", "PYTHONPATH": os.pathsep.join(
        p for p in (str(REPO), os.environ.get("PYTHONPATH", "")) if p)}
    env.pop("COLUMNS", None)
    env.pop("LINES", None)
    child = pexpect.spawn(sys.executable, ["-m", "flconfig", "launch", str(job), "-w", str(ws), *args],
                          env=env, encoding="utf-8", codec_errors="replace", timeout=240,
                          dimensions=(ROWS, COLUMNS), preexec_fn=sigint_at_default)
    written: list[str] = []
    try:
        if open_at is not None:
            child.expect_exact(open_at[0])
            written.append(child.before + child.after)
            open_at[1].touch()
        if interrupt_at is not None:
            child.expect_exact(interrupt_at)
            written.append(child.before + child.after)
            child.sendintr()
        child.expect(pexpect.EOF)
        written.append(child.before)
    finally:
        child.close(force=True)
    raw = "".join(written)
    screen = pyte.Screen(COLUMNS, ROWS)
    pyte.Stream(screen).feed(raw.replace("\n", "\r\n") if "\r\n" not in raw else raw)
    shown = "\n".join(line.rstrip() for line in screen.display).strip("\n")
    return child.exitstatus, shown, re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", raw)


def test_the_live_view_shows_startup_rounds_sites_and_their_metrics(tmp_path: Path) -> None:
    job, gate = gated_job(tmp_path, num_rounds=2)
    ws = tmp_path / "ws"
    # The sites train once the view has shown a site training.
    code, screen, written = in_terminal(job, ws, "-n", "2", "--job-id", "live", open_at=("training", gate))
    print(screen)  # what a user saw at the end, in the test's output
    assert code == 0, written
    lines = screen.splitlines()
    # The last frame of the live view, then the lines saying how it ended.
    header = next(i for i, line in enumerate(lines) if line.startswith("tensorboard-streaming · run live"))
    assert re.fullmatch(r"tensorboard-streaming · run live · 2 sites · [\d.]+ s · finished", lines[header])
    assert re.match(r"✓ sites connected\s+━+ 2/2$", lines[header + 1]), lines[header + 1]
    assert re.match(r"✓ rounds\s+━+ 2/2 round 2 done$", lines[header + 2]), lines[header + 2]
    assert re.match(r"records [\d,]+ \(", lines[header + 3]), lines[header + 3]
    assert re.split(r"\s+", lines[header + 4]) == ["site", "state", "train_loss", "validation_accuracy"]
    final: dict[str, dict[str, float]] = {}
    for site, row in zip(("site-1", "site-2"), lines[header + 5:header + 7], strict=True):
        name, state, loss, _, loss_step, acc, _, acc_step = row.split()
        assert (name, state) == (site, "done")
        final[site] = {"train_loss": float(loss), "train_loss_step": int(loss_step),
                       "validation_accuracy": float(acc)}
    assert lines[header + 7] == "all 2 sites: done 2"
    assert lines[header + 8].startswith("flconfig: job finished in ")
    # The metrics shown are the last ones TensorBoard has of each site.
    for site, shown in final.items():
        step, loss = scalars(ws / "server" / "live" / "tb_events" / site, "train_loss")[-1]
        assert (shown["train_loss_step"], shown["train_loss"]) == (step, float(f"{loss:.4g}"))
    # On the way, it showed the start-up and the sites training (frames since redrawn).
    assert "waiting for the sites" in written and "sites connected" in written
    assert re.search(r"site-[12]\s+training", written)
    # The plain lines scrolled above it; no event line ever reached the terminal.
    assert "workflow scatter_and_gather (ScatterAndGather) started" in screen
    assert "@@flconfig" not in written


def test_ctrl_c_leaves_the_terminal_clean(tmp_path: Path) -> None:
    job, _ = gated_job(tmp_path, num_rounds=2)  # the gate never opens: the sites train until Ctrl-C
    code, screen, written = in_terminal(job, tmp_path / "ws", "-n", "2", "--job-id", "live",
                                        interrupt_at="training")
    print(screen)
    assert code == 130, written
    assert "flconfig: interrupted; stopping every process it started" in screen
    assert re.search(r"^tensorboard-streaming · run live · 2 sites · .* · interrupted$", screen,
                     re.MULTILINE), screen
    assert "Traceback" not in written


def events_of(stdout: str) -> list[dict[str, Any]]:
    """Every line of ``stdout`` as JSON (each must be one)."""
    return [json.loads(line) for line in stdout.splitlines()]


def test_format_json_is_one_event_a_line_start_to_end(tmp_path: Path) -> None:
    job, gate = gated_job(tmp_path, num_rounds=2)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "-n", "2",
                             "--job-id", "run-1", "--format", "json"], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    assert proc.stdout is not None
    lines: list[str] = []
    for line in proc.stdout:  # the sites train once an event said they were training
        lines.append(line)
        if '"training"' in line:
            gate.touch()
    stderr = proc.stderr.read() if proc.stderr is not None else ""
    done = subprocess.CompletedProcess(proc.args, proc.wait(timeout=240), "".join(lines), stderr)
    assert done.returncode == 0, done.stderr
    events = events_of(done.stdout)
    kinds = [event["event"] for event in events]
    assert kinds[0] == "launch" and kinds[-1] == "end"
    assert events[0] | {"t": 0} == {"event": "launch", "t": 0, "job": "tensorboard-streaming",
                                    "run": "run-1", "sites": 2, "backend": "process", "workers": 2,
                                    "workspace": str(ws.resolve())}
    times = [event["t"] for event in events]
    assert times == sorted(times)
    assert {"event": "workers", "kind": "process", "count": 2, "sites": 2} == \
        {k: v for k, v in events[kinds.index("workers")].items() if k != "t"}
    listening = events[kinds.index("listening")]
    assert (listening["need"], listening["of"]) == (2, 2)
    # The sites connecting, then all connected before the first round; each round started,
    # then was done, in order.
    sites = [event for event in events if event["event"] == "sites"]
    assert sites[0]["counts"] == {"connecting": 2}
    before = [e["counts"] for e in events[:kinds.index("round")] if e["event"] == "sites"]
    assert before[-1] == {"connected": 2}
    rounds = [(e["n"], e["of"], e["state"]) for e in events if e["event"] == "round"]
    assert rounds == [(1, 2, "started"), (1, 2, "done"), (2, 2, "started"), (2, 2, "done")]
    assert sites[-1]["counts"] == {"done": 2}
    assert any("training" in e["changed"] for e in sites)
    # The metrics: the last of each site is the last TensorBoard has.
    last: dict[str, dict[str, list[Any]]] = {}
    for event in events:
        if event["event"] == "metrics":
            for site, tags in event["sites"].items():
                last.setdefault(site, {}).update(tags)
    for site in ("site-1", "site-2"):
        step, loss = scalars(ws / "server" / "run-1" / "tb_events" / site, "train_loss")[-1]
        value, at = last[site]["train_loss"]
        assert at == step and value == pytest.approx(loss, rel=1e-6)
    records = [e for e in events if e["event"] == "records"]
    assert records and records[-1]["total"] > 0
    end = events[-1]
    run_dir = ws.resolve() / "server" / "run-1"
    assert end | {"t": 0, "elapsed_s": 0} == {
        "event": "end", "t": 0, "ok": True, "code": 0, "run": "run-1", "elapsed_s": 0,
        "run_dir": str(run_dir), "server_log": str(run_dir / "log.txt"),
        "global_model": str(run_dir / "FL_global_model.pt"), "tb_events": str(run_dir / "tb_events")}
    # The lines a person reads went to stderr.
    assert "flconfig: job finished in" in done.stderr
    assert "round 2/2: results from site-1, site-2" in done.stderr


def test_format_json_says_how_a_refused_launch_ended(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(tmp_path / "ws"),
                           "-n", "1", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert events_of(done.stdout) == [{"event": "end", "t": events_of(done.stdout)[0]["t"], "ok": False,
                                       "code": 2, "error": done.stderr.strip().split(": ", 1)[1]}]
    assert "min_clients" in done.stderr and done.stderr.count("\n") == 1


def test_format_json_says_why_an_invalid_job_was_refused(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    client = job / "app" / "config" / "config_fed_client.json"
    client.write_text(client.read_text().replace('"executors"', '"executorz"', 1))
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(tmp_path / "ws"),
                           "-n", "2", "--format", "json"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    (end,) = events_of(done.stdout)
    assert (end["event"], end["ok"], end["code"]) == ("end", False, 1)
    first = next(line for line in done.stderr.splitlines() if ": error: " in line)
    assert end["error"].startswith("the job is invalid (") and end["error"].endswith(f"; the first: {first}")
    assert "executorz" in end["error"] and "nothing was started" in done.stderr


PLAIN_LINES = [
    r"flconfig: launching job 'hello-numpy-cross-val' as run plain with 2 client site\(s\) in 2 worker "
    r"process\(es\), \d+ torch thread\(s\) each; workspace .*",
    r"\[ *[\d.]+s\] server listening on 127\.0\.0\.1:\d+; waiting for 2 of 2 sites",
    r"\[ *[\d.]+s\] 2 sites connected: site-1, site-2",
    r"\[ *[\d.]+s\] workflow scatter_and_gather \(ScatterAndGather\) started",
    r"\[ *[\d.]+s\] round 1/3: results from site-1, site-2 \([\d.]+s\)",
    r"\[ *[\d.]+s\] round 2/3: results from site-1, site-2 \([\d.]+s\)",
    r"\[ *[\d.]+s\] round 3/3: results from site-1, site-2 \([\d.]+s\)",
    r"\[ *[\d.]+s\] workflow scatter_and_gather done",
    r"\[ *[\d.]+s\] workflow cross_site_model_eval \(CrossSiteModelEval\) started",
    r"\[ *[\d.]+s\] cross-site evaluation: site-1 validated by site-1, site-2",
    r"\[ *[\d.]+s\] cross-site evaluation: site-2 validated by site-1, site-2",
    r"\[ *[\d.]+s\] cross-site evaluation: SRV_server validated by site-1, site-2",
    r"\[ *[\d.]+s\] cross-site evaluation results: .*/cross_val_results\.json",
    r"\[ *[\d.]+s\] workflow cross_site_model_eval done",
    r"flconfig: job finished in [\d.]+ s",
    r"  run:           plain \(flconfig runs .* lists every run\)",
    r"  server log:    .*/server/plain/log\.txt",
    r"  site logs:     .*/<site>/plain/log\.txt",
    r"  cross-site validation: .*/cross_val_results\.json",
    r"  global model \(SRV_server\) validated at: site-1 [\d.]+, site-2 [\d.]+",
]


@pytest.mark.parametrize("form", ["text", "plain"])
def test_plain_lines_where_stdout_is_not_a_terminal(tmp_path: Path, form: str) -> None:
    job = write_job(tmp_path)
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(tmp_path / "ws"),
                           "-n", "2", "--job-id", "plain", "--format", form], capture_output=True, text=True,
                          timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.splitlines()
    assert len(lines) == len(PLAIN_LINES), done.stdout
    for line, pattern in zip(lines, PLAIN_LINES, strict=True):
        assert re.fullmatch(pattern, line), (line, pattern)
    assert ESC not in done.stdout and "@@flconfig" not in done.stdout
    assert done.stderr == ""
