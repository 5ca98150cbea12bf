"""A deployed server's state and its port: a job store that cannot be written, a port or a
workspace already taken, POC services that do not come up, leftovers of a killed server.
Real `flconfig server` / `client` / `poc` processes over mutual TLS, a real SQLite store."""

from __future__ import annotations

import json
import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import uuid
from pathlib import Path

import pytest
from harness import REPO
from harness.deployment import SEED_JOB, Deployment, flconfig, free_port, job_variant

pytestmark = pytest.mark.slow
ROOT = REPO


def _job_processes(marker: str) -> list[str]:
    out = subprocess.run(["ps", "-eo", "args"], capture_output=True, text=True, check=True).stdout
    return [line for line in out.splitlines() if "flconfig.runtime.worker" in line and marker in line]


def test_a_job_the_store_cannot_record_as_ended_is_shown_ended_and_recorded_once_it_can(
        tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True}).start()
    try:
        job = job_variant(SEED_JOB, tmp_path / "long", rounds=200, epochs=1, sites=["site-1"], min_clients=1)
        job_id = dep.submit(job)
        dep.wait_state(job_id, ("running",))
        # Another program holds the store's write lock (a backup, a stuck tool): every
        # write of the server fails ("database is locked"); reads go on (WAL).
        blocker = sqlite3.connect(str(dep.workspace / "jobs.db"), timeout=0, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        try:
            assert dep.admin("abort", job_id).returncode == 0
            record = dep.wait_state(job_id, ("aborted",))
            dep.wait_for(lambda: "note" in dep.state(job_id), "the note that the store has not recorded it")
            note = dep.state(job_id)["note"]
            assert note.startswith("not recorded in the job store yet: cannot update the job store ")
            assert note.endswith("jobs.db: database is locked")
            assert record["error"] == "aborted by admin@test"
            dep.wait_for(lambda: not _job_processes(job_id), "the job's processes to end")
            listed = dep.admin("jobs", check=True).stdout
            assert "aborted" in listed and "not recorded in the job store yet" in listed
        finally:
            blocker.execute("ROLLBACK")
            blocker.close()
        dep.wait_for(lambda: "note" not in dep.state(job_id), "the store to record the end")
        assert dep.state(job_id)["state"] == "aborted"
        log = dep.log()
        assert "but the job store cannot record it yet" in log
        assert f"job {job_id}: recorded as aborted in the job store" in log
        assert log.count("but the job store cannot record it yet") == 1  # said once, not per retry
        assert "Traceback" not in log
        # What the store holds survives a restart: aborted, not "failed: the server stopped".
        assert dep.server is not None
        dep.server.terminate()
        dep.server.wait(timeout=60)
        dep.start_server()
        assert dep.state(job_id)["state"] == "aborted"
    finally:
        dep.stop()


def test_a_job_the_store_has_as_running_but_no_process_runs_is_failed_saying_so(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True})
    dep.start_server()
    try:
        job_id = str(uuid.uuid4())
        with sqlite3.connect(str(dep.workspace / "jobs.db"), timeout=10) as db:  # as a lost run leaves it
            db.execute("INSERT INTO jobs (id, name, state, submitter, submitted_at, seq) "
                       "VALUES (?, 'ghost', 'running', 'admin@test', 0, 99)", (job_id,))
        dep.wait_for(lambda: dep.state(job_id)["state"] == "failed", "the ghost job to be failed")
        assert dep.state(job_id)["error"] == ("the server lost track of the job while it was running: no "
                                              "process of it is left")
    finally:
        dep.stop()


def test_a_second_server_on_a_port_or_workspace_in_use_refuses_to_start_and_the_first_serves_on(
        tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True}).start()
    try:
        kit = str(dep.root / "server")
        second = flconfig("server", kit, "--host", "127.0.0.1", "--workspace", str(tmp_path / "other"), timeout=60)
        assert second.returncode == 1
        assert second.stderr.strip().splitlines() == [
            f"flconfig server: cannot listen on 127.0.0.1:{dep.port}: the port is in use (another flconfig "
            "server, or another program)"], second.stderr
        same_ws = flconfig("server", kit, "--host", "127.0.0.1", "--port", str(free_port()), timeout=60)
        assert same_ws.returncode == 1
        assert same_ws.stderr.strip().splitlines() == [
            f"flconfig server: another flconfig server uses the workspace {dep.workspace} "
            f"(pid {dep.server.pid}); stop it first, or give this one another --workspace"], same_ws.stderr  # type: ignore[union-attr]
        # The first one answers every call, and nothing of its state was touched.
        for _ in range(10):
            assert dep.admin("jobs", check=True).stdout.startswith("sites connected: site-1")
        job_id = dep.submit(job_variant(SEED_JOB, tmp_path / "seed", rounds=1, epochs=1, sites=["site-1"],
                                        min_clients=1))
        assert dep.wait_state(job_id, ("finished", "failed"))["state"] == "finished"
    finally:
        dep.stop()


