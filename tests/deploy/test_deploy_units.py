"""The parts of distributed mode that take hostile input, on their own: job archives, the
control service's messages (and their stubs, generated from deploy.proto), kits, and the
job store across a reopen."""

from __future__ import annotations

import io
import json
import stat
import time
import zipfile
from pathlib import Path

import pytest
from harness.deployment import free_port, provision_project
from harness.protos import stale_stubs

from flconfig.deploy import deploy_pb2 as pb
from flconfig.deploy import store as st
from flconfig.deploy import wire
from flconfig.deploy.archive import ArchiveError, pack_folder, unpack
from flconfig.deploy.kit import KitError, load_kit


def _zip(entries: list[tuple[str, bytes, int]]) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data, mode in entries:
            info = zipfile.ZipInfo(name)
            info.external_attr = mode << 16
            zf.writestr(info, data)
    return buf.getvalue()


@pytest.mark.parametrize("name", ["../evil.py", "/etc/evil", "a/../../evil", "a\\b"])
def test_an_archive_member_outside_its_folder_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ArchiveError, match="not a plain relative path"):
        unpack(_zip([("ok.txt", b"x", stat.S_IFREG | 0o644), (name, b"x", stat.S_IFREG | 0o644)]),
               tmp_path / "out", max_bytes=1 << 20)
    assert not (tmp_path / "out").exists() and not (tmp_path / "evil.py").exists()


def test_a_link_in_an_archive_is_refused(tmp_path: Path) -> None:
    data = _zip([("custom/link.py", b"/etc/passwd", stat.S_IFLNK | 0o777)])
    with pytest.raises(ArchiveError, match="not a plain file or folder"):
        unpack(data, tmp_path / "out", max_bytes=1 << 20)


def test_an_archive_that_unpacks_to_too_much_is_refused_before_and_while_extracting(tmp_path: Path) -> None:
    big = _zip([("big.bin", b"\0" * (2 << 20), stat.S_IFREG | 0o644)])
    with pytest.raises(ArchiveError, match="more than 1 MiB"):
        unpack(big, tmp_path / "a", max_bytes=1 << 20)
    # A member that lies about its size is stopped while it is written.
    lying = bytearray(big)
    header = lying.rfind(b"PK\x01\x02")  # the central directory's entry: its uncompressed size
    lying[header + 24:header + 28] = (100).to_bytes(4, "little")
    with pytest.raises(ArchiveError):
        unpack(bytes(lying), tmp_path / "b", max_bytes=1 << 20)
    assert not (tmp_path / "b").exists()


def test_a_job_folder_with_a_link_is_not_sent(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "app").mkdir(parents=True)
    (job / "app" / "a.txt").write_text("a")
    (job / "app" / "link").symlink_to("/etc")
    with pytest.raises(ArchiveError, match="a link"):
        pack_folder(job, max_bytes=1 << 20)
    (job / "app" / "link").unlink()
    (job / "__pycache__").mkdir()
    (job / "__pycache__" / "x.pyc").write_bytes(b"x")
    unpack(pack_folder(job, max_bytes=1 << 20), tmp_path / "copy", max_bytes=1 << 20)
    assert sorted(p.relative_to(tmp_path / "copy").as_posix() for p in (tmp_path / "copy").rglob("*")) == [
        "app", "app/a.txt"]


PROTO = Path(wire.__file__).with_name("deploy.proto")


@pytest.mark.parametrize("data", [b"\xff", b"\x12\x05ab", b"\x12\x02\xff\xfe", b"FLCD\0\0\0\2{}",
                                  b"FLCD\xff\xff\xff\xff{}", b"\x0a\x02\x08"])
def test_a_bad_control_message_is_refused(data: bytes) -> None:
    with pytest.raises(wire.MessageError, match="not a valid FetchJobRequest"):
        wire.parse(pb.FetchJobRequest, data)


def test_a_control_message_round_trips() -> None:
    sent = pb.PushLogRequest(session="s", job_id="x", offset=1, data=b"\0blob")
    assert wire.parse(pb.PushLogRequest, sent.SerializeToString()) == sent


