"""Hostile and faulty input, the quick cases: what a config may run, what a peer may say,
what reaches the disk, and one clear line for every mistake.

The end-to-end cases (real launches under attack, a full disk, many sites in one
process) are in ``test_hardening_e2e.py``; docs/reliability.md lists them all.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from harness import REPO
from harness.event_files import read_event_file

from flconfig.cli import main as cli_main
from flconfig.runtime.context import SiteContext
from flconfig.runtime.fed_events import event_to_records, records_to_events
from flconfig.tracking import records as rec
from flconfig.tracking.convert import ConvertToFedEvent
from flconfig.tracking.logged_values import as_walltime, hparams_value
from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver
from flconfig.tracking.senders import TBWriter
from flconfig.transport.client import CommClient
from flconfig.transport.server import CommServer
from flconfig.types import Event, EventType
from flconfig.validate.loader import inspect_job

ROOT = REPO
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
STDLIB = Path(os.__file__).resolve().parent


def copy_example(tmp_path: Path, name: str = "job") -> Path:
    job = tmp_path / name
    shutil.copytree(EXAMPLE, job)
    return job


def add_server_component(job: Path, component: dict[str, Any]) -> None:
    file = job / "app" / "config" / "config_fed_server.json"
    config = json.loads(file.read_text())
    config["components"].append(component)
    file.write_text(json.dumps(config, indent=2))


POPEN = {"id": "pwn", "path": "subprocess.Popen", "args": {"args": ["touch", "PWNED"]}}


def problems_of(path: Path) -> list[tuple[str, str, str]]:
    """(code, file, message) of every error ``validate`` reports for a job."""
    _, problems = inspect_job(path)
    return [(p.code, p.position.file if p.position else "", p.message) for p in problems if p.is_error]


def run_cli(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                          cwd=cwd, timeout=120)


def assert_one_clear_line(proc: subprocess.CompletedProcess[str]) -> str:
    out = proc.stdout + proc.stderr
    assert "Traceback" not in out, out
    return out


# --- code execution from a config ----------------------------------------------------------


def test_a_custom_folder_linked_to_the_standard_library_is_refused(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    (job / "app" / "custom").symlink_to(STDLIB)
    add_server_component(job, POPEN)
    errors = problems_of(job)
    codes = {code for code, _, _ in errors}
    assert "link-outside-job" in codes, errors
    link = [e for e in errors if e[0] == "link-outside-job"][0]
    assert link[1].endswith("app/custom") and str(STDLIB) in link[2]
    # Popen is not custom: the config cannot name it.
    assert any(code == "path-not-allowed" and "subprocess.Popen" in msg for code, _, msg in errors)


def test_launch_of_a_job_with_a_linked_custom_folder_runs_nothing(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    (job / "app" / "custom").symlink_to(STDLIB)
    add_server_component(job, POPEN)
    proc = run_cli("launch", str(job), "-w", str(tmp_path / "ws"), cwd=tmp_path)
    out = assert_one_clear_line(proc)
    assert proc.returncode == 1 and "nothing was started" in out
    assert not (tmp_path / "PWNED").exists()
    assert not (tmp_path / "ws" / "server").exists()


def test_a_link_inside_custom_to_a_file_outside_the_job_is_named(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    custom = job / "app" / "custom"
    custom.mkdir()
    (custom / "subprocess.py").symlink_to(STDLIB / "subprocess.py")
    add_server_component(job, POPEN)
    errors = problems_of(job)
    assert ("link-outside-job", str(custom / "subprocess.py"),
            f"{custom / 'subprocess.py'} in custom/ is a symbolic link to {STDLIB / 'subprocess.py'},"
            " outside the job folder") in errors


def test_a_hard_link_to_a_file_outside_the_job_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "outside.py"
    outside.write_text("import subprocess\nclass Popen(subprocess.Popen):\n    pass\n")
    job = copy_example(tmp_path)
    custom = job / "app" / "custom"
    custom.mkdir()
    os.link(outside, custom / "tool.py")
    add_server_component(job, {**POPEN, "path": "tool.Popen"})
    errors = problems_of(job)
    assert any(code == "link-outside-job" and "hard link" in msg and file.endswith("tool.py")
               for code, file, msg in errors), errors


def test_links_that_stay_inside_the_job_are_fine(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    real = job / "shared_code"
    real.mkdir()
    (real / "helpers.py").write_text("X = 1\n")
    custom = job / "app" / "custom"
    custom.mkdir()
    (custom / "helpers.py").symlink_to(real / "helpers.py")
    os.link(real / "helpers.py", custom / "helpers_copy.py")
    (real / "my_learner.py").write_text(
        "from flconfig.examples.digits import DigitsLearner\n\n\nclass MyLearner(DigitsLearner):\n    pass\n")
    (custom / "my_learner.py").symlink_to(real / "my_learner.py")
    file = job / "app" / "config" / "config_fed_client.json"
    file.write_text(file.read_text().replace("flconfig.examples.digits.DigitsLearner", "my_learner.MyLearner"))
    assert problems_of(job) == []
    job_obj, _ = inspect_job(job)
    assert job_obj is not None
    assert job_obj.apps["app"].client.components[0].info.origin == "custom"  # type: ignore[union-attr]


def test_a_custom_module_named_like_the_standard_library_is_not_custom(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    custom = job / "app" / "custom"
    custom.mkdir()
    shutil.copy(STDLIB / "subprocess.py", custom / "subprocess.py")  # a real file in the job
    add_server_component(job, POPEN)
    errors = problems_of(job)
    assert any(code == "path-not-allowed" and "has the name of the standard-library module"
               in msg for code, _, msg in errors), errors


@pytest.mark.parametrize("what", ["config", "app", "meta"])
def test_config_files_and_app_folders_linked_out_of_the_job_are_refused(tmp_path: Path, what: str) -> None:
    outside = copy_example(tmp_path, "elsewhere")
    job = copy_example(tmp_path)
    if what == "config":
        target = job / "app" / "config" / "config_fed_server.json"
        target.unlink()
        target.symlink_to(outside / "app" / "config" / "config_fed_server.json")
    elif what == "app":
        shutil.rmtree(job / "app")
        (job / "app").symlink_to(outside / "app")
    else:
        (job / "meta.json").unlink()
        (job / "meta.json").symlink_to(outside / "meta.json")
    errors = problems_of(job)
    assert [code for code, _, _ in errors] == ["link-outside-job"], errors


# --- a site must not speak for the server or for other sites ------------------------------


def test_a_site_cannot_send_a_system_event() -> None:
    with pytest.raises(ValueError, match="reserved for the system"):
        event_to_records(Event(EventType.END_RUN, None, "fed", "site-1"))
    # ...and what a hostile site sends anyway is dropped on arrival, never delivered.
    hostile = [{"event_type": EventType.END_RUN, "data": None, "seq": 1},
               {"event_type": EventType.START_RUN, "kind": "scalar", "tag": "x", "value": 1.0,
                "step": 1, "wall_time": 1.0, "seq": 2}]
    assert records_to_events(hostile, site="site-2") == []


def test_a_receiver_acts_only_on_its_own_sites_lifecycle(tmp_path: Path) -> None:
    receiver = TBAnalyticsReceiver()
    ctx = SiteContext("server", "job", tmp_path, {"r": receiver}, [receiver], role="server")
    ctx.fire_event(EventType.START_RUN)
    receiver.handle_event(Event(EventType.END_RUN, None, "fed", "site-2"), ctx)  # a peer's "end"
    batch = rec.AnalyticsBatch([{"event_type": "fed.analytix_log_stats", "kind": "scalar",
                                 "tag": "loss", "value": 0.5, "step": 3, "wall_time": 1.0}])
    ctx.deliver_fed_event("fed.analytix_log_stats", batch, "site-1")
    assert receiver.late_records == 0
    ctx.fire_event(EventType.END_RUN)
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(tmp_path / "server" / "job" / "tb_events" / "site-1"))
    acc.Reload()
    assert [(e.step, e.value) for e in acc.Scalars("loss")] == [(3, 0.5)]


# --- nothing lost silently --------------------------------------------------------------------


class Pipeline:
    """A client's sender → converter → real gRPC link → the server's TensorBoard receiver."""

    def __init__(self, tmp_path: Path) -> None:
        self.receiver = TBAnalyticsReceiver(events=["fed.analytix_log_stats"])
        self.server_ctx = SiteContext("server", "job", tmp_path, {}, [self.receiver], role="server")

        def on_events(site: str, records: list[dict[str, Any]]) -> None:
            for event_type, data in records_to_events(records, site):
                self.server_ctx.deliver_fed_event(event_type, data, site)

        self.server = CommServer({"site-1": "token-1"}, on_events=on_events).start()
        self.comm = CommClient(self.server.address, "site-1", "token-1")
        self.writer = TBWriter()
        self.writer.id = "writer"
        converter = ConvertToFedEvent(["analytix_log_stats"])
        self.ctx = SiteContext("site-1", "job", tmp_path, {}, [self.writer, converter],
                               fed_sink=lambda ev: self.comm.send_events(event_to_records(ev)))
        self.server_ctx.fire_event(EventType.START_RUN)
        self.comm.connect(timeout=10)
        self.ctx.fire_event(EventType.START_RUN)
        self.root = tmp_path / "server" / "job" / "tb_events"

    def finish(self) -> int:
        self.ctx.fire_event(EventType.END_RUN)
        left = self.comm.close()
        self.server.stop()
        self.server_ctx.fire_event(EventType.END_RUN)
        return left

    def scalars(self, tag: str) -> list[tuple[int, float]]:
        from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

        acc = EventAccumulator(str(self.root / "site-1"), size_guidance={"scalars": 0})
        acc.Reload()
        return [(e.step, e.value) for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def test_an_oversized_text_is_refused_at_the_call_and_nothing_else_is_lost(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path)
    try:
        for step in range(100):
            pipe.writer.add_scalar("loss", step / 100, step)
        with pytest.raises(ValueError, match="records are limited to"):
            pipe.writer.add_text("notes", "x" * rec.MAX_TEXT, 0)  # 4 MiB: too big once framed
        for step in range(100, 200):
            pipe.writer.add_scalar("loss", step / 100, step)
        pipe.writer.add_text("notes", "fits", 1)
    finally:
        left = pipe.finish()
    assert left == 0 and pipe.ctx.failures == []
    assert pipe.scalars("loss") == [(s, pytest.approx(s / 100)) for s in range(200)]


def test_the_sender_refuses_what_the_server_would_refuse() -> None:
    writer = TBWriter()
    with pytest.raises(ValueError, match="walltime"):
        writer.add_scalar("loss", 1.0, 1, walltime=2e11)  # the server's limit is 1e11
    with pytest.raises(ValueError, match="longer than"):
        writer.add_hparams({"name": "x" * (rec.MAX_TAG + 1)}, {"acc": 1.0})
    with pytest.raises(TypeError, match="hparam's type"):
        writer.add_hparams({"lr": 0.1}, {"acc": 1.0}, {"lr": ["a", "b"]})
    # What the sender accepts, the server's check accepts.
    value = hparams_value({"lr": 1, "opt": "sgd"}, {"acc": 1}, {"lr": [1, 0.5]}, "hp")
    record = {"event_type": "fed.analytix_log_stats", "kind": "hparams", "tag": "hp",
              "value": value, "step": None, "wall_time": as_walltime("hp", 1e10)}
    assert rec.clean_record(json.loads(json.dumps(record)))["value"] == value


def test_send_events_queues_the_records_beside_an_oversized_one(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path)
    try:
        scalar = {"event_type": "fed.analytix_log_stats", "kind": "scalar", "tag": "loss",
                  "value": 1.0, "step": 0, "wall_time": 1.0}
        huge = {**scalar, "kind": "text", "tag": "t", "value": "x" * (5 * 1024 * 1024)}
        with pytest.raises(ValueError, match="the other 2 of this call were queued"):
            pipe.comm.send_events([scalar, huge, {**scalar, "step": 1}])
        assert pipe.comm.flush(10) == 0
    finally:
        pipe.finish()
    assert pipe.scalars("loss") == [(0, 1.0), (1, 1.0)]


def test_a_record_the_link_cannot_carry_fails_the_site_loudly(tmp_path: Path) -> None:
    pipe = Pipeline(tmp_path)
    try:
        pipe.ctx.fire_fed_event("fed.custom", {"weights": object()})
    finally:
        pipe.finish()
    assert len(pipe.ctx.failures) == 1
    assert "could not send event 'fed.custom' to the server" in pipe.ctx.failures[0]


def test_a_failure_on_the_senders_thread_fails_the_site(tmp_path: Path) -> None:
    writer = TBWriter()
    writer.id = "writer"

    rec_error = RuntimeError("the disk of this site is gone")
    ctx = SiteContext("site-1", "job", tmp_path, {}, [writer])
    done = threading.Event()
    original = ctx.dispatch

    def dispatch(event: Event) -> None:
        original(event)
        if event.type == "analytix_log_stats":
            done.set()
            raise rec_error  # what a component outside dispatch's care could raise

    ctx.dispatch = dispatch  # type: ignore[method-assign]
    ctx.fire_event(EventType.START_RUN)
    writer.add_scalar("loss", 1.0, 0)
    assert done.wait(10)
    writer.flush(10)
    ctx.fire_event(EventType.END_RUN)
    assert ctx.failures and "failed to hand on analytics records" in ctx.failures[0]


def test_a_failed_write_leaves_no_torn_record_and_keeps_nothing_half_written(tmp_path: Path) -> None:
    from flconfig.tracking.tb_files import RunWriter

    writer = RunWriter(tmp_path / "site-1")
    record = {"kind": "scalar", "tag": "loss", "value": 1.0, "step": 0, "wall_time": 1.0}
    writer.write(record)
    writer.write_pending()
    main = writer._main
    good = main.size
    real_write = os.write
    calls = {"n": 0}

    def half_write(fd: int, data: Any) -> int:  # the disk fills in the middle of a record
        calls["n"] += 1
        if calls["n"] == 1:
            return real_write(fd, bytes(data[: len(data) // 2]))
        raise OSError(28, "No space left on device")

    for step in range(1, 4):
        writer.write({**record, "step": step})
    os.write = half_write  # type: ignore[assignment]
    try:
        with pytest.raises(OSError):
            writer.write_pending()
    finally:
        os.write = real_write  # type: ignore[assignment]
    assert main.path.stat().st_size == good and not main.has_pending
    read_event_file(main.path)  # complete records only
    writer.write({**record, "step": 1})
    writer.write_pending()
    writer.close()
    assert len(read_event_file(main.path)) == 3  # header, step 0, step 1


def test_the_server_does_not_acknowledge_records_it_could_not_write(tmp_path: Path) -> None:
    from flconfig.errors import StorageError

    delivered: list[int] = []
    fail = {"on": True}

    def on_events(site: str, records: list[dict[str, Any]]) -> None:
        if fail["on"]:
            raise StorageError("no space left on device in /ws")
        delivered.extend(r["step"] for r in records)

    server = CommServer({"site-1": "token-1"}, on_events=on_events).start()
    comm = CommClient(server.address, "site-1", "token-1")
    try:
        comm.connect(timeout=10)
        comm.send_events([{"event_type": "fed.x", "kind": "scalar", "tag": "t", "value": 1.0,
                           "step": i, "wall_time": 1.0} for i in range(50)])
        assert comm.flush(1.0) == 50  # nothing acknowledged while writes fail
        assert server.storage_error == "no space left on device in /ws"
        assert comm.delivery_problem == "no space left on device in /ws"
        fail["on"] = False  # space is back
        assert comm.flush(10) == 0
    finally:
        comm.close()
        server.stop()
    assert delivered == list(range(50)) and server.storage_error is None


# --- bad input gets one clear line ---------------------------------------------------------


def write_config(tmp_path: Path, name: str, text: str) -> Path:
    file = tmp_path / name
    file.write_text(text)
    return file


def test_a_yaml_alias_bomb_is_reported_at_its_line(tmp_path: Path) -> None:
    lines = ['a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    for prev, name in zip("abcdefgh", "bcdefghi", strict=True):
        lines.append(f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]")
    file = write_config(tmp_path, "config_fed_client.yaml", "format_version: 2\n" + "\n".join(lines) + "\n")
    assert file.stat().st_size < 2048
    proc = run_cli("validate", str(file))
    out = assert_one_clear_line(proc)
    assert proc.returncode == 1
    assert f"{file}:2:" in out and "expands to more than 200,000 values" in out


def test_a_5000_digit_integer_is_one_error(tmp_path: Path) -> None:
    file = write_config(tmp_path, "config_fed_client.json", '{"format_version": 2, "n": ' + "9" * 5000 + "}")
    proc = run_cli("validate", str(file))
    out = assert_one_clear_line(proc)
    assert proc.returncode == 1 and f"{file}:1:28: error: invalid JSON: a number of 5000 digits" in out


@pytest.mark.parametrize("value", ["1e999", "1e12"])
def test_a_heartbeat_timeout_must_be_finite(tmp_path: Path, value: str) -> None:
    job = copy_example(tmp_path)
    file = job / "app" / "config" / "config_fed_server.json"
    file.write_text(file.read_text().replace('"heart_beat_timeout": 600', f'"heart_beat_timeout": {value}'))
    errors = problems_of(job)
    assert len(errors) == 1 and errors[0][1].endswith("config_fed_server.json"), errors


@pytest.mark.parametrize(("args", "message"), [
    (["--heartbeat-timeout", "nan"], "--heartbeat-timeout must be a number of seconds above 0"),
    (["--heartbeat-timeout", "0"], "--heartbeat-timeout must be a number of seconds above 0"),
    (["--heartbeat-timeout", "inf"], "--heartbeat-timeout must be a number of seconds above 0"),
    (["--threads", "-5"], "--threads must be at least 1, got -5"),
    (["--processes", "0"], "--processes must be at least 1, got 0"),
    (["--job-id", "x" * 300], "invalid job id"),
])
def test_bad_launch_options_get_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                         args: list[str], message: str) -> None:
    code = cli_main(["launch", str(EXAMPLE), "-w", str(tmp_path / "ws"), *args])
    err = capsys.readouterr().err
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1, err
    assert not (tmp_path / "ws" / "server").exists()


def test_a_workspace_that_is_a_file_or_cannot_be_made_gets_one_line(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    file = tmp_path / "a-file"
    file.write_text("")
    assert cli_main(["launch", str(EXAMPLE), "-w", str(file)]) == 2
    assert capsys.readouterr().err.strip() == \
        f"flconfig launch: workspace {file}: the workspace is a file, not a folder"
    assert cli_main(["launch", str(EXAMPLE), "-w", str(file / "ws")]) == 2
    assert "is a file, not a folder" in capsys.readouterr().err
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        if os.access(locked, os.W_OK):  # root ignores permissions: use a place no one can write
            target = Path("/proc/flconfig-ws")
        else:
            target = locked / "ws"
        assert cli_main(["launch", str(EXAMPLE), "-w", str(target)]) == 2
        assert capsys.readouterr().err.startswith(f"flconfig launch: cannot create the workspace {target}")
    finally:
        locked.chmod(0o700)


def test_validate_warns_at_the_line_of_an_import_that_is_not_installed(tmp_path: Path) -> None:
    job = copy_example(tmp_path)
    custom = job / "app" / "custom"
    custom.mkdir()
    (custom / "my_learner.py").write_text(
        "import os\nimport not_a_real_package_xyz\ntry:\n    import also_missing\nexcept ImportError:\n"
        "    also_missing = None\nfrom flconfig.examples.digits import DigitsLearner\n\n\n"
        "class MyLearner(DigitsLearner):\n    pass\n")
    file = job / "app" / "config" / "config_fed_client.json"
    file.write_text(file.read_text().replace("flconfig.examples.digits.DigitsLearner", "my_learner.MyLearner"))
    proc = run_cli("validate", str(job))
    out = assert_one_clear_line(proc)
    assert proc.returncode == 0, out
    assert (f"{custom / 'my_learner.py'}:2:1: warning: 'not_a_real_package_xyz' is imported here "
            "but is not installed in this environment") in out.replace(str(job), str(job))
    assert "also_missing" not in out  # guarded by try: an optional import


def test_the_json_lines_receiver_rolls_back_a_failed_write(tmp_path: Path) -> None:
    from flconfig.errors import StorageError
    from flconfig.tracking.receivers.jsonl import JsonLinesReceiver

    receiver = JsonLinesReceiver(events=["fed.analytix_log_stats"])
    ctx = SiteContext("server", "job", tmp_path, {}, [receiver], role="server")
    ctx.fire_event(EventType.START_RUN)

    def batch(*steps: int) -> rec.AnalyticsBatch:
        return rec.AnalyticsBatch({"event_type": "fed.analytix_log_stats", "kind": "scalar", "tag": "loss",
                                   "value": 0.5, "step": s, "wall_time": 1.0} for s in steps)

    ctx.deliver_fed_event("fed.analytix_log_stats", batch(0, 1), "site-1")
    real = receiver._file

    class FillsUp:  # writes half of what it is given, then the disk is full
        def write(self, data: bytes) -> int:
            real.write(data[: len(data) // 2])
            real.flush()
            raise OSError(28, "No space left on device")

        def __getattr__(self, name: str) -> Any:
            return getattr(real, name)

    receiver._file = FillsUp()
    with pytest.raises(StorageError, match="no space left on device in"):
        ctx.deliver_fed_event("fed.analytix_log_stats", batch(2, 3), "site-1")
    file = tmp_path / "server" / "job" / "analytics.jsonl"
    assert [json.loads(line)["step"] for line in file.read_text().splitlines()] == [0, 1]
    ctx.deliver_fed_event("fed.analytix_log_stats", batch(2, 3), "site-1")  # sent again
    ctx.fire_event(EventType.END_RUN)
    assert [json.loads(line)["step"] for line in file.read_text().splitlines()] == [0, 1, 2, 3]


@pytest.mark.parametrize("bad", ["site-1\n", "-x", "a" * 129, "site/1"])
def test_site_names_follow_one_rule(tmp_path: Path, capsys: pytest.CaptureFixture[str], bad: str) -> None:
    from flconfig.config.meta import NAME_RE
    from flconfig.transport.contract import is_valid_site_name

    # The job's rule (meta, the launcher) and the transport's rule agree.
    assert NAME_RE.match(bad) is None and not is_valid_site_name(bad)
    if bad.strip() == bad:  # the command line strips blanks around each name
        assert cli_main(["launch", str(EXAMPLE), "-w", str(tmp_path / "ws"), "--clients", f"site-2,{bad}"]) == 2
        assert "invalid site name" in capsys.readouterr().err
        assert not (tmp_path / "ws").exists()


def test_refused_calls_cannot_flood_the_log(caplog: pytest.LogCaptureFixture) -> None:
    import grpc

    from flconfig.transport.contract import method_path

    server = CommServer({"site-1": "token-1"}).start()
    channel = grpc.insecure_channel(server.address)
    try:
        call = channel.unary_unary(method_path("Heartbeat"))
        with caplog.at_level("WARNING", logger="flconfig.transport.server"):
            for i in range(60):  # a caller cycling through site names
                with pytest.raises(grpc.RpcError) as err:
                    call(b"", timeout=10, metadata=(("flconfig-site", f"site-{i}"),
                                                    ("flconfig-token", "guess")))
                assert err.value.code() == grpc.StatusCode.UNAUTHENTICATED
    finally:
        channel.close()
        server.stop()
    refusals = [r for r in caplog.records if "refused a call" in r.getMessage()]
    assert len(refusals) == 10 and server.refused_calls == 60