def test_what_a_killed_server_was_unpacking_is_cleared_at_start(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True})
    leftover = dep.workspace / ".incoming" / uuid.uuid4().hex / "job" / "app"
    leftover.mkdir(parents=True)
    (leftover / "big.bin").write_bytes(b"\0" * 4096)
    dep.start_server()
    try:
        assert not (dep.workspace / ".incoming").exists()
    finally:
        dep.stop()


# --- POC --------------------------------------------------------------------------------------


def _listening(port: int) -> list[str]:
    """The local addresses listening on ``port`` (Linux: /proc/net/tcp*), as hex."""
    found = []
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            fields = line.split()
            address, _, hex_port = fields[1].rpartition(":")
            if fields[3] == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
                found.append(address)
    return found


LOOPBACK4, LOOPBACK6_MAPPED = "0100007F", "0000000000000000FFFF00000100007F"


def test_poc_start_waits_for_every_service_listens_on_loopback_and_says_why_one_fails(tmp_path: Path) -> None:
    poc = tmp_path / "poc"
    env = {"FLCONFIG_POC_DIR": str(poc)}
    flconfig("poc", "prepare", "-n", "2", "--port", "0", env=env, check=True)
    port = json.loads((poc / "server" / "startup" / "kit.json").read_text())["server"]["port"]
    # Started from a folder holding another 'flconfig' package: the services are not fooled.
    elsewhere = tmp_path / "checkout"
    (elsewhere / "flconfig").mkdir(parents=True)
    (elsewhere / "flconfig" / "__init__.py").write_text("raise SystemExit('the wrong flconfig')\n")
    (elsewhere / "flconfig" / "__main__.py").write_text("raise SystemExit('the wrong flconfig')\n")
    # The console script, as a user types it (it puts its own folder first on the path, not
    # the working folder); the services it starts run 'python -m flconfig'.
    script = Path(sys.executable).parent / "flconfig"
    started = subprocess.run([str(script), "poc", "start"], cwd=elsewhere, text=True,
                             capture_output=True, timeout=180, env={**os.environ, **env})
    try:
        assert started.returncode == 0, started.stdout + started.stderr
        assert "POC started: server, site-1, site-2" in started.stdout
        jobs = json.loads(flconfig("jobs", "--json", env=env, check=True).stdout)
        assert jobs["sites"] == ["site-1", "site-2"]  # every site connected when start returned
        listening = _listening(port)
        if listening:  # Linux
            assert set(listening) <= {LOOPBACK4, LOOPBACK6_MAPPED}, listening
    finally:
        flconfig("poc", "stop", env=env)

    # The port is taken by another program: start fails saying so, and leaves nothing running.
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        failed = flconfig("poc", "start", env=env, timeout=180)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"flconfig poc start: the server exited with code 1: flconfig server: cannot listen on "
        f"127.0.0.1:{port}: the port is in use (another flconfig server, or another program)"], failed.stderr
    assert flconfig("poc", "stop", env=env).stdout.strip() == "flconfig: the POC is not running"

    # A site that cannot start: named, with its reason; the others are stopped again.
    (poc / "site-2" / "startup" / "client.key").unlink()
    failed = flconfig("poc", "start", env=env, timeout=180)
    assert failed.returncode == 1
    assert failed.stderr.strip().splitlines() == [
        f"flconfig poc start: site-2 exited with code 2: flconfig client: {poc / 'site-2'}: the kit lacks "
        "client.key"], failed.stderr
    assert flconfig("poc", "stop", env=env).stdout.strip() == "flconfig: the POC is not running"
    with socket.socket() as free:  # nothing listens there any more (TIME_WAIT aside)
        free.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        free.bind(("127.0.0.1", port))
        free.listen()


