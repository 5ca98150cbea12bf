"""Distributed mode for real: `flconfig server` / `client` processes over mutual TLS, admin commands,
the job store across a server restart, and every refusal the issue names."""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import grpc
import pytest
from google.protobuf.json_format import MessageToDict
from harness import REPO
from harness.counting_job import counting_job, runs_in
from harness.deployment import (
    ADMIN,
    SEED_JOB,
    Deployment,
    expired_kit,
    flconfig,
    free_ports,
    job_variant,
    provision_project,
)
from harness.launching import scalars

from flconfig.deploy import wire
from flconfig.deploy.admin import Admin, AdminError
from flconfig.deploy.kit import load_kit
from flconfig.transport.tls import job_server_tls

pytestmark = pytest.mark.slow
ROOT = REPO


@pytest.fixture(scope="module")
def system(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    """A server and three sites; site-3 does not allow custom code."""
    root = tmp_path_factory.mktemp("deploy")
    # The jobs' servers on two ports only, as behind a firewall (one job runs at a time).
    ports = free_ports(2)
    dep = Deployment(root, {"site-1": True, "site-2": True, "site-3": False},
                     server_args=("--job-ports", f"{ports[0]}-{ports[-1]}")).start()
    dep.job_ports = ports  # type: ignore[attr-defined]
    yield dep
    dep.stop()


def test_a_submitted_job_runs_on_its_sites_and_streams_into_the_servers_workspace(
        system: Deployment, tmp_path: Path) -> None:
    job = job_variant(SEED_JOB, tmp_path / "seed", rounds=2, epochs=1, sites=["site-1", "site-2"])
    job_id = system.submit(job)
    record = system.wait_state(job_id, ("finished", "failed"))
    assert record["state"] == "finished", record
    assert record["sites"] == ["site-1", "site-2"]
    assert record["submitter"] == ADMIN
    run = system.workspace / job_id
    for site in ("site-1", "site-2"):
        # Records are attributed to the certificate's site, in tb_events/SITE/.
        assert [step for step, _ in scalars(run / "tb_events" / site, "validation_accuracy")] == [0, 1]
    logs = system.admin("logs", job_id[:8], check=True).stdout
    assert "workflow scatter_and_gather (ScatterAndGather) started" in logs
    port = int(re.search(r"server listening on 127\.0\.0\.1:(\d+) \(mutual TLS\)", logs).group(1))  # type: ignore[union-attr]
    assert port in system.job_ports  # type: ignore[attr-defined]
    site_log = system.admin("logs", job_id, "--site", "site-2", check=True).stdout
    assert "site-2 connected to localhost:" in site_log
    out = system.admin("download", job_id, "-o", str(tmp_path / "dl"), check=True).stdout
    got = tmp_path / "dl" / job_id
    assert f"into {got}" in out
    assert (got / "FL_global_model.pt").is_file()
    assert json.loads((got / "cross_site_val" / "cross_val_results.json").read_text()).keys() == {"site-1", "site-2"}
    assert (got / "sites" / "site-1" / "log.txt").is_file()
    assert scalars(got / "tb_events" / "site-1", "validation_accuracy")
    assert not (got / ".control").exists()  # the job's tokens never leave the server


def test_a_deployed_jobs_site_state_reaches_its_sites(system: Deployment, tmp_path: Path) -> None:
    # The job's meta asks its sites to release their components after each task: the same
    # setting reaches deployed sites as launched ones (the plan carries it).
    job = counting_job(tmp_path, "release")
    meta = json.loads((job / "meta.json").read_text())
    meta["deploy_map"] = {"app": ["server", "site-1", "site-2"]}
    (job / "meta.json").write_text(json.dumps(meta))
    job_id = system.submit(job)
    record = system.wait_state(job_id, ("finished", "failed"))
    assert record["state"] == "finished", record
    for site in ("site-1", "site-2"):
        log = system.admin("logs", job_id, "--site", site, check=True).stdout
        assert runs_in(log) == [(1, 1), (2, 1), (3, 1)], log  # a new trainer for each of 3 rounds


def test_submit_refuses_an_invalid_job_with_the_report_of_validate(system: Deployment, tmp_path: Path) -> None:
    job = job_variant(SEED_JOB, tmp_path / "broken")
    client = job / "app" / "config" / "config_fed_client.json"
    client.write_text(client.read_text().replace('"lr": 0.05', '"lr": "fast"'))
    before = len(system.jobs())
    result = system.admin("submit", str(job))
    assert result.returncode == 1
    validate = flconfig("validate", str(job))
    problem_lines = [line for line in validate.stdout.splitlines() if ": error:" in line]
    assert problem_lines and all(line in result.stdout for line in problem_lines)
    assert f"{job}/app/config/config_fed_client.json:" in result.stdout
    assert "nothing was queued" in result.stdout
    assert len(system.jobs()) == before


def test_a_site_that_does_not_allow_custom_code_refuses_the_job_and_the_server_says_why(
        system: Deployment, tmp_path: Path) -> None:
    job = tmp_path / "client-api"
    shutil.copytree(ROOT / "configs" / "client-api", job)
    (job / "meta.conf").write_text('name = "client-api"\ndeploy_map { app = ["server", "site-1", "site-3"] }\n'
                                   "min_clients = 2\n")
    job_id = system.submit(job)
    record = system.wait_state(job_id, ("finished", "failed"))
    assert record["state"] == "failed"
    assert ("site-3 refused it: this site does not run custom code: app 'app' holds custom code "
            "(2 file(s) in custom/: net.py, train.py), and site 'site-3' does not run custom code (app/custom)"
            in record["error"])
    assert "allow_custom_code" in record["error"]
    assert "site-3 refused it" in system.log()


def test_a_submitted_job_cannot_read_the_servers_files_by_absolute_path(system: Deployment, tmp_path: Path) -> None:
    # a checkpoint "path" naming a file of the server machine: refused before it is opened
    secret = tmp_path / "server-only" / "weights.pt"
    secret.parent.mkdir()
    secret.write_bytes(b"not for the job")
    job = job_variant(SEED_JOB, tmp_path / "reader", rounds=1, epochs=1, sites=["site-1", "site-2"])
    server = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(server.read_text())
    persistor = next(c for c in config["components"] if c["id"] == "persistor")
    persistor["args"]["source_ckpt_file_full_name"] = str(secret)
    server.write_text(json.dumps(config, indent=2))
    job_id = system.submit(job)
    record = system.wait_state(job_id, ("finished", "failed"))
    assert record["state"] == "failed"
    assert (f"source_ckpt_file_full_name: {str(secret)!r} is a file of this machine outside the job, and this "
            "participant does not let jobs read such files") in record["error"], record
    assert "allow_outside_files" in record["error"]
    assert "not for the job" not in json.dumps(record) + system.log()


def test_abort_stops_a_running_job_and_its_sites(system: Deployment, tmp_path: Path) -> None:
    job = job_variant(SEED_JOB, tmp_path / "long", rounds=200, epochs=1, sites=["site-1", "site-2"])
    job_id = system.submit(job)
    run = system.workspace / job_id
    system.wait_for(lambda: (run / "tb_events" / "site-1").is_dir() and scalars(run / "tb_events" / "site-1",
                                                                              "train_loss"), "first records")
    assert system.admin("abort", job_id[:6]).returncode == 0
    record = system.wait_state(job_id, ("aborted", "failed", "finished"))
    assert record["state"] == "aborted" and record["error"] == f"aborted by {ADMIN}"
    system.wait_for(lambda: f"job {job_id} aborted by the server" in system.log("site-1"), "site-1 to stop it")
    assert scalars(run / "tb_events" / "site-1", "train_loss")  # what was written stays readable


def test_the_server_serves_tensorboard_on_every_jobs_files(system: Deployment, tmp_path: Path) -> None:
    """`flconfig server --tensorboard`: TensorBoard on the workspace, a run per job and site."""
    import re
    import urllib.request

    finished = [j["id"] for j in system.jobs() if j["state"] == "finished"]
    assert finished  # the first test of this module ran one
    dep = Deployment(tmp_path / "kits", {"site-1": True})
    shutil.copytree(system.workspace / finished[0] / "tb_events", dep.workspace / finished[0] / "tb_events")
    try:
        dep.start_server("--tensorboard", "--tensorboard-port", "0")
        dep.wait_for(lambda: "TensorBoard at" in dep.log(), "TensorBoard to start", timeout=120)
        url = re.search(r"TensorBoard at (http://\S+)", dep.log()).group(1)  # type: ignore[union-attr]
        opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))
        with opener.open(url + "data/runs", timeout=10) as reply:
            runs = json.loads(reply.read())
        assert sorted(runs) == [f"{finished[0]}/tb_events/site-1", f"{finished[0]}/tb_events/site-2"]
    finally:
        dep.stop()


