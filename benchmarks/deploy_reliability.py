"""Faults and attacks against a deployment (issues 10 and 21), measured: records sent vs
written, processes left, time to recover, what the server's memory did. The same
scenarios as tests/e2e/test_deploy.py, tests/e2e/test_deploy_faults.py, tests/validate/test_custom_code.py,
tests/e2e/test_service_state.py and tests/config/test_expansion_limits.py, on real `flconfig server`
/ `client` / `poc` processes and the real mutual-TLS link, with the figures
docs/reliability.md quotes.

    python benchmarks/deploy_reliability.py [--only NAME] [--anchor REV]

``--anchor REV`` also runs ``flconfig validate`` of the HOCON bomb with the tree at git
revision REV (e.g. the commit before issue 21: 862447b), capped at 120 s and 4 GiB, side
by side with this tree.
"""

from __future__ import annotations

import argparse
import http.server
import json
import os
import re
import shutil
import socket
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from deployment import SEED_JOB, Deployment, job_variant, provision_project  # noqa: E402
from launching import scalars  # noqa: E402


def tb(folder: Path, tag: str = "train_loss") -> list[tuple[int, float]]:
    return scalars(folder, tag) if folder.is_dir() else []


def job_processes(job_id: str) -> int:
    """Processes still running for ``job_id`` (its server's or a site's)."""
    out = subprocess.run(["pgrep", "-f", f"{job_id}/.control/spec.json"], capture_output=True, text=True).stdout
    return len(out.split())


def cut_mid_stream(tmp: Path) -> dict[str, Any]:
    from test_comm import Collector, FlakyProxy
    from test_deploy_faults import tls_client, tls_server

    provision_project(tmp, {"site-1": True, "site-2": True}, 8002)
    gaps: list[float] = []
    last = [time.monotonic()]
    batches = 0
    box: list[FlakyProxy] = []

    def hook(records: list[dict]) -> None:  # type: ignore[type-arg]
        nonlocal batches
        now = time.monotonic()
        gaps.append(now - last[0])
        last[0] = now
        batches += 1
        if batches in (2, 5, 9):
            box[0].drop()

    collector = Collector(hook=hook)
    server = tls_server(tmp, on_events=collector)
    proxy = FlakyProxy(server.port)
    box.append(proxy)
    client = tls_client(tmp, "site-1", proxy.port, batch_max=1000)
    start = time.monotonic()
    client.connect(timeout=10)
    for chunk in range(20):
        client.send_events([{"i": chunk * 1000 + i} for i in range(1000)])
        if chunk % 4 == 3:
            proxy.drop()
        time.sleep(0.01)
    left = client.flush(30)
    elapsed = time.monotonic() - start
    client.close(timeout=5)
    proxy.close()
    server.stop()
    got = [r["i"] for r in collector.by_site["site-1"]]
    return {"scenario": "connection cut mid-stream (mTLS, proxy)", "sent": 20_000, "written": len(got),
            "once_in_order": got == list(range(20_000)) and left == 0, "cuts": proxy.drops,
            "longest_gap_s": round(max(gaps), 2), "elapsed_s": round(elapsed, 2)}


def slow_site(tmp: Path) -> dict[str, Any]:
    from test_comm import Collector
    from test_deploy_faults import ThrottledProxy, tls_client, tls_server

    provision_project(tmp, {"site-1": True, "site-2": True}, 8002)
    collector = Collector()
    server = tls_server(tmp, on_events=collector)
    link = ThrottledProxy(server.port, delay=0.05)
    fast = tls_client(tmp, "site-1", server.port, batch_max=500)
    slow = tls_client(tmp, "site-2", link.port, batch_max=500)
    fast.connect(timeout=10)
    slow.connect(timeout=30)
    link.open.clear()
    for chunk in range(10):
        slow.send_events([{"i": chunk * 500 + k} for k in range(500)])
    start = time.monotonic()
    for chunk in range(20):
        fast.send_events([{"i": chunk * 500 + k} for k in range(500)])
    fast.flush(30)
    fast_s = time.monotonic() - start
    slow_pending = slow.unacked
    link.open.set()
    t1 = time.monotonic()
    slow.flush(120)
    slow_s = time.monotonic() - t1
    fast.close(timeout=5)
    slow.close(timeout=30)
    link.close()
    server.stop()
    got = [r["i"] for r in collector.by_site["site-2"]]
    return {"scenario": "slow site (stalled, then 50 ms per chunk)", "fast_written": len(collector.by_site["site-1"]),
            "fast_flush_s": round(fast_s, 2), "slow_pending_meanwhile": slow_pending,
            "slow_written_after": len(got), "slow_once_in_order": got == list(range(5000)),
            "slow_drain_s": round(slow_s, 2)}