def test_the_proto_declares_the_methods_the_wire_module_names() -> None:
    service = pb.DESCRIPTOR.services_by_name["Deploy"]
    assert service.full_name == wire.SERVICE
    assert [m.name for m in service.methods] == [*wire.SITE_METHODS, *wire.ADMIN_METHODS]
    assert {m.name for m in service.methods if m.server_streaming} == wire.STREAMING_REPLIES
    assert not any(m.client_streaming for m in service.methods)
    for method in service.methods:
        assert method.input_type.name == wire.REQUESTS[method.name].__name__
        assert method.output_type.name == wire.REPLIES[method.name].__name__
    site_requests = {wire.REQUESTS[m].DESCRIPTOR for m in wire.SITE_METHODS}
    assert all("session" in d.fields_by_name for d in site_requests)  # one instance of a site at a time


def test_the_committed_stubs_are_generated_from_the_proto(tmp_path: Path) -> None:
    assert stale_stubs(PROTO, tmp_path) == [], "the stubs do not match deploy.proto: run `make proto`"


def test_kits_are_checked(tmp_path: Path) -> None:
    provision_project(tmp_path, {"site-1": False}, 8002)
    kit = load_kit(tmp_path / "site-1" / "startup")
    assert (kit.name, kit.type, kit.server_address, kit.allow_custom_code) == ("site-1", "client", "localhost:8002",
                                                                               False)
    with pytest.raises(KitError, match="is the kit of client 'site-1', not of an admin"):
        load_kit(tmp_path / "site-1", "admin")
    (tmp_path / "site-1" / "startup" / "client.key").unlink()
    with pytest.raises(KitError, match="lacks client.key"):
        load_kit(tmp_path / "site-1")
    (tmp_path / "server" / "startup" / "kit.json").write_text("{")
    with pytest.raises(KitError, match="not a valid kit file"):
        load_kit(tmp_path / "server")


def test_allow_custom_code_can_change_without_reissuing_certificates(tmp_path: Path) -> None:
    project = provision_project(tmp_path, {"site-1": False}, 8002)
    cert = (tmp_path / "site-1" / "startup" / "client.crt").read_bytes()
    project.write_text(project.read_text().replace("allow_custom_code: false", "allow_custom_code: true"))
    from harness.deployment import flconfig

    flconfig("provision", str(project), "-o", str(tmp_path), check=True)
    assert json.loads((tmp_path / "site-1" / "startup" / "kit.json").read_text())["allow_custom_code"] is True
    assert (tmp_path / "site-1" / "startup" / "client.crt").read_bytes() == cert


def test_the_job_store_survives_a_reopen_and_fails_what_was_running(tmp_path: Path) -> None:
    store = st.JobStore(tmp_path / "jobs.db")
    for job_id in ("a", "b", "c", "d"):
        store.add(job_id, f"job-{job_id}", "admin@x")
    store.set_state("a", st.RUNNING, sites=["site-1"])
    store.set_state("b", st.WAITING)
    store.set_state("c", st.FINISHED)
    store.close()  # as if the server died: every change was committed when it was made
    store = st.JobStore(tmp_path / "jobs.db")
    failed = store.recover()
    assert [r.id for r in failed] == ["a"]
    by_id = {r.id: r for r in store.all()}
    assert by_id["a"].state == st.FAILED and "stopped while the job was running" in by_id["a"].error
    assert by_id["a"].sites == ["site-1"]
    assert (by_id["b"].state, by_id["c"].state, by_id["d"].state) == (st.SUBMITTED, st.FINISHED, st.SUBMITTED)
    assert [r.id for r in store.queued()] == ["b", "d"]  # in submission order
    assert not store.set_state("c", st.ABORTED)  # an ended job stays ended