# ----------------------------------------------------------------------------- who gets in


def _call(address: str, creds: grpc.ChannelCredentials, method: str = "Jobs") -> grpc.RpcError | dict:  # type: ignore[type-arg]
    channel = grpc.secure_channel(address, creds, options=wire.options())
    try:
        request = wire.REQUESTS[method]()
        if method == "Poll":
            request.wait = 0  # type: ignore[attr-defined]
        reply = channel.unary_unary(wire.method_path(method))(request.SerializeToString(), timeout=10)
        return MessageToDict(wire.parse(wire.REPLIES[method], reply))
    except grpc.RpcError as exc:
        return exc
    finally:
        channel.close()


def test_callers_without_a_valid_certificate_are_refused_logged_and_the_server_serves_on(
        system: Deployment, tmp_path: Path) -> None:
    address = f"localhost:{system.port}"
    ca = (system.root / "server" / "startup" / "rootCA.pem").read_bytes()
    # No certificate at all.
    refused = _call(address, grpc.ssl_channel_credentials(ca))
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.UNAVAILABLE
    # A certificate of another project's CA.
    other = tmp_path / "other"
    provision_project(other, {"site-1": True}, system.port, project="other")
    foreign = load_kit(other / ADMIN)
    refused = _call(address, grpc.ssl_channel_credentials(ca, foreign.key_file.read_bytes(),
                                                          foreign.cert_file.read_bytes()))
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.UNAVAILABLE
    # An expired certificate of the right CA.
    with Admin(load_kit(expired_kit(system.root, ADMIN, "expired-admin"))) as admin, \
            pytest.raises(AdminError):
        admin.jobs()
    system.wait_for(lambda: all(f"refused a TLS connection: {why}" in system.log() for why in (
        "the caller sent no certificate", "its certificate is signed by another CA, not the project CA",
        "its certificate has expired")), "the refusals to be logged")
    # An admin command with a site's certificate.
    with Admin(load_kit(system.root / "site-1")) as admin, \
            pytest.raises(AdminError, match="'site-1' has a client certificate; this call needs an admin"):
        admin.jobs()
    # A site call with an admin's certificate.
    admin_kit = load_kit(system.root / ADMIN)
    refused = _call(address, admin_kit.channel_credentials(), "Poll")
    assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.PERMISSION_DENIED
    assert "refused Jobs from" in system.log() and "refused Poll from" in system.log()
    # And the server goes on serving its admin and its sites.
    with Admin(admin_kit) as admin:
        assert set(admin.jobs()["sites"]) == {"site-1", "site-2", "site-3"}