def server_restart(tmp: Path) -> dict[str, Any]:
    dep = Deployment(tmp / "kits", {"site-1": True, "site-2": True})
    try:
        dep.start()
        long_job = dep.submit(job_variant(SEED_JOB, tmp / "long", rounds=200, epochs=1, sites=["site-1", "site-2"]))
        queued = dep.submit(job_variant(SEED_JOB, tmp / "short", rounds=1, epochs=1, sites=["site-1", "site-2"]))
        folder = dep.workspace / long_job / "tb_events"
        dep.wait_for(lambda: len(tb(folder / "site-1")) >= 2, "records")
        dep.kill_server()
        killed = time.monotonic()
        time.sleep(1.0)
        at_kill = {s: len(tb(folder / s)) for s in ("site-1", "site-2")}
        left_job_server = job_processes(long_job)
        time.sleep(2.0)
        dep.start_server()
        restarted = time.monotonic()
        dep.wait_for(lambda: all(dep.log(s).count("connected to localhost") >= 2 for s in ("site-1", "site-2")),
                     "sites to reconnect")
        reconnected = time.monotonic() - restarted
        record = dep.wait_state(long_job, ("failed", "finished", "aborted"))
        after = {s: len(tb(folder / s)) for s in ("site-1", "site-2")}
        second = dep.wait_state(queued, ("finished", "failed"))
        time.sleep(1.0)
        return {"scenario": "server killed (SIGKILL) mid-job, restarted 3 s later",
                "written_at_kill": at_kill, "readable_after_restart": after,
                "job_reported": f"{record['state']}: {record['error']}",
                "queued_job": second["state"], "sites_reconnected_after_restart_s": round(reconnected, 2),
                "job_processes_left_1s_after_kill": left_job_server,
                "job_processes_left_at_end": job_processes(long_job),
                "since_kill_s": round(time.monotonic() - killed, 1)}
    finally:
        dep.stop()


def site_killed(tmp: Path, min_clients: int) -> dict[str, Any]:
    dep = Deployment(tmp / f"kits{min_clients}", {"site-1": True, "site-2": True})
    try:
        dep.start()
        job_id = dep.submit(job_variant(SEED_JOB, tmp / f"job{min_clients}", rounds=4, epochs=1,
                                        sites=["site-1", "site-2"], min_clients=min_clients, heartbeat=3.0))
        folder = dep.workspace / job_id / "tb_events"
        dep.wait_for(lambda: bool(tb(folder / "site-2")), "site-2's records")
        dep.clients["site-2"].kill()
        dep.clients["site-2"].wait()
        killed = time.time()
        sent = len(tb(folder / "site-2"))
        record = dep.wait_state(job_id, ("finished", "failed"))
        log = dep.admin("logs", job_id).stdout
        lost = re.search(r"^(\S+ \S+) .*lost contact with site-2", log, re.MULTILINE)
        noticed = ""
        if lost:
            import datetime

            stamp = datetime.datetime.strptime(lost.group(1), "%Y-%m-%d %H:%M:%S,%f").timestamp()
            noticed = f"{stamp - killed:.1f} s"
        time.sleep(1.0)
        return {"scenario": f"site-2 killed mid-round, min_clients {min_clients}",
                "site2_written_before_kill": sent, "site2_on_disk_after": len(tb(folder / "site-2")),
                "job": f"{record['state']}" + (f": {record['error']}" if record["error"] else ""),
                "noticed_after": noticed or "(job failed first)", "processes_left": job_processes(job_id)}
    finally:
        dep.stop()