def test_polls_beyond_the_servers_slots_are_answered_at_once_and_admins_always_get_through(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import threading

    import grpc

    from flconfig.deploy import server as server_mod
    from flconfig.deploy import site_calls
    from flconfig.deploy.admin import Admin

    monkeypatch.setattr(site_calls, "POLL_SLOTS", 1)
    port = free_port()
    provision_project(tmp_path, {"site-1": True, "site-2": True}, port)
    service = server_mod.DeployServer(load_kit(tmp_path / "server"), tmp_path / "ws", host="127.0.0.1",
                                      out=lambda line: None).start()
    try:
        def poll(site: str, out: dict) -> None:  # type: ignore[type-arg]
            channel = grpc.secure_channel(f"localhost:{port}", load_kit(tmp_path / site).channel_credentials(),
                                          options=wire.options())
            reply = channel.unary_unary(wire.method_path("Poll"))(
                pb.PollRequest(session=site, wait=5).SerializeToString(), timeout=20)
            out["retry_after"] = wire.parse(pb.PollReply, reply).retry_after
            channel.close()

        held: dict = {}  # type: ignore[type-arg]
        first = threading.Thread(target=poll, args=("site-1", held))
        first.start()
        deadline = time.monotonic() + 10
        while not service.board.polling.get("site-1") and time.monotonic() < deadline:
            time.sleep(0.01)
        turned: dict = {}  # type: ignore[type-arg]
        poll("site-2", turned)  # the one slot is taken: answered at once, asked to come back
        assert turned["retry_after"] == site_calls.RETRY_AFTER_S and first.is_alive()
        with Admin(load_kit(tmp_path / "admin@test")) as admin:
            assert admin.jobs()["sites"] == ["site-1", "site-2"]
        first.join(timeout=20)
        assert held["retry_after"] == 0  # the held poll simply found nothing to do
    finally:
        service.stop()


def test_a_malformed_request_is_refused_in_one_line_and_the_server_serves_on(tmp_path: Path) -> None:
    import grpc

    from flconfig.deploy.admin import Admin
    from flconfig.deploy.server import DeployServer

    port = free_port()
    provision_project(tmp_path, {"site-1": True}, port)
    service = DeployServer(load_kit(tmp_path / "server"), tmp_path / "ws", host="127.0.0.1",
                           out=lambda line: None).start()
    try:
        for kit, method in (("site-1", "Poll"), ("admin@test", "Jobs"), ("admin@test", "Download")):
            channel = grpc.secure_channel(f"localhost:{port}", load_kit(tmp_path / kit).channel_credentials(),
                                          options=wire.options())
            call = channel.unary_stream if method in wire.STREAMING_REPLIES else channel.unary_unary
            with pytest.raises(grpc.RpcError) as refused:
                reply = call(wire.method_path(method))(b"FLCD\0\0\0\2{}", timeout=10)
                list(reply) if method in wire.STREAMING_REPLIES else reply
            channel.close()
            assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT
            assert refused.value.details().startswith(f"bad {method} request: not a valid {method}Request (")
            assert "Traceback" not in refused.value.details()
        with Admin(load_kit(tmp_path / "admin@test")) as admin:
            assert admin.jobs() == {"jobs": [], "sites": [], "max_jobs": 1}
    finally:
        service.stop()


@pytest.mark.parametrize("shown", ["..", ".", "../../etc", "/", ""])
def test_the_name_an_admin_gives_its_job_folder_is_only_for_show(tmp_path: Path, shown: str) -> None:
    from harness.deployment import SEED_JOB

    from flconfig.deploy import server as server_mod
    from flconfig.deploy.admin import Admin

    port = free_port()
    provision_project(tmp_path, {"site-1": True}, port)
    workspace = tmp_path / "ws"
    service = server_mod.DeployServer(load_kit(tmp_path / "server"), workspace, host="127.0.0.1",
                                      out=lambda line: None).start()
    try:
        with Admin(load_kit(tmp_path / "admin@test")) as admin:
            answer = admin.submit(SEED_JOB, shown=shown)
        assert answer["ok"], answer
        assert (workspace / answer["job_id"] / "job" / "meta.json").is_file()
        assert sorted(p.name for p in workspace.iterdir()) == sorted([".incoming", answer["job_id"], "jobs.db",
                                                                      "jobs.db-shm", "jobs.db-wal",
                                                                      "server.lock"])
        assert not list((workspace / ".incoming").iterdir())
    finally:
        service.stop()


def test_a_site_ignores_work_whose_job_id_would_name_a_folder_outside_its_workspace(tmp_path: Path) -> None:
    from flconfig.deploy.client import SiteService

    provision_project(tmp_path, {"site-1": True}, free_port())
    site = SiteService(load_kit(tmp_path / "site-1"), tmp_path / "ws", out=lambda line: None)
    site._handle(pb.PollReply(deploy=[pb.Work(job_id="../../escape", port=1, token="t")],
                              start=[pb.Work(job_id="/etc")], abort=["../x"]))
    assert site._jobs == {} and not (tmp_path / "escape").exists()


def test_a_job_port_is_free_again_as_soon_as_its_last_job_ended() -> None:
    # A job's server that had sites connected leaves its port's connections in TIME_WAIT for
    # a minute; gRPC binds such a port, so the next job may have it at once. A port some
    # process listens on is never handed out.
    import socket

    from flconfig.deploy.scheduler import free_port as _free_port

    listener = socket.create_server(("127.0.0.1", 0))
    port = listener.getsockname()[1]
    assert _free_port("127.0.0.1", range(port, port + 1)) is None
    client = socket.create_connection(("127.0.0.1", port))
    accepted, _ = listener.accept()
    accepted.close()  # the server's side closes first: its end waits in TIME_WAIT
    client.close()
    listener.close()
    assert _free_port("127.0.0.1", range(port, port + 1)) == port
    assert _free_port("127.0.0.1", range(port, port + 1), taken={port}) is None


def test_an_unknown_method_is_turned_away_before_its_body_is_read_and_told_to_the_operator(tmp_path: Path) -> None:
    # The control service shares the job server's gatekeeper: a call to a method the
    # service lacks is refused (and counted, and said) by its interceptor, not by gRPC in silence.
    import grpc

    from flconfig.deploy.admin import Admin
    from flconfig.deploy.server import DeployServer

    port = free_port()
    provision_project(tmp_path, {"site-1": True}, port)
    said: list[str] = []
    service = DeployServer(load_kit(tmp_path / "server"), tmp_path / "ws", host="127.0.0.1",
                           out=said.append).start()
    try:
        channel = grpc.secure_channel(f"localhost:{port}", load_kit(tmp_path / "site-1").channel_credentials(),
                                      options=wire.options())
        with pytest.raises(grpc.RpcError) as refused:
            channel.unary_unary(wire.method_path("RunAnything"))(b"x" * 1024, timeout=10)
        channel.close()
        assert refused.value.code() == grpc.StatusCode.UNIMPLEMENTED
        assert refused.value.details() == "unknown method"
        assert any(f"refused {wire.method_path('RunAnything')} from ?: unknown method" in line for line in said)
        with Admin(load_kit(tmp_path / "admin@test")) as admin:
            assert admin.jobs()["jobs"] == []
    finally:
        service.stop()


def test_a_job_process_that_ignores_sigterm_is_killed_after_its_grace_and_one_that_obeys_is_not() -> None:
    # How the server and a site stop a job's processes (abort, shutdown).
    import signal
    import subprocess
    import sys

    from flconfig.common.processes import stop_process

    stubborn = subprocess.Popen([sys.executable, "-c",
                                 "import signal, sys, time\n"
                                 "signal.signal(signal.SIGTERM, signal.SIG_IGN)\n"
                                 "print('ready', flush=True)\n"
                                 "time.sleep(600)"], stdout=subprocess.PIPE)
    assert stubborn.stdout is not None and stubborn.stdout.readline() == b"ready\n"
    stop_process(stubborn, grace=0.5)
    assert stubborn.returncode == -signal.SIGKILL
    stubborn.stdout.close()

    obedient = subprocess.Popen([sys.executable, "-c",
                                 "import time\nprint('ready', flush=True)\ntime.sleep(600)"],
                                stdout=subprocess.PIPE)
    assert obedient.stdout is not None and obedient.stdout.readline() == b"ready\n"
    stop_process(obedient, grace=60)
    assert obedient.returncode == -signal.SIGTERM
    obedient.stdout.close()
    stop_process(obedient)  # already ended: nothing to do
    stop_process(None)