def test_a_revoked_site_is_refused_at_once(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True})
    try:
        dep.start()
        flconfig("provision", str(dep.root / "project.yaml"), "-o", str(dep.root), "--revoke", "site-2", check=True)
        # The server reads its revocation list again when it changes: no restart.
        refused = _call(f"localhost:{dep.port}", load_kit(dep.root / "site-2").channel_credentials(), "Poll")
        assert isinstance(refused, grpc.RpcError) and refused.code() == grpc.StatusCode.PERMISSION_DENIED
        assert "the certificate of 'site-2' is revoked" in refused.details()
        dep.wait_for(lambda: "the server refuses this site: the certificate of 'site-2' is revoked"
                     in dep.log("site-2"), "site-2 to give up")
        assert dep.clients["site-2"].wait(timeout=60) == 1
        # site-1 is served on: its service still polls (another caller with its certificate
        # would now be refused as a second instance of site-1)
        assert dep.clients["site-1"].poll() is None
        assert "site-1" in json.loads(dep.admin("jobs", "--json", check=True).stdout)["sites"]
        second = _call(f"localhost:{dep.port}", load_kit(dep.root / "site-1").channel_credentials(), "Poll")
        assert isinstance(second, grpc.RpcError) and second.code() == grpc.StatusCode.FAILED_PRECONDITION
        assert "site-1 is already connected from another instance" in second.details()
    finally:
        dep.stop()


def test_a_site_certificate_cannot_speak_for_another_site_on_the_job_link(tmp_path: Path) -> None:
    """The job's own server (CommServer) checks the certificate of every call against the
    site the call claims, even one holding that site's token."""
    from flconfig.transport.client import CommClient
    from flconfig.transport.server import CommServer

    dep = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True})
    credentials, peer_check = job_server_tls(load_kit(dep.root / "server").tls_files())

    tokens = {"site-1": "token-one", "site-2": "token-two"}
    comm = CommServer(tokens, host="localhost", server_credentials=credentials,
                      peer_check=peer_check).start()
    try:
        site1 = load_kit(dep.root / "site-1")
        impostor = CommClient(f"localhost:{comm.port}", "site-2", tokens["site-2"],
                              channel_credentials=site1.channel_credentials(), retry_timeout=2)
        with pytest.raises(Exception, match="the certificate of 'site-1' was used to claim to be 'site-2'"):
            impostor.connect(timeout=5)
        honest = CommClient(f"localhost:{comm.port}", "site-2", tokens["site-2"],
                            channel_credentials=load_kit(dep.root / "site-2").channel_credentials())
        honest.connect(timeout=10)
        assert comm.alive_sites() == ["site-2"]
        honest.close()
        assert comm.refused_calls >= 1
    finally:
        comm.stop()


# ----------------------------------------------------------------------------- faults


