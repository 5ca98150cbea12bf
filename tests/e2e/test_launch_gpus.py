"""End to end: `flconfig launch --gpus` spreads the sites over GPUs with real worker processes,
each seeing only its GPU (CUDA_VISIBLE_DEVICES, as each site's process saw it); CUDA asked
for where there is none is refused at once, in one line. The CUDA run itself needs a GPU."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from harness.env_job import reporting_job, seen_by
from harness.launching import launch

from flconfig.runtime.spec import WorkerSpec


@pytest.mark.slow
@pytest.mark.parametrize("start", ["forked", "spawned"])
def test_each_gpus_sites_share_one_process_that_sees_only_that_gpu(tmp_path: Path, start: str) -> None:
    job = reporting_job(tmp_path)
    ws = tmp_path / "ws"
    # --device cpu: placed on GPUs 0 and 1 without using them, so this runs on any machine.
    done = launch(job, ws, "-n", "5", "--gpus", "1,0", "--device", "cpu", "--quiet-metrics",
                  *(["--spawn"] if start == "spawned" else []))
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in 2 worker process(es)" in done.stdout
    assert "flconfig: GPU 1: site-1, site-3, site-5\n" in done.stdout
    assert "flconfig: GPU 0: site-2, site-4\n" in done.stdout
    seen = {site: seen_by(ws, site) for site in ("site-1", "site-2", "site-3", "site-4", "site-5")}
    assert {seen[s][0] for s in ("site-1", "site-3", "site-5")} == {"1"}
    assert {seen[s][0] for s in ("site-2", "site-4")} == {"0"}
    assert len({seen[s][1] for s in ("site-1", "site-3", "site-5")}) == 1  # one process per GPU
    assert len({seen[s][1] for s in ("site-2", "site-4")}) == 1
    assert seen["site-1"][1] != seen["site-2"][1]


def test_without_gpus_a_site_process_sees_the_launchers_environment(tmp_path: Path) -> None:
    job = reporting_job(tmp_path)
    ws = tmp_path / "ws"
    env_free = {"CUDA_VISIBLE_DEVICES": "7"}
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws), "-n", "2",
                           "--quiet-metrics"], capture_output=True, text=True, timeout=220,
                          env={**os.environ, **env_free})
    assert done.returncode == 0, done.stdout + done.stderr
    assert "GPU" not in done.stdout
    assert seen_by(ws, "site-1")[0] == seen_by(ws, "site-2")[0] == "7"


def _no_gpu_here() -> bool:
    return not Path("/proc/driver/nvidia/gpus").is_dir() or not any(Path("/proc/driver/nvidia/gpus").iterdir())


@pytest.mark.skipif(not _no_gpu_here(), reason="this machine has a GPU")
@pytest.mark.parametrize("args, says", [
    (["--device", "cuda"], "flconfig launch: --device cuda: "),
    (["--gpus", "0,1"], "flconfig launch: --gpus: "),
    (["--gpus", "0", "--device", "cuda"], "flconfig launch: --device cuda: "),
])
def test_cuda_without_a_gpu_is_refused_at_once_and_nothing_starts(tmp_path: Path, args: list[str],
                                                                  says: str) -> None:
    job = reporting_job(tmp_path)
    ws = tmp_path / "ws"
    done = launch(job, ws, "-n", "2", *args, timeout=60)
    assert done.returncode == 2
    assert done.stdout == ""
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith(says), done.stderr
    assert "use --device cpu" in lines[0]
    assert not ws.exists()  # refused before the job was even read: no process, no workspace


@pytest.mark.parametrize("value, says", [
    ("a,b", "--gpus takes GPU indices (0, 1, ...), not 'a', 'b'"),
    ("0,0", "--gpus names GPU 0 twice"),
    ("-1", "--gpus takes GPU indices (0, 1, ...), not '-1'"),
    ("0,", "--gpus takes GPU indices separated by commas, e.g. 0,1; got '0,'"),
])
def test_a_bad_gpus_value_is_one_line(tmp_path: Path, value: str, says: str) -> None:
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(REPO / "configs" / "tensorboard-streaming"),
                           "-w", str(tmp_path / "ws"), f"--gpus={value}"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert done.stderr == f"flconfig launch: {says}\n"


def cuda_available() -> bool:
    try:
        import torch
    except ImportError:
        return False
    return bool(torch.cuda.is_available())


@pytest.mark.slow
@pytest.mark.skipif(not cuda_available(), reason="needs a CUDA GPU")
def test_the_example_trains_on_cuda(tmp_path: Path) -> None:
    import torch

    gpus = ",".join(str(i) for i in range(min(2, torch.cuda.device_count())))
    done = launch(REPO / "configs" / "tensorboard-streaming", tmp_path / "ws", "-n", "2",
                  "--device", "cuda", "--gpus", gpus)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job finished" in done.stdout


@pytest.mark.skipif(cuda_available(), reason="torch sees a CUDA device here")
def test_a_site_process_asked_for_cuda_that_torch_lacks_says_so_before_it_connects(tmp_path: Path) -> None:
    # Belt and braces behind the launcher's check: a worker started with device cuda (a
    # machine whose driver shows GPUs, a CPU-only torch) fails at once, each site in one line.
    spec = WorkerSpec(plan=str(tmp_path / "plan.json"), workspace=str(tmp_path), job_id="job",
                      sites=("site-1", "site-2"), credentials={"site-1": "a", "site-2": "b"},
                      heartbeat_timeout=5.0, device="cuda", address="127.0.0.1:9")
    spec_file = spec.write(tmp_path / "spec.json")
    done = subprocess.run([sys.executable, "-m", "flconfig.runtime.worker", "clients", "--spec", str(spec_file),
                           "--sites", "site-1,site-2"], capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert [line.split(":")[0] for line in lines] == ["site-1", "site-2"], done.stderr
    assert all(line.split(": ", 1)[1].startswith("--device cuda: torch ") for line in lines)
    assert all(line.endswith("; use --device cpu or auto") for line in lines)
    assert not (tmp_path / "site-1").exists()  # no log, no run folder: nothing was started
