"""End to end: `flconfig launch --backend ray` on a real two-node Ray cluster on this machine
(ray.cluster_utils.Cluster: a head and a second raylet): the example job's sites placed on
both nodes, every site's scalars in the server's TensorBoard files, a node lost mid-run
reported by its sites and judged against min_clients. Plus what a user without Ray sees,
and that the process backend never imports Ray."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from harness import REPO
from harness.env_job import reporting_job, seen_by
from harness.launching import launch, scalars
from harness.numpy_job import write_job

EXAMPLE = REPO / "configs" / "tensorboard-streaming"
#: "flconfig: site-1, site-3 on Ray node 10.0.0.2 (a1b2c3d4)"
PLACED = re.compile(r"^flconfig: (.+) on Ray node (\S+) \(([0-9a-f]{8})\)$", re.MULTILINE)
#: CPUs of each node: two actors of one CPU fit either node, so only spreading splits them.
NODE_CPUS = 2


def example_job(tmp_path: Path, num_rounds: int, min_clients: int, num_sites: int = 16) -> Path:
    """The example, trimmed: FedAvg only, one local epoch on a 1/``num_sites`` share of the digits."""
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["num_rounds"] = num_rounds
    server["min_clients"] = min_clients
    server["workflows"] = server["workflows"][:1]
    server["components"] = [c for c in server["components"] if c["id"] != "json_generator"]
    server_file.write_text(json.dumps(server, indent=2))
    meta = json.loads((job / "meta.json").read_text())
    meta["min_clients"] = min_clients
    (job / "meta.json").write_text(json.dumps(meta))
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    learner = next(c for c in client["components"] if c["id"] == "pt_learner")
    learner["args"]["epochs"] = 1
    learner["args"]["num_sites"] = num_sites  # 16: about 90 training images a site
    client_file.write_text(json.dumps(client, indent=2))
    return job


def with_launch(job: Path, launch_defaults: dict[str, object]) -> Path:
    """``job`` with ``launch_defaults`` as its meta's "launch" (how flconfig launch runs it)."""
    meta = json.loads((job / "meta.json").read_text())
    (job / "meta.json").write_text(json.dumps({**meta, "launch": launch_defaults}))
    return job


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """A Ray cluster's head node on this machine (the second node is each test's own)."""
    from ray.cluster_utils import Cluster

    made = None
    for _ in range(3):  # a loaded machine can miss Ray's start-up deadline: try again
        try:
            made = Cluster(initialize_head=True, head_node_args={"num_cpus": NODE_CPUS,
                                                                 "resources": {"head_node": 1}})
            break
        except Exception:  # noqa: BLE001 - Ray raises a bare Exception for a node too slow to start
            continue
    assert made is not None, "the Ray cluster did not start"
    yield made
    made.shutdown()


@pytest.fixture
def second_node(cluster: Any) -> Iterator[Any]:
    """A second raylet joined to ``cluster``, removed after the test if it is still there."""
    # Two GPUs Ray hands out (it checks no hardware for them): only this node has any.
    node = cluster.add_node(num_cpus=NODE_CPUS, num_gpus=2, resources={"second_node": 1})
    cluster.wait_for_nodes()
    yield node
    if node in cluster.worker_nodes:
        cluster.remove_node(node)