def attacks(tmp: Path) -> dict[str, Any]:
    import grpc
    from deployment import ADMIN, expired_kit, flconfig

    from flconfig.deploy import wire
    from flconfig.deploy.admin import Admin, AdminError
    from flconfig.deploy.kit import load_kit

    dep = Deployment(tmp / "kits", {"site-1": True, "site-2": True}).start()
    try:
        address = f"localhost:{dep.port}"
        ca = (dep.root / "server" / "startup" / "rootCA.pem").read_bytes()
        other = tmp / "other"
        provision_project(other, {"site-1": True}, dep.port, project="other")
        foreign = load_kit(other / ADMIN)
        flconfig("provision", str(dep.root / "project.yaml"), "-o", str(dep.root), "--revoke", "site-2", check=True)

        def call(creds: Any, method: str = "Jobs") -> str:
            channel = grpc.secure_channel(address, creds, options=wire.options())
            try:
                request = wire.REQUESTS[method]()
                if method == "Poll":
                    request.wait = 0  # answered at once
                channel.unary_unary(wire.method_path(method))(request.SerializeToString(), timeout=10)
                return "ACCEPTED"
            except grpc.RpcError as exc:
                return exc.code().name
            finally:
                channel.close()

        def kit_creds(path: Path) -> Any:
            return load_kit(path).channel_credentials()

        results = {
            "no certificate": call(grpc.ssl_channel_credentials(ca)),
            "another CA's certificate": call(grpc.ssl_channel_credentials(
                ca, foreign.key_file.read_bytes(), foreign.cert_file.read_bytes())),
            "expired certificate": call(kit_creds(expired_kit(dep.root, ADMIN, "expired"))),
            "revoked site (site-2)": call(kit_creds(dep.root / "site-2"), "Poll"),
            "admin command with a site certificate": call(kit_creds(dep.root / "site-1")),
            "site call with an admin certificate": call(kit_creds(dep.root / ADMIN), "Poll"),
        }
        # site-1's certificate claiming to be site-2 on a job's link: tests/e2e/test_deploy.py
        served = False
        with Admin(load_kit(dep.root / ADMIN)) as admin:
            try:
                served = "site-1" in admin.jobs()["sites"]
            except AdminError:
                served = False
        time.sleep(0.5)
        log = dep.log()
        return {"scenario": "attacks", "answers": results,
                "refusals_logged": log.count("refused a TLS connection") + log.count("refused "),
                "honest_admin_served_after": served}
    finally:
        dep.stop()


# --- issue 21 --------------------------------------------------------------------------------

EVIL = """import pathlib
pathlib.Path({marker!r}).write_text("imported")

from nvflare.apis.fl_component import FLComponent


class Evil(FLComponent):
    def __init__(self):
        super().__init__()
"""


def _edit_json(path: Path, change: Any) -> None:
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def _timed(fn: Any) -> tuple[Any, float]:
    start = time.monotonic()
    value = fn()
    return value, round(time.monotonic() - start, 2)


