"""Faults and attacks against a deployment (issue 10), measured: records sent vs written,
processes left, time to recover. The same scenarios as tests/test_deploy.py and
tests/test_deploy_faults.py, on real `flconfig server` / `client` processes and the
real mutual-TLS link, with the figures docs/reliability.md quotes.

    python benchmarks/deploy_reliability.py
"""

from __future__ import annotations

import json
import re
import subprocess
import sys
import tempfile
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
                channel.unary_unary(wire.method_path(method))(wire.encode({"jobs": {}, "wait": 0}), timeout=10)
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
        # site-1's certificate claiming to be site-2 on a job's link: tests/test_deploy.py
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


def main() -> int:
    out = []
    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        for i, scenario in enumerate((cut_mid_stream, slow_site, server_restart, attacks)):
            folder = tmp / str(i)
            folder.mkdir()
            out.append(scenario(folder))
            print(json.dumps(out[-1]), flush=True)
        for n in (1, 2):
            folder = tmp / f"k{n}"
            folder.mkdir()
            out.append(site_killed(folder, n))
            print(json.dumps(out[-1]), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