def test_poc_prepare_refuses_a_file_and_a_folder_that_is_no_poc(tmp_path: Path) -> None:
    file = tmp_path / "a-file"
    file.write_text("x")
    result = flconfig("poc", "prepare", "--dir", str(file))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"flconfig poc prepare: {file} is a file, not a folder; give --dir a folder (new or a POC's)"]
    folder = tmp_path / "documents"
    folder.mkdir()
    (folder / "thesis.tex").write_text("keep me")
    result = flconfig("poc", "prepare", "--dir", str(folder), "--force")
    assert result.returncode == 1
    assert "is not empty and holds no POC" in result.stderr
    assert (folder / "thesis.tex").read_text() == "keep me"
    shutil.rmtree(folder)


def test_one_instance_of_a_site_at_a_time_the_other_waits_and_takes_over(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True}).start()
    kit = dep.root / "site-1"
    second: subprocess.Popen[bytes] | None = None
    try:
        # A second instance on the same workspace: refused at once.
        same = flconfig("client", str(kit), timeout=60)
        assert same.returncode == 1
        assert (f"flconfig client site-1: another instance of site-1 uses the workspace {kit / 'workspace'} "
                f"(pid {dep.clients['site-1'].pid}); stop it first") in same.stdout
        # Another machine's copy of the kit: the server refuses it while the first is there.
        other = tmp_path / "other-machine"
        other.mkdir()
        log = other / "service.log"
        with open(log, "wb") as out:
            second = subprocess.Popen([sys.executable, "-m", "flconfig", "client", str(kit), "--workspace",
                                       str(other / "workspace")], stdout=out, stderr=subprocess.STDOUT)
        dep.wait_for(lambda: "the server refuses this instance: site-1 is already connected from another "
                             "instance" in log.read_text(), "the second instance to be told why")
        job = job_variant(SEED_JOB, tmp_path / "seed", rounds=1, epochs=1, sites=["site-1"], min_clients=1)
        first_job = dep.submit(job)
        assert dep.wait_state(first_job, ("finished", "failed"))["state"] == "finished"
        assert (kit / "workspace" / first_job).is_dir() and not (other / "workspace" / first_job).exists()
        # The first instance dies: the second takes its place.
        dep.clients["site-1"].kill()
        dep.clients["site-1"].wait()
        dep.wait_for(lambda: "site site-1: a new instance took over" in dep.log(), "the takeover")
        second_job = dep.submit(job)
        assert dep.wait_state(second_job, ("finished", "failed"))["state"] == "finished"
        assert (other / "workspace" / second_job).is_dir()
        assert log.read_text().count("the server refuses this instance") == 1  # said once
    finally:
        if second is not None and second.poll() is None:
            second.terminate()
            second.wait(timeout=30)
        dep.stop()


def test_a_site_that_finds_the_job_invalid_for_itself_says_so_in_one_line_without_its_paths(
        tmp_path: Path) -> None:
    """Valid as checked (for the first site), invalid once resolved for site-2 on its own
    machine: the refusal the admin reads is one line, with the job's paths only, and no part
    of site-2's workspace path (here reached through {WORKSPACE:.25})."""
    dep = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True}).start()
    try:
        job = job_variant(SEED_JOB, tmp_path / "seed", rounds=1, epochs=1, sites=["site-1", "site-2"],
                          min_clients=2)
        client = job / "app" / "config" / "config_fed_client.json"
        config = json.loads(client.read_text())
        config["components"][0]["id"] = "{WORKSPACE:.25}{SITE_NAME}"
        config["executors"][0]["executor"]["args"]["learner_id"] = "{WORKSPACE:.25}site-1"
        client.write_text(json.dumps(config, indent=2))
        job_id = dep.submit(job)
        record = dep.wait_state(job_id, ("finished", "failed"))
        assert record["state"] == "failed"
        error = record["error"]
        assert "site-2 refused it: the job is invalid here: app/config/config_fed_client.json:" in error, error
        assert "\n" not in error and "Traceback" not in error
        assert str(dep.root) not in error and str(dep.root)[:25] not in error, error
        assert "{WORKSPACE:.25}" in error
    finally:
        dep.stop()
