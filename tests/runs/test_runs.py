"""``flconfig runs``: the runs of a workspace from their records and TensorBoard files (written
by torch's own SummaryWriter here), a run cut off seen as interrupted, a run's metrics drawn."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import time
from pathlib import Path

import pytest
from PIL import Image

from flconfig.runs import RunRecord, ended, new_run_id, read_record, record_path, write_record


def flconfig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", "runs", *args], capture_output=True, text=True,
                          timeout=120)


def tb_files(folder: Path, site: str, losses: list[float]) -> None:
    from torch.utils.tensorboard import SummaryWriter

    writer = SummaryWriter(str(folder / site))
    for step, loss in enumerate(losses):
        writer.add_scalar("train_loss", loss, step)
        writer.add_scalar("validation_accuracy", 1 - loss, step)
    writer.close()


@pytest.fixture
def workspace(tmp_path: Path) -> Path:
    ws = tmp_path / "ws"
    first = RunRecord("tb-20261207-100000", "tb", "jobs/tb", started=1_800_000_000.0, sites=("site-1", "site-2"),
                      pid=0, tb_folder="server/tb-20261207-100000/tb_events")
    write_record(ws, ended(first, 0))
    tb = ws / first.tb_folder
    tb_files(tb, "site-1", [0.9, 0.5, 0.25])
    tb_files(tb, "site-2", [0.8, 0.4, 0.15])
    failed = RunRecord("tb-20261207-110000", "tb", "jobs/tb", started=1_800_003_600.0, sites=("site-1",), pid=0)
    write_record(ws, ended(failed, 1, "site-1: out of memory"))
    # Still "running", but its launcher is gone (no such pid): cut off.
    write_record(ws, RunRecord("tb-20261207-120000", "tb", "jobs/tb", started=1_800_007_200.0, pid=2 ** 22 + 7))
    return ws


def test_runs_are_listed_oldest_first_with_status_time_and_metrics(workspace: Path) -> None:
    done = flconfig(str(workspace))
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0].split() == ["RUN", "JOB", "STATUS", "STARTED", "TIME", "SITES", "METRICS", "(last,", "mean",
                                "over", "sites)"]
    assert [line.split()[:3] for line in lines[1:]] == [
        ["tb-20261207-100000", "tb", "finished"], ["tb-20261207-110000", "tb", "failed"],
        ["tb-20261207-120000", "tb", "interrupted"]]
    assert lines[1].endswith("train_loss 0.2, validation_accuracy 0.8")  # (0.25 + 0.15) / 2
    # The metrics were read once and are kept in the record.
    kept = read_record(record_path(workspace, "tb-20261207-100000"))
    assert kept is not None and kept.metrics == {"train_loss": {"site-1": 0.25, "site-2": pytest.approx(0.15)},
                                                 "validation_accuracy": {"site-1": 0.75,
                                                                         "site-2": pytest.approx(0.85)}}


def test_json_is_every_record(workspace: Path) -> None:
    records = json.loads(flconfig(str(workspace), "--format", "json").stdout)
    assert [(r["run_id"], r["status"], r["exit_code"]) for r in records] == [
        ("tb-20261207-100000", "finished", 0), ("tb-20261207-110000", "failed", 1),
        ("tb-20261207-120000", "interrupted", None)]
    assert records[1]["error"] == "site-1: out of memory"


def test_a_runs_metrics_are_drawn_one_panel_per_scalar(workspace: Path, tmp_path: Path) -> None:
    done = flconfig(str(workspace), "--plot", "tb-20261207-100000")
    out = workspace / "server" / "tb-20261207-100000" / "metrics.png"
    assert done.stdout == f"flconfig: drew train_loss, validation_accuracy of run tb-20261207-100000 into {out}\n"
    image = Image.open(out)
    assert image.size == (1300, 360)  # two panels side by side
    assert len(image.convert("RGB").getcolors(maxcolors=1 << 20) or []) > 100  # lines, text, axes
    done = flconfig(str(workspace), "--plot", "tb-20261207-110000")
    assert (done.returncode, done.stderr) == (1, "flconfig runs: run tb-20261207-110000 has no TensorBoard "
                                                 "files to draw\n")
    done = flconfig(str(workspace), "--plot", "nope")
    assert done.returncode == 2 and done.stderr.startswith("flconfig runs: no run 'nope' in ")


def test_run_ids_are_the_jobs_name_and_time_and_never_repeat(tmp_path: Path) -> None:
    now = time.mktime((2026, 12, 7, 22, 30, 15, 0, 0, -1))
    first = new_run_id(tmp_path, "my job", now)
    assert first == "my-job-20261207-223015"
    (tmp_path / "server" / first).mkdir(parents=True)
    assert new_run_id(tmp_path, "my job", now) == "my-job-20261207-223015-2"


def test_an_empty_or_missing_workspace_is_said_plainly(tmp_path: Path) -> None:
    done = flconfig(str(tmp_path))
    assert (done.returncode, done.stdout) == (0, f"no runs in {tmp_path} (each flconfig launch JOB -w {tmp_path} "
                                                 "records one)\n")
    done = flconfig(str(tmp_path / "nope"))
    assert (done.returncode, done.stderr) == (2, f"flconfig runs: {tmp_path / 'nope'}: no such workspace\n")


@pytest.mark.parametrize("damage", [{"started": "yesterday"}, {"started": 1e20}, {"pid": "12"}, {"sites": "site-1"},
                                    {"status": "done"}, {"run_id": "../../etc"}])
def test_a_damaged_record_is_left_out_not_a_traceback(workspace: Path, damage: dict[str, object]) -> None:
    path = record_path(workspace, "tb-20261207-110000")
    path.write_text(json.dumps({**json.loads(path.read_text()), **damage}))
    done = flconfig(str(workspace))
    assert done.returncode == 0, done.stderr
    assert [line.split()[0] for line in done.stdout.splitlines()[1:]] == ["tb-20261207-100000", "tb-20261207-120000"]
    assert done.stderr == f"flconfig runs: note: {path} is not a run record flconfig can read; left out\n"



@pytest.mark.slow
@pytest.mark.timeout(600)
def test_each_launch_is_a_run_of_its_own_listed_with_its_metrics(tmp_path: Path) -> None:
    job = tmp_path / "my-job"
    subprocess.run([sys.executable, "-m", "flconfig", "init", str(job)], check=True, capture_output=True, timeout=120)
    ws = tmp_path / "ws"
    ids = []
    for _ in range(2):
        done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "--quiet-metrics"],
                              capture_output=True, text=True, timeout=300)
        assert done.returncode == 0, done.stdout + done.stderr
        ids.append(done.stdout.split("' as run ", 1)[1].split()[0])
        assert f"  run:           {ids[-1]} (flconfig runs {ws} lists every run)" in done.stdout
    assert ids[0] != ids[1] and all(i.startswith("my-job-") for i in ids)
    for run_id in ids:  # nothing of the first run was overwritten
        assert (ws / "server" / run_id / "FL_global_model.pt").is_file()
        assert (ws / "site-1" / run_id / "log.txt").is_file()
    listed = flconfig(str(ws))
    rows = [line.split() for line in listed.stdout.splitlines()[1:]]
    assert [(r[0], r[1], r[2]) for r in rows] == [(ids[0], "my-job", "finished"), (ids[1], "my-job", "finished")]
    assert all("train_loss" in line and "validation_accuracy" in line for line in listed.stdout.splitlines()[1:])
    # TensorBoard shows the runs apart: one folder per run above its sites'.
    assert sorted(p.parent.parent.name for p in (ws / "server").glob("*/tb_events/site-1")) == sorted(ids)
    # A run named again with --job-id is replaced, and the launch says so.
    again = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "--job-id", ids[0],
                            "--quiet-metrics"], capture_output=True, text=True, timeout=300)
    assert again.returncode == 0
    assert f"flconfig: note: run {ids[0]} exists in {ws}: its files are replaced" in again.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_failed_run_is_recorded_with_why(tmp_path: Path) -> None:
    job = tmp_path / "job"
    subprocess.run([sys.executable, "-m", "flconfig", "init", str(job), "--template", "numpy"], check=True,
                   capture_output=True, timeout=120)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "boom.py").write_text(
        "from nvflare.apis.executor import Executor\n\n\nclass Boom(Executor):\n"
        "    def execute(self, task_name, shareable, fl_ctx, abort_signal):\n"
        "        raise RuntimeError('the licence server is down')\n")
    client = job / "app" / "config" / "config_fed_client.json"
    config = json.loads(client.read_text())
    config["executors"][0]["executor"] = {"path": "boom.Boom", "args": {}}
    client.write_text(json.dumps(config))
    ws = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "--quiet-metrics"],
                          capture_output=True, text=True, timeout=240)
    assert done.returncode == 1, done.stdout
    [record] = json.loads(flconfig(str(ws), "--format", "json").stdout)
    assert (record["status"], record["exit_code"]) == ("failed", 1)
    assert "the licence server is down" in record["error"] and record["error"] in done.stdout


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_sites_log_says_what_it_did_task_by_task(tmp_path: Path) -> None:
    job = tmp_path / "job"
    subprocess.run([sys.executable, "-m", "flconfig", "init", str(job)], check=True, capture_output=True, timeout=120)
    ws = tmp_path / "ws"
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", str(job), "-w", str(ws), "--job-id", "r1",
                           "--quiet-metrics"], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stdout + done.stderr
    log = (ws / "site-2" / "r1" / "log.txt").read_text()
    for round_no in (1, 2, 3):
        assert f"site-2: task train (round {round_no}) started" in log
    finished = re.findall(r"site-2: task train done in [0-9.]+ s: train_loss [0-9.e-]+, "
                          r"validation_accuracy [0-9.]+, (\d+) step\(s\)", log)
    assert len(finished) == 3 and all(int(steps) > 0 for steps in finished), log
    assert re.search(r"site-2: task validate done in [0-9.]+ s: accuracy [0-9.]+", log)
    assert "site-1:" not in log  # each site's own lines only