def custom_code(tmp: Path) -> dict[str, Any]:
    """A server and a site that run no custom code, and jobs that try to make them."""
    dep = Deployment(tmp / "kits", {"site-1": False}, server_custom=False).start()
    marker = tmp / "marker"
    try:
        # 1. the server names a class of the custom/ folder of an app deployed to nobody
        nobody = tmp / "nobody"
        shutil.copytree(SEED_JOB, nobody)
        (nobody / "evil" / "custom").mkdir(parents=True)
        (nobody / "evil" / "custom" / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
        _edit_json(nobody / "meta.json", lambda m: m["deploy_map"].__setitem__("evil", []))
        _edit_json(nobody / "app" / "config" / "config_fed_server.json",
                   lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
        r1, t1 = _timed(lambda: dep.admin("submit", str(nobody)))
        # 2. the server's own app holds custom code
        own = tmp / "own"
        shutil.copytree(nobody, own)
        shutil.move(str(own / "evil" / "custom"), str(own / "app" / "custom"))
        r2, t2 = _timed(lambda: dep.admin("submit", str(own)))
        # 3. only site-1's app holds custom code: the server accepts, the site refuses
        site_job = tmp / "site"
        shutil.copytree(SEED_JOB, site_job)
        shutil.copytree(SEED_JOB / "app", site_job / "server_app")
        (site_job / "app" / "custom").mkdir()
        (site_job / "app" / "custom" / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
        _edit_json(site_job / "meta.json", lambda m: (m.__setitem__("deploy_map", {
            "server_app": ["server"], "app": ["site-1"]}), m.__setitem__("min_clients", 1)))
        _edit_json(site_job / "server_app" / "config" / "config_fed_server.json",
                   lambda c: c.__setitem__("min_clients", 1))
        _edit_json(site_job / "app" / "config" / "config_fed_client.json",
                   lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
        submitted = time.monotonic()
        job_id = dep.submit(site_job)
        record = dep.wait_state(job_id, ("finished", "failed"))
        refused_after = time.monotonic() - submitted
        return {"scenario": "custom code where it is not allowed (server and site without it)",
                "class_of_an_app_deployed_to_nobody": {"exit": r1.returncode, "answer_s": t1,
                                                       "says": _error_line(r1.stdout)},
                "server_app_holds_custom_code": {"exit": r2.returncode, "answer_s": t2,
                                                 "says": _error_line(r2.stdout)},
                "site_app_holds_custom_code": {"job": record["state"], "refused_after_s": round(refused_after, 2),
                                               "says": record["error"][:200]},
                "job_code_imported_anywhere": marker.exists()}
    finally:
        dep.stop()


def _error_line(text: str, about: str = "") -> str:
    """The first error line of a report (that mentions ``about``)."""
    return next((line for line in text.splitlines() if ": error: " in line and about in line),
                text.strip()[:200])[:240]


HOCON_BOMB = "".join(
    ["a0 = [0,0,0,0,0,0,0,0,0,0]\n"]
    + [f"a{i} = [{','.join(['${a' + str(i - 1) + '}'] * 10)}]\n" for i in range(1, 9)]
    + ["format_version = 2\nexecutors = []\nbomb = ${a8}\n"])


def _peak_rss_mb(pid: int) -> float:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        pass
    return float("nan")


class _Counter(http.server.BaseHTTPRequestHandler):
    hits = 0

    def do_GET(self) -> None:  # noqa: N802 - the http.server name
        type(self).hits += 1
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"format_version = 2\n")

    def log_message(self, *args: Any) -> None:
        pass


def hostile_configs(tmp: Path) -> dict[str, Any]:
    """Configs that try to read the server's files and environment, fetch a URL, or
    expand without end, submitted to a real server."""
    secret = "s3cret-" + os.urandom(6).hex()
    os.environ["FLCONFIG_BENCH_SECRET"] = secret  # the server (a child) has it in its environment
    web = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Counter)
    threading.Thread(target=web.serve_forever, daemon=True).start()
    dep = Deployment(tmp / "kits", {"site-1": True}).start()
    try:
        assert dep.server is not None
        cases = {
            "HOCON substitution bomb (10^9 values)": HOCON_BOMB,
            "include file(\"/etc/passwd\")": 'include file("/etc/passwd")\nformat_version = 2\nexecutors = []\n',
            "include url(http://127.0.0.1/...)":
                f'include url("http://127.0.0.1:{web.server_address[1]}/x.conf")\nformat_version = 2\n'
                "executors = []\n",
            "${FLCONFIG_BENCH_SECRET} from the server's environment":
                "format_version = 2\nexecutors = []\nsecret = ${FLCONFIG_BENCH_SECRET}\n",
            "{$FLCONFIG_BENCH_SECRET} (FLARE's form)":
                'format_version = 2\nexecutors = []\nsecret = "{$FLCONFIG_BENCH_SECRET}"\n',
        }
        out: dict[str, Any] = {"scenario": "configs that read the server's machine or expand without end",
                               "bomb_bytes": len(HOCON_BOMB.encode())}
        rss_before = _peak_rss_mb(dep.server.pid)
        for i, (name, text) in enumerate(cases.items()):
            job = tmp / f"job{i}"
            shutil.copytree(SEED_JOB, job)
            (job / "app" / "config" / "config_fed_client.json").unlink()
            (job / "app" / "config" / "config_fed_client.conf").write_text(text)
            result, took = _timed(lambda job=job: dep.admin("submit", str(job)))
            about = "FLCONFIG_BENCH_SECRET" if "SECRET" in name else ""
            out[name] = {"exit": result.returncode, "answer_s": took, "says": _error_line(result.stdout, about),
                         "secret_in_answer": secret in result.stdout + result.stderr}
        out["server_peak_rss_mb_before_after"] = [rss_before, _peak_rss_mb(dep.server.pid)]
        out["urls_fetched"] = _Counter.hits
        out["secret_in_server_log"] = secret in dep.log()
        return out
    finally:
        dep.stop()
        web.shutdown()
        os.environ.pop("FLCONFIG_BENCH_SECRET", None)


def anchor_bomb(tmp: Path, rev: str) -> dict[str, Any]:
    """``flconfig validate`` of the HOCON bomb with this tree and with the tree at ``rev``."""
    bomb = tmp / "bomb.conf"
    bomb.write_text(HOCON_BOMB)
    tree = tmp / "anchor"
    subprocess.run(["git", "-C", str(ROOT), "worktree", "add", "--detach", str(tree), rev],
                   check=True, capture_output=True)
    out: dict[str, Any] = {"scenario": f"validate of the {len(HOCON_BOMB)}-byte HOCON bomb, this tree vs {rev}"}
    try:
        for label, path in (("this tree", ROOT), (rev, tree)):
            probe = (f"import resource, subprocess, sys, time\n"
                     f"resource.setrlimit(resource.RLIMIT_AS, (4 << 30, 4 << 30))\n"
                     f"t = time.monotonic()\n"
                     f"try:\n    p = subprocess.run([sys.executable, '-m', 'flconfig', 'validate', {str(bomb)!r}],"
                     f" capture_output=True, text=True, timeout=120, cwd={str(path)!r})\n"
                     f"    rc, line = p.returncode, (p.stdout + p.stderr).strip().splitlines()[:1]\n"
                     f"except subprocess.TimeoutExpired:\n    rc, line = 'timeout (120 s)', []\n"
                     f"print(rc, round(time.monotonic() - t, 2),"
                     f" resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss // 1024, line)\n")
            env = {**os.environ, "PYTHONPATH": str(path)}
            res = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, env=env, cwd=tmp)
            out[label] = res.stdout.strip()[:300] or res.stderr.strip()[-300:]
    finally:
        subprocess.run(["git", "-C", str(ROOT), "worktree", "remove", "--force", str(tree)], capture_output=True)
    return out


def store_locked(tmp: Path) -> dict[str, Any]:
    """The job store cannot be written (another program holds its lock) while a job ends."""
    dep = Deployment(tmp / "kits", {"site-1": True}).start()
    try:
        job_id = dep.submit(job_variant(SEED_JOB, tmp / "long", rounds=200, epochs=1, sites=["site-1"],
                                        min_clients=1))
        dep.wait_state(job_id, ("running",))
        blocker = sqlite3.connect(str(dep.workspace / "jobs.db"), timeout=0, isolation_level=None)
        blocker.execute("BEGIN EXCLUSIVE")
        asked = time.monotonic()
        dep.admin("abort", job_id, check=True)
        dep.wait_for(lambda: "note" in dep.state(job_id), "the note")
        shown_after = time.monotonic() - asked
        dep.wait_for(lambda: job_processes(job_id) == 0, "the job's processes to end")
        processes_after = job_processes(job_id)
        state_meanwhile = dep.state(job_id)
        time.sleep(3.0)  # held a while: the server keeps trying
        blocker.execute("ROLLBACK")
        blocker.close()
        released = time.monotonic()
        dep.wait_for(lambda: "note" not in dep.state(job_id), "the store to record it")
        recorded_after = time.monotonic() - released
        log = dep.log()
        return {"scenario": "the job store locked by another program while a job ends",
                "shown_ended_after_s": round(shown_after, 2), "state_meanwhile": state_meanwhile["state"],
                "note": state_meanwhile.get("note", "")[:160], "job_processes_left": processes_after,
                "recorded_after_unlock_s": round(recorded_after, 2), "final_state": dep.state(job_id)["state"],
                "server_log_lines_about_it": log.count("the job store cannot record it yet"),
                "traceback_in_log": "Traceback" in log}
    finally:
        dep.stop()


def in_use(tmp: Path) -> dict[str, Any]:
    """A second server on a port in use, and on a workspace in use; the first serves on."""
    from deployment import flconfig, free_port

    dep = Deployment(tmp / "kits", {"site-1": True}).start()
    try:
        kit = str(dep.root / "server")
        port, t1 = _timed(lambda: flconfig("server", kit, "--host", "127.0.0.1", "--workspace", str(tmp / "o"),
                                           timeout=60))
        ws, t2 = _timed(lambda: flconfig("server", kit, "--host", "127.0.0.1", "--port", str(free_port()),
                                         timeout=60))
        answered = sum(dep.admin("jobs").returncode == 0 for _ in range(20))
        return {"scenario": "a second flconfig server on a port, and on a workspace, in use",
                "port_in_use": {"exit": port.returncode, "s": t1, "stderr": port.stderr.strip()},
                "workspace_in_use": {"exit": ws.returncode, "s": t2, "stderr": ws.stderr.strip()},
                "first_server_answered": f"{answered}/20"}
    finally:
        dep.stop()


def _poc_processes(folder: Path) -> int:
    out = subprocess.run(["pgrep", "-f", str(folder)], capture_output=True, text=True).stdout
    return len(out.split())


def poc_failures(tmp: Path) -> dict[str, Any]:
    """poc start that cannot come up: the port taken, a site's kit broken."""
    from deployment import flconfig

    poc = tmp / "poc"
    env = {"FLCONFIG_POC_DIR": str(poc)}
    flconfig("poc", "prepare", "-n", "2", "--port", "0", env=env, check=True)
    port = json.loads((poc / "server" / "startup" / "kit.json").read_text())["server"]["port"]
    started, t0 = _timed(lambda: flconfig("poc", "start", env=env, timeout=180))
    flconfig("poc", "stop", env=env)
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", port))
        taken.listen()
        busy, t1 = _timed(lambda: flconfig("poc", "start", env=env, timeout=180))
        left1 = _poc_processes(poc)
    (poc / "site-2" / "startup" / "client.key").unlink()
    broken, t2 = _timed(lambda: flconfig("poc", "start", env=env, timeout=180))
    left2 = _poc_processes(poc)
    return {"scenario": "poc start: healthy, port taken, a site's kit broken",
            "healthy": {"exit": started.returncode, "until_all_connected_s": t0},
            "port_taken": {"exit": busy.returncode, "s": t1, "stderr": busy.stderr.strip()[:200],
                           "processes_left": left1},
            "site_kit_broken": {"exit": broken.returncode, "s": t2, "stderr": broken.stderr.strip()[:200],
                                "processes_left": left2}}


def second_instance(tmp: Path) -> dict[str, Any]:
    """Two instances of site-1 (a copy of its kit elsewhere): one speaks for it at a time."""
    dep = Deployment(tmp / "kits", {"site-1": True}).start()
    other = tmp / "other"
    other.mkdir()
    log = other / "service.log"
    second = None
    try:
        with open(log, "wb") as out:
            second = subprocess.Popen([sys.executable, "-m", "flconfig", "client", str(dep.root / "site-1"),
                                       "--workspace", str(other / "ws")], stdout=out, stderr=subprocess.STDOUT)
        started = time.monotonic()
        dep.wait_for(lambda: "the server refuses this instance" in log.read_text(), "the refusal")
        told_after = time.monotonic() - started
        dep.clients["site-1"].kill()
        dep.clients["site-1"].wait()
        killed = time.monotonic()
        dep.wait_for(lambda: "a new instance took over" in dep.log(), "the takeover")
        took_over = time.monotonic() - killed
        job_id = dep.submit(job_variant(SEED_JOB, tmp / "seed", rounds=1, epochs=1, sites=["site-1"],
                                        min_clients=1))
        record = dep.wait_state(job_id, ("finished", "failed"))
        return {"scenario": "a second instance of site-1 while the first is connected",
                "second_told_why_after_s": round(told_after, 2),
                "takeover_after_first_killed_s": round(took_over, 2),
                "job_after_takeover": record["state"], "ran_in_second_workspace": (other / "ws" / job_id).is_dir()}
    finally:
        if second is not None and second.poll() is None:
            second.terminate()
            second.wait(timeout=30)
        dep.stop()


SCENARIOS: dict[str, Any] = {
    "cut": cut_mid_stream, "slow": slow_site, "restart": server_restart, "attacks": attacks,
    "killed1": lambda tmp: site_killed(tmp, 1), "killed2": lambda tmp: site_killed(tmp, 2),
    "custom": custom_code, "configs": hostile_configs, "store": store_locked, "in_use": in_use,
    "poc": poc_failures, "instances": second_instance,
}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", help="run these scenarios only (comma-separated: " + ", ".join(SCENARIOS) + ")")
    parser.add_argument("--anchor", metavar="REV", help="also validate the HOCON bomb with the tree at REV")
    ns = parser.parse_args()
    wanted = ns.only.split(",") if ns.only else list(SCENARIOS)
    unknown = [w for w in wanted if w not in SCENARIOS]
    if unknown:
        parser.error(f"unknown scenario(s): {', '.join(unknown)}")
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for name in wanted:
            folder = tmp / name
            folder.mkdir()
            print(json.dumps(SCENARIOS[name](folder)), flush=True)
        if ns.anchor:
            folder = tmp / "anchor"
            folder.mkdir()
            print(json.dumps(anchor_bomb(folder, ns.anchor)), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
