"""End to end: `flconfig launch` runs real server and client processes over gRPC on loopback."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from harness import REPO
from harness.launching import sigint_at_default

ROOT = REPO
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
MODEL_SEED = 0

pytestmark = [pytest.mark.slow, pytest.mark.timeout(240)]


def make_job(tmp_path: Path, num_rounds: int = 1, min_clients: int = 2, epochs: int = 1,
             with_cse: bool = False) -> Path:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["num_rounds"] = num_rounds
    # The initial global model seeded too (the learners seed their batches): the same run
    # on every machine, so a bar on its accuracy is not a coin toss.
    server["components"][0]["args"]["model"]["args"] = {"seed": MODEL_SEED}
    server["min_clients"] = min_clients
    if not with_cse:
        server["workflows"] = server["workflows"][:1]
        server["components"] = [c for c in server["components"] if c["id"] != "json_generator"]
    server_file.write_text(json.dumps(server, indent=2))
    meta_file = job / "meta.json"
    meta = json.loads(meta_file.read_text())
    meta["min_clients"] = min_clients
    meta_file.write_text(json.dumps(meta))
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["components"][0]["args"]["epochs"] = epochs
    client_file.write_text(json.dumps(client, indent=2))
    return job


def launch(*args: str, timeout: float = 200) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", *args],
                          capture_output=True, text=True, timeout=timeout)


def test_example_job_trains_a_global_model_that_beats_the_initial_one(tmp_path: Path) -> None:
    import torch

    from flconfig.examples.digits import evaluate_params
    from flconfig.examples.models import DigitsCNN

    job = make_job(tmp_path, num_rounds=2)
    ws = tmp_path / "ws"
    proc = launch(str(job), "-w", str(ws))
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "round 1/2: results from site-1, site-2" in proc.stdout
    assert "round 2/2: results from site-1, site-2" in proc.stdout
    assert "job finished" in proc.stdout
    assert "Traceback" not in proc.stdout + proc.stderr

    model_file = ws / "server" / "simulate_job" / "FL_global_model.pt"
    # FLARE's checkpoint: torch's own format, readable without unpickling arbitrary objects
    checkpoint = torch.load(model_file, weights_only=True)
    params = {k: v.numpy() for k, v in checkpoint["model"].items()}
    initial = {k: v.detach().numpy() for k, v in DigitsCNN(seed=MODEL_SEED).state_dict().items()}
    assert set(params) == set(initial)
    trained_acc = evaluate_params(params)
    assert trained_acc > evaluate_params(initial) + 0.3
    assert trained_acc >= 0.9
    for site in ("site-1", "site-2"):
        assert (ws / site / "simulate_job" / "log.txt").exists()
        assert (ws / "server" / "simulate_job" / "tb_events" / site).is_dir()
    # credentials are private to the user who launched the job
    spec = ws / ".flconfig" / "simulate_job" / "spec.json"
    assert oct(spec.stat().st_mode & 0o777) == "0o600"


def test_an_invalid_job_is_refused_and_nothing_starts(tmp_path: Path) -> None:
    job = make_job(tmp_path)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client_file.write_text(client_file.read_text().replace('"learner_id": "pt_learner"',
                                                           '"learner_id": "pt_lerner"'))
    ws = tmp_path / "ws"
    proc = launch(str(job), "-w", str(ws))
    assert proc.returncode == 1
    lines = client_file.read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if "pt_lerner" in text)
    column = lines[line - 1].index('"pt_lerner"') + 1
    assert f"config_fed_client.json:{line}:{column}: error:" in proc.stdout
    assert "did you mean 'pt_learner'?" in proc.stdout
    assert "nothing was started" in proc.stdout
    assert not (ws / "server").exists()
    assert _processes_naming(ws) == []  # the zygote that was importing torch is gone too


@pytest.mark.parametrize("mistake", [["--threads", "0"], ["--num-clients", "0"], ["--python-path", "/no/such"]])
def test_a_command_line_mistake_gets_one_line_and_leaves_no_process(tmp_path: Path, mistake: list[str]) -> None:
    """`flconfig launch` starts its zygote before it parses its command line (its torch import
    is the longest step of a launch): a mistake found by the full parse stops it as well."""
    ws = tmp_path / "ws"
    proc = launch(str(make_job(tmp_path)), "-w", str(ws), *mistake)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.startswith(f"flconfig launch: {mistake[0]}") and len(proc.stderr.splitlines()) == 1
    assert _processes_naming(ws) == []


def _processes_naming(ws: Path) -> list[str]:
    """The command lines of the processes running that name the workspace ``ws`` (the
    zygote's and the workers')."""
    out = subprocess.run(["ps", "-eww", "-o", "args="], capture_output=True, text=True).stdout
    return [line for line in out.splitlines() if str(ws) in line and "flconfig.runtime." in line]


def _worker_pids(ws: Path) -> list[int]:
    out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
    return [int(line.split()[0]) for line in out.splitlines()
            if "flconfig.runtime.worker" in line and str(ws) in line]


def test_ctrl_c_stops_every_process_it_started(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=50)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws)],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            preexec_fn=sigint_at_default)  # it gets Ctrl-C
    assert proc.stdout is not None
    for line in proc.stdout:
        if "round 1/50" in line:
            break
    assert len(_worker_pids(ws)) == 3  # server + two client processes
    proc.send_signal(signal.SIGINT)
    rest = proc.stdout.read()
    assert proc.wait(timeout=30) == 130
    assert "interrupted" in rest
    deadline = time.monotonic() + 10
    while _worker_pids(ws) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert _worker_pids(ws) == []


def _kill_site_when_training(proc: subprocess.Popen[str], ws: Path, site: str) -> str:
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if "round 1/" in line:
            out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
            for row in out.splitlines():
                # only this test's worker: other flconfig runs on the machine are not ours to kill
                if "flconfig.runtime.worker" in row and f"--sites {site}" in row and str(ws) in row:
                    os.kill(int(row.split()[0]), signal.SIGKILL)
            break
    return seen + proc.stdout.read()


def test_a_client_that_dies_mid_run_is_noticed_and_the_round_completes(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=3, min_clients=2, epochs=1)
    ws = tmp_path / "ws"
    # A 600 s heartbeat timeout, as FLARE jobs may have: the death is known at once, from
    # the launcher, or the job would outlast this test's timeout (240 s) waiting for it.
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                             "-n", "3", "--processes", "3", "--heartbeat-timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _kill_site_when_training(proc, ws, "site-3")
    assert proc.wait(timeout=200) == 0, output
    assert "the process of site-3 exited with code -9" in output
    assert "site-3's process died (killed by SIGKILL): continuing with 2 of 3 sites" in output
    assert "lost contact with site-3" not in output  # not from the heartbeat
    assert "round 3/3: results from site-1, site-2" in output
    assert "job finished" in output


def test_the_job_fails_naming_the_lost_site_when_min_clients_no_longer_holds(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=3, min_clients=3, epochs=1)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                             "-n", "3", "--processes", "3", "--heartbeat-timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _kill_site_when_training(proc, ws, "site-3")
    assert proc.wait(timeout=200) == 1, output
    assert ("site-3's process died (killed by SIGKILL): 2 of 3 sites left, fewer than "
            "min_clients (3); stopping the job") in output
    failed = output.split("flconfig: job failed", 1)[1].splitlines()[0]
    assert failed.endswith(": site-3: its process died (killed by SIGKILL); "
                           "the job needs 3 sites (min_clients), 2 left"), output
    assert "round 3/3" not in output
    assert "Traceback" not in output


def test_a_pooled_process_that_dies_names_its_sites_when_started_without_the_zygote(
        tmp_path: Path) -> None:
    # --spawn: every process a new interpreter (the launcher's other way to start them);
    # four sites in two processes, site-2 and site-4 sharing one.
    job = make_job(tmp_path, num_rounds=3, min_clients=3, epochs=1)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                             "-n", "4", "--processes", "2", "--spawn", "--heartbeat-timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _kill_site_when_training(proc, ws, "site-2,site-4")
    assert proc.wait(timeout=200) == 1, output
    assert ("the process of site-2, site-4 died (killed by SIGKILL): 2 of 4 sites left, fewer "
            "than min_clients (3); stopping the job") in output
    failed = output.split("flconfig: job failed", 1)[1].splitlines()[0]
    assert failed.endswith(": the process of site-2, site-4 died (killed by SIGKILL); "
                           "the job needs 3 sites (min_clients), 2 left"), output


def test_a_site_whose_process_dies_while_the_sites_connect_fails_the_job_at_once(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, min_clients=2, epochs=1)
    ws = tmp_path / "ws"
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws),
                             "-n", "2", "--spawn", "--heartbeat-timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:  # the workers are started; the server waits for their Hello
        seen += line
        if "waiting for 2 of 2 sites" in line:
            out = subprocess.run(["ps", "-eww", "-o", "pid=,args="], capture_output=True, text=True).stdout
            for row in out.splitlines():
                if "flconfig.runtime.worker" in row and "--sites site-2" in row and str(ws) in row:
                    os.kill(int(row.split()[0]), signal.SIGKILL)
            break
    output = seen + proc.stdout.read()
    # Not after the sites' connect timeout (120 s): it is known that site-2 will not come.
    assert proc.wait(timeout=100) == 1, output
    failed = output.split("flconfig: job failed", 1)[1].splitlines()[0]
    assert "site-2" in failed and "its process died" in failed and "killed by SIGKILL" in failed, output


def test_many_sites_share_a_bounded_pool_of_worker_processes(tmp_path: Path) -> None:
    job = make_job(tmp_path, num_rounds=1, min_clients=2)
    ws = tmp_path / "ws"
    proc = launch(str(job), "-w", str(ws), "-n", "16", "--processes", "2")
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "16 client site(s) in 2 worker process(es)" in proc.stdout
    assert "16 sites connected" in proc.stdout
    assert "round 1/1: results from site-1, site-2, site-3, site-4, site-5, site-6, site-7, site-8 and 8 more" \
        in proc.stdout
    assert len(list((ws / "server" / "simulate_job" / "tb_events").iterdir())) == 16


def test_plan_workers_divides_sites_and_threads() -> None:
    from flconfig.launch.launcher import plan_workers, threads_per_process

    assert plan_workers(["a", "b"], cores=2) == [["a"], ["b"]]
    # More sites than cores: pooled, one process per core (8 torch imports on 2 cores is slow).
    assert [len(g) for g in plan_workers([f"s{i}" for i in range(8)], cores=2)] == [4, 4]
    assert [len(g) for g in plan_workers([f"s{i}" for i in range(8)], cores=16)] == [1] * 8
    assert len(plan_workers([f"s{i}" for i in range(12)], cores=16)) == 8  # never above 8
    groups = plan_workers([f"s{i}" for i in range(64)], cores=2)
    assert len(groups) == 2 and sorted(len(g) for g in groups) == [32, 32]
    assert threads_per_process(16, 3) == 5
    assert threads_per_process(2, 3) == 1


def test_a_worker_hosting_many_sites_gets_one_malloc_arena_unless_the_user_chose(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from flconfig.launch.launcher import worker_environment

    monkeypatch.delenv("MALLOC_ARENA_MAX", raising=False)
    assert worker_environment(512)["MALLOC_ARENA_MAX"] == "1"
    assert "MALLOC_ARENA_MAX" not in worker_environment(1)  # a process of its own: glibc's default
    monkeypatch.setenv("MALLOC_ARENA_MAX", "4")
    assert worker_environment(512)["MALLOC_ARENA_MAX"] == "4"


def _children(pid: int) -> list[tuple[str, str]]:
    """(comm, command line) of each live child of ``pid``."""
    found = []
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        try:
            stat = (proc / "stat").read_text()
            fields = stat.rpartition(")")[2].split()
            if int(fields[1]) != pid or fields[0] == "Z":
                continue
            cmdline = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode().strip()
            found.append(((proc / "comm").read_text().strip(), cmdline))
        except (OSError, IndexError, ValueError):
            continue
    return found


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking from a zygote is Linux-only")
@pytest.mark.parametrize("how", ["fork", "spawn"])
def test_the_server_and_workers_are_forked_from_one_torch_import_or_spawned(
    tmp_path: Path, how: str
) -> None:
    """By default `flconfig launch` forks its processes from one that imported torch once;
    they are the launcher's children all the same, and show the command line (and, forked,
    the name) of their role; `--spawn` starts each afresh."""
    job = make_job(tmp_path, num_rounds=3)
    ws = tmp_path / "ws"
    extra = ["--spawn"] if how == "spawn" else []
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws), *extra],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    assert proc.stdout is not None
    seen = ""
    children: list[tuple[str, str]] = []
    for line in proc.stdout:
        seen += line
        if "round 1/3" in line:
            children = _children(proc.pid)
            break
    seen += proc.stdout.read()
    assert proc.wait(timeout=120) == 0, seen
    commands = sorted(cmd.split("flconfig.runtime.worker", 1)[-1].strip() for _, cmd in children)
    spec = ws / ".flconfig" / "simulate_job" / "spec.json"
    assert commands == [f"clients --spec {spec} --sites site-1", f"clients --spec {spec} --sites site-2",
                        f"server --spec {spec}"], children  # and no zygote left: it went once all were forked
    names = sorted(name for name, _ in children)
    if how == "fork":
        assert names == ["flconfig-client", "flconfig-client", "flconfig-server"]
    else:
        assert all(name.startswith("python") for name in names), names
    assert _worker_pids(ws) == []


ZYGOTE_SCRIPT = r"""
import json, os, signal, sys, tempfile
from flconfig.launch.processes import Zygote
z = Zygote.start("/nowhere")
assert z is not None and z.ready()
with tempfile.TemporaryFile("w+") as err, open(os.devnull) as null:
    bad = z.fork(["server", "--spec", "/no/such/spec.json"], {}, null.fileno(), err.fileno(), err.fileno())
    waiting = z.fork(["clients", "--spec", sys.argv[1], "--sites", "site-1"], {}, null.fileno(),
                     err.fileno(), err.fileno())
    z.close()
    codes = {"bad": bad.wait(timeout=60), "parent": open(f"/proc/{waiting.pid}/stat").read().rpartition(")")[2].split()[1]}
    waiting.kill()
    codes["killed"] = waiting.wait(timeout=60)
    err.seek(0)
    codes["err"] = err.read()
print(json.dumps({**codes, "me": os.getpid()}))
"""


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="forking from a zygote is Linux-only")
def test_forked_processes_are_the_launchers_to_wait_for_and_to_kill(tmp_path: Path) -> None:
    from flconfig.runtime.planner import plan_run
    from flconfig.runtime.spec import WorkerSpec
    from flconfig.validate.loader import load_job

    plan = tmp_path / "plan.json"
    plan.write_text(plan_run(load_job(EXAMPLE), ["site-1"], tmp_path, "j").to_json())
    # a worker waiting for a server that never comes
    spec = WorkerSpec(plan=str(plan), workspace=str(tmp_path), job_id="j", sites=("site-1",),
                      credentials={"site-1": "token"}, heartbeat_timeout=60,
                      port_file=str(tmp_path / "never.port"), startup_timeout=60).write(tmp_path / "spec.json")
    out = subprocess.run([sys.executable, "-c", ZYGOTE_SCRIPT, str(spec)], capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout)
    assert result["bad"] != 0 and "spec.json" in result["err"]  # its error reached its stderr
    assert int(result["parent"]) == result["me"]  # adopted by the launcher, not the zygote
    assert result["killed"] == -signal.SIGKILL