def test_jobs_queue_and_a_server_restart_fails_the_running_job_keeps_its_files_and_runs_the_queue(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True})
    try:
        dep.start()
        long_job = dep.submit(job_variant(SEED_JOB, tmp_path / "long", rounds=200, epochs=1,
                                          sites=["site-1", "site-2"]))
        queued = dep.submit(job_variant(SEED_JOB, tmp_path / "short", rounds=1, epochs=1,
                                        sites=["site-1", "site-2"]))
        tb = dep.workspace / long_job / "tb_events" / "site-1"
        dep.wait_for(lambda: tb.is_dir() and len(scalars(tb, "train_loss")) >= 2, "records of the long job")
        # One job runs at a time: the second waits in the queue behind the first.
        assert (dep.state(long_job)["state"], dep.state(queued)["state"]) == ("running", "submitted")
        dep.kill_server()
        written = scalars(tb, "train_loss")
        dep.wait_for(lambda: "unreachable" in dep.log("site-1"), "site-1 to notice")
        dep.start_server()
        record = dep.wait_state(long_job, ("failed", "finished", "aborted"), timeout=30)
        assert record["state"] == "failed"
        assert "the server stopped while the job was running" in record["error"]
        assert f"job {long_job} (tensorboard-streaming) was running when the server stopped: reported failed" in dep.log()
        # Readable and whole: what was there at the kill, and what the job's own server (which
        # follows its parent out within half a second) wrote last, each once and in order.
        after = scalars(tb, "train_loss")
        assert after[:len(written)] == written
        steps = [step for step, _ in after]
        assert steps == sorted(set(steps))
        # The sites reconnect on their own; the queued job runs.
        second = dep.wait_state(queued, ("finished", "failed"))
        assert second["state"] == "finished"
        assert second["started_at"] >= dep.state(long_job)["ended_at"]  # only once the first had ended
        assert "connected to localhost" in dep.log("site-1").split("unreachable", 1)[1]
    finally:
        dep.stop()


def test_service_commands_say_what_is_wrong_in_one_line(tmp_path: Path) -> None:
    dep = Deployment(tmp_path / "kits", {"site-1": True})
    # A site's kit given to `flconfig server`.
    result = flconfig("server", str(dep.root / "site-1"))
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"flconfig server: {dep.root / 'site-1'} is the kit of client 'site-1', not of a server"]
    # A bad port range.
    result = flconfig("server", str(dep.root / "server"), "--job-ports", "9000-8000")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "flconfig server: --job-ports 9000-8000: give a range of ports LO-HI, e.g. 8100-8199"]
    # A folder that is no kit.
    result = flconfig("client", str(tmp_path))
    assert result.returncode == 2 and "not a startup kit" in result.stderr and "Traceback" not in result.stderr
    # The server is not running.
    result = dep.admin("jobs")
    assert result.returncode == 1
    assert result.stderr.startswith(f"flconfig jobs: cannot reach the server at localhost:{dep.port}")
    assert "Traceback" not in result.stderr


def test_poc_prepare_start_submit_stop(tmp_path: Path) -> None:
    env = {"FLCONFIG_POC_DIR": str(tmp_path / "poc")}
    prepared = flconfig("poc", "prepare", "-n", "2", "--port", "0", env=env, check=True).stdout
    assert "server, site-1, site-2, admin@flconfig" in prepared
    again = flconfig("poc", "prepare", "-n", "2", env=env)
    assert again.returncode == 1 and "already a POC folder; add --force" in again.stderr
    # a POC is the user's own machine: its jobs read FLARE's pretrained files as FLARE's POC does
    kits = [p.parent.parent for p in (tmp_path / "poc").rglob("startup/kit.json")]
    assert {load_kit(k).name: load_kit(k).allow_outside_files for k in kits if load_kit(k).type != "admin"} == {
        "server": True, "site-1": True, "site-2": True}
    try:
        started = flconfig("poc", "start", env=env, check=True).stdout
        assert "POC started: server, site-1, site-2" in started
        job = job_variant(SEED_JOB, tmp_path / "seed", rounds=1, epochs=1)
        submitted = flconfig("submit", str(job), env=env, check=True).stdout  # the POC's admin kit
        job_id = submitted.split()[2]
        follow = flconfig("logs", job_id, "--follow", env=env, check=True).stdout
        assert "wrote cross-site validation results" in follow
        jobs = json.loads(flconfig("jobs", "--json", env=env, check=True).stdout)
        assert [j["state"] for j in jobs["jobs"]] == ["finished"]
    finally:
        stopped = flconfig("poc", "stop", env=env)
    assert "POC stopped: server, site-1, site-2" in stopped.stdout
    for name in ("server", "site-1", "site-2"):
        assert not (tmp_path / "poc" / name / "service.pid").exists()
    # Nothing is left running: the server's port is free again.
    kit = load_kit(tmp_path / "poc" / "server")
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", kit.server_port))