def placements(output: str) -> dict[str, list[str]]:
    """Each node's short id -> the sites the launch output says run on it."""
    found: dict[str, list[str]] = {}
    for sites, _, node in PLACED.findall(output):
        found.setdefault(node, []).extend(sites.split(", "))
    return found


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_the_example_runs_with_its_sites_on_both_nodes_and_every_scalar_reaches_tensorboard(
        tmp_path: Path, cluster: Any, second_node: Any) -> None:
    job = example_job(tmp_path, num_rounds=2, min_clients=4)
    ws = tmp_path / "ws"
    done = launch(job, ws, "-n", "4", "--ray-address", cluster.address, "--quiet-metrics", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in 4 Ray actor(s) reserving 1 CPU each, on 2 Ray node(s) with 4 CPU, 2 GPU" in done.stdout
    placed = placements(done.stdout)
    assert set(placed) == {cluster.head_node.node_id[:8], second_node.node_id[:8]}, done.stdout
    assert sorted(s for sites in placed.values() for s in sites) == ["site-1", "site-2", "site-3", "site-4"]
    assert "round 2/2: results from site-1, site-2, site-3, site-4" in done.stdout
    assert "job finished" in done.stdout
    tb = ws / "server" / "simulate_job" / "tb_events"
    for site in ("site-1", "site-2", "site-3", "site-4"):
        losses = scalars(tb / site, "train_loss")
        assert losses and len({step for step, _ in losses}) == len(losses), site  # each record once
        assert (ws / site / "simulate_job" / "log.txt").stat().st_size > 0  # the site's own log
    # Ray's own lines stay out of the launch output.
    assert "INFO" not in done.stdout + done.stderr and "raylet" not in done.stdout + done.stderr


@pytest.mark.slow
@pytest.mark.timeout(400)
def test_sites_that_need_gpus_run_where_ray_has_them_and_see_the_gpu_ray_gave(
        tmp_path: Path, cluster: Any, second_node: Any) -> None:
    # The job says what its sites need (meta "launch"); the machine says where Ray is.
    job = with_launch(reporting_job(tmp_path), {"backend": "ray", "site_gpus": 0.5})
    ws = tmp_path / "ws"
    # A CPU and half a GPU a site: only the second node has GPUs, and its 2 CPUs hold two
    # such actors (its GPUs would hold four). --device cpu: Ray assigns the GPUs the node
    # declares; the sites train on the CPU here.
    done = launch(job, ws, "-n", "4", "--ray-address", cluster.address, "--device", "cpu",
                  "--quiet-metrics", timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in 2 Ray actor(s) reserving 1 CPU, 0.5 GPU each, on 2 Ray node(s) with 4 CPU, 2 GPU" in done.stdout
    assert set(placements(done.stdout)) == {second_node.node_id[:8]}, done.stdout
    seen = {site: seen_by(ws, site) for site in ("site-1", "site-2", "site-3", "site-4")}
    assert {gpus for gpus, _ in seen.values()} <= {"0", "1"}, seen  # one GPU each, as Ray assigned
    assert len({pid for _, pid in seen.values()}) == 2  # two actors of two sites
    assert "not started yet" not in done.stdout


#: Rounds of the lost-node test.
LOST_ROUNDS = 20


def _remove_node_when_training(proc: subprocess.Popen[str], cluster: Any, node: Any) -> str:
    """The launch's output; ``node`` removed (killed) once the first round is in."""
    assert proc.stdout is not None
    seen = ""
    for line in proc.stdout:
        seen += line
        if "round 1/" in line:
            cluster.remove_node(node, allow_graceful=False)
            break
    return seen + proc.stdout.read()


@pytest.mark.slow
@pytest.mark.timeout(400)
@pytest.mark.parametrize("min_clients", [2, 3])
def test_a_node_lost_mid_run_is_reported_by_its_sites_and_judged_against_min_clients(
        tmp_path: Path, cluster: Any, second_node: Any, min_clients: int) -> None:
    # Rounds long and many enough that the node is gone well before the last one: a round of
    # 90 images a site took 0.1 s, and a node removed after the job ended tests nothing.
    job = example_job(tmp_path, num_rounds=LOST_ROUNDS, min_clients=min_clients, num_sites=4)
    ws = tmp_path / "ws"
    # A 600 s heartbeat timeout: the loss is known from Ray at once, or this test times out.
    proc = subprocess.Popen([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(job), "-w", str(ws), "-n", "4",
                             "--processes", "2", "--ray-address", cluster.address, "--quiet-metrics",
                             "--heartbeat-timeout", "600"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    output = _remove_node_when_training(proc, cluster, second_node)
    code = proc.wait(timeout=300)
    lost = placements(output)[second_node.node_id[:8]]
    kept = [s for s in ("site-1", "site-2", "site-3", "site-4") if s not in lost]
    assert len(lost) == 2, output
    ip = next(ip for _, ip, short in PLACED.findall(output) if short == second_node.node_id[:8])
    node = f"{ip} ({second_node.node_id[:8]})"
    assert f"flconfig: {', '.join(lost)}: its Ray node {node} was lost\n" in output, output
    said = f"the process of {', '.join(lost)} died (its Ray node {node} was lost)"
    assert "lost contact with" not in output  # from Ray, not from the heartbeat
    assert "Traceback" not in output and "raylet" not in output
    if min_clients == 2:
        assert code == 0, output
        assert f"{said}: continuing with 2 of 4 sites" in output
        assert f"round {LOST_ROUNDS}/{LOST_ROUNDS}: results from {', '.join(kept)}" in output
        assert "job finished" in output
    else:
        assert code == 1, output
        assert f"{said}: 2 of 4 sites left, fewer than min_clients (3); stopping the job" in output
        failed = output.split("flconfig: job failed", 1)[1].splitlines()[0]
        assert failed.endswith("the job needs 3 sites (min_clients), 2 left"), output


def test_backend_ray_without_ray_installed_is_one_line(tmp_path: Path) -> None:
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        from flconfig.cli import main
        sys.exit(main(["launch", {str(EXAMPLE)!r}, "-w", {str(tmp_path / 'ws')!r}, "--backend", "ray"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 2
    assert done.stdout == ""
    assert done.stderr == ("flconfig launch: --backend ray needs Ray, which is not installed: "
                           "pip install 'flconfig[ray]'\n")
    assert not (tmp_path / "ws").exists()


@pytest.mark.parametrize("args, says", [
    (["--site-gpus", "0.5"], "--site-gpus is for --backend ray (the process backend places sites with --gpus)"),
    (["--backend", "ray", "--site-cpus", "0"], "--site-cpus must be above 0 (an actor's sites train on its CPUs)"),
    (["--backend", "ray", "--site-gpus", "-1"], "--site-gpus must be a number at least 0, got -1"),
    (["--backend", "process", "--ray-address", "auto"], "--ray-address is for --backend ray"),
    (["--backend", "ray", "--gpus", "0"], "--gpus places sites on this machine's GPUs (the process backend); "
                                          "with --backend ray, give each site GPUs with --site-gpus"),
])
def test_a_ray_option_that_does_not_fit_is_one_line(tmp_path: Path, args: list[str], says: str) -> None:
    done = launch(EXAMPLE, tmp_path / "ws", *args, timeout=120)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"flconfig launch: {says}\n")


def test_an_unreachable_ray_cluster_is_one_line(tmp_path: Path) -> None:
    # No Ray cluster runs for this launch to find.
    env = {k: v for k, v in os.environ.items() if k != "RAY_ADDRESS"}
    done = subprocess.run([sys.executable, "-m", "flconfig", "launch", "--job-id", "simulate_job", str(EXAMPLE), "-w", str(tmp_path / "ws"),
                           "--ray-address", "127.0.0.1:9"], capture_output=True, text=True, timeout=200, env=env)
    assert done.returncode == 2, done.stdout + done.stderr
    assert done.stderr.startswith("flconfig launch: cannot start or reach the Ray cluster at 127.0.0.1:9: ")
    assert len(done.stderr.splitlines()) == 1, done.stderr


@pytest.mark.slow
def test_the_process_backend_never_imports_ray(tmp_path: Path) -> None:
    job = write_job(tmp_path)
    script = textwrap.dedent(f"""
        import json, sys
        from flconfig.cli import main
        code = main(["launch", {str(job)!r}, "-w", {str(tmp_path / 'ws')!r}, "-n", "2", "--quiet-metrics"])
        print(json.dumps({{"code": code, "ray": sorted(m for m in sys.modules if m.split(".")[0] == "ray")}}))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=220)
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"code": 0, "ray": []}, done.stdout + done.stderr


def test_a_job_that_asks_for_ray_where_ray_is_not_installed_is_one_line(tmp_path: Path) -> None:
    job = with_launch(write_job(tmp_path), {"backend": "ray"})
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        from flconfig.cli import main
        sys.exit(main(["launch", {str(job)!r}, "-w", {str(tmp_path / 'ws')!r}, "-n", "2"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("flconfig launch: the job's meta asks for the ray backend (launch.backend), "
                           "and Ray is not installed: pip install 'flconfig[ray]', or run it with "
                           "--backend process\n")
    assert not (tmp_path / "ws" / "site-1").exists()


@pytest.mark.slow
def test_the_command_line_backend_wins_over_the_jobs(tmp_path: Path) -> None:
    job = with_launch(write_job(tmp_path), {"backend": "ray", "site_cpus": 1})
    done = launch(job, tmp_path / "ws", "-n", "2", "--backend", "process", "--quiet-metrics", timeout=220)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "in 2 worker process(es)" in done.stdout and "Ray" not in done.stdout
    # A Ray-only setting of the job's does not apply to the process backend, and is not an error;
    # the same setting on the command line is.
    done = launch(job, tmp_path / "ws", "-n", "2", "--backend", "process", "--site-cpus", "1", timeout=120)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == ("flconfig launch: --site-cpus is for --backend ray (the process backend "
                           "places sites with --gpus)\n")
    # --ray-address means Ray, whatever the job says: here Ray is asked of a machine without it.
    process_job = with_launch(write_job(tmp_path / "p"), {"backend": "process"})
    script = textwrap.dedent(f"""
        import sys
        sys.modules["ray"] = None  # as if Ray were not installed
        from flconfig.cli import main
        sys.exit(main(["launch", {str(process_job)!r}, "-w", {str(tmp_path / 'ws2')!r},
                       "--ray-address", "127.0.0.1:1"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert (done.returncode, done.stderr) == (2, "flconfig launch: --backend ray needs Ray, which is not "
                                                 "installed: pip install 'flconfig[ray]'\n")
    # The ray backend the job's meta asks for, with --gpus: the message says where Ray came from.
    done = launch(with_launch(write_job(tmp_path / "g"), {"backend": "ray"}), tmp_path / "ws3", "--gpus", "0",
                  timeout=120)
    assert (done.returncode, done.stderr) == (
        2, "flconfig launch: --gpus places sites on this machine's GPUs (the process backend); with the ray "
           "backend (the job's meta), give each site GPUs with --site-gpus\n")
