"""The seam to the worker processes: one typed spec, written once, read back whole, and a
file that is not one refused in one line by the worker it was given to."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

from flconfig.errors import JobError
from flconfig.runtime.spec import WorkerSpec, heartbeat_interval_for, wait_for_port, worker_command


def a_spec(tmp_path: Path, **changes: object) -> WorkerSpec:
    fields: dict[str, object] = {
        "plan": str(tmp_path / "plan.json"), "workspace": str(tmp_path), "job_id": "job-1",
        "sites": ("site-1", "site-2"), "credentials": {"site-1": "a", "site-2": "b"},
        "heartbeat_timeout": 8.0, **changes,
    }
    return WorkerSpec(**fields)  # type: ignore[arg-type]


def test_a_spec_written_is_the_spec_read_back_and_only_its_owner_can_read_it(tmp_path: Path) -> None:
    spec = a_spec(tmp_path, tls={"ca": "/k/ca.pem"}, port_file=str(tmp_path / "server.port"), device="cpu")
    written = spec.write(tmp_path / "spec.json")
    assert oct(written.stat().st_mode & 0o777) == "0o600"  # the sites' tokens are inside
    assert WorkerSpec.load(written) == spec
    # the defaults live in one place: a site beats four times per heartbeat timeout
    assert spec.heartbeat_interval == heartbeat_interval_for(8.0) == 2.0
    assert spec.run_dir_of("site-2") == tmp_path / "site-2" / "job-1"
    assert a_spec(tmp_path, run_dir="/deployed/job").run_dir_of("site-2") == Path("/deployed/job")


def test_a_spec_is_immutable(tmp_path: Path) -> None:
    spec = a_spec(tmp_path)
    with pytest.raises(AttributeError):
        spec.job_id = "other"  # type: ignore[misc]
    with pytest.raises(TypeError):
        spec.credentials["site-3"] = "c"  # type: ignore[index]
    assert spec.with_address("127.0.0.1:9").address == "127.0.0.1:9" and spec.address is None


@pytest.mark.parametrize("data, says", [
    ({"plan": "p"}, "missing"),
    ({"plan": "p", "workspace": "w", "job_id": "j", "sites": [], "credentials": {}, "heartbeat_timeout": 5,
      "job": "/old/key"}, "unknown keys: job"),
    ({"plan": "p", "workspace": "w", "job_id": "j", "sites": [], "credentials": {}, "heartbeat_timeout": "5"},
     "a wrong value for heartbeat_timeout"),
    ({"plan": "p", "workspace": "w", "job_id": "j", "sites": [], "credentials": {}, "heartbeat_timeout": 5,
      "port": 70000}, "a wrong value for port"),
    ([1, 2], "not a JSON object"),
])
def test_a_file_that_is_not_a_spec_is_refused_saying_why(tmp_path: Path, data: object, says: str) -> None:
    file = tmp_path / "spec.json"
    file.write_text(json.dumps(data))
    with pytest.raises(JobError) as err:
        WorkerSpec.load(file)
    assert says in str(err.value)


def test_a_worker_given_a_broken_spec_says_so_in_one_line(tmp_path: Path) -> None:
    file = tmp_path / "spec.json"
    file.write_text('{"plan": "p"')
    proc = subprocess.run(worker_command("server", file), capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert proc.returncode == 2
    assert proc.stderr.startswith(f"flconfig worker: cannot read the worker spec {file}: ")
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_the_wait_for_the_servers_port_reads_it_whole_and_stops_when_the_server_is_gone(tmp_path: Path) -> None:
    port_file = tmp_path / "server.port"
    port_file.write_text("")  # being written
    assert wait_for_port(port_file, timeout=60, alive=lambda: False) is None
    port_file.write_text("8123\n")
    assert wait_for_port(port_file, timeout=60) == 8123
    assert worker_command("clients", port_file, ["site-1", "site-2"])[-4:] == [
        "--spec", str(port_file), "--sites", "site-1,site-2"]
    assert sys.executable == worker_command("server", port_file)[0]
