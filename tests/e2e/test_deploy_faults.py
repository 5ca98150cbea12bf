"""Faults a deployment survives, over the real mutual-TLS link: a connection cut mid-stream,
a slow site, a site killed mid-round."""

from __future__ import annotations

import socket
import threading
import time
from pathlib import Path

import pytest
from harness.comm import Collector, FlakyProxy
from harness.deployment import SEED_JOB, Deployment, job_variant, provision_project

from flconfig.deploy.kit import load_kit
from flconfig.transport.client import CommClient
from flconfig.transport.server import CommServer
from flconfig.transport.tls import job_server_tls

TOKENS = {"site-1": "token-one", "site-2": "token-two"}


@pytest.fixture(scope="module")
def kits(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("kits")
    provision_project(root, {"site-1": True, "site-2": True}, 8002)
    return root


def tls_server(kits: Path, **kwargs: object) -> CommServer:
    """A job's server as a deployment runs it: mutual TLS, every call's certificate checked."""
    credentials, peer_check = job_server_tls(load_kit(kits / "server").tls_files())
    return CommServer(TOKENS, host="localhost", server_credentials=credentials,
                      peer_check=peer_check, **kwargs).start()  # type: ignore[arg-type]


def tls_client(kits: Path, site: str, port: int, **kwargs: object) -> CommClient:
    return CommClient(f"localhost:{port}", site, TOKENS[site],
                      channel_credentials=load_kit(kits / site).channel_credentials(), **kwargs)  # type: ignore[arg-type]


def test_a_connection_cut_mid_stream_over_mutual_tls_loses_and_repeats_nothing(kits: Path) -> None:
    batches = 0
    proxy_box: list[FlakyProxy] = []

    def cut(records: list[dict]) -> None:  # after the server wrote a batch, before the ack arrives
        nonlocal batches
        batches += 1
        if batches in (2, 5, 9):
            proxy_box[0].drop()

    collector = Collector(hook=cut)
    server = tls_server(kits, on_events=collector)
    proxy = FlakyProxy(server.port)
    proxy_box.append(proxy)
    client = tls_client(kits, "site-1", proxy.port, batch_max=1000)
    try:
        client.connect(timeout=10)
        for chunk in range(20):
            client.send_events([{"i": chunk * 1000 + i} for i in range(1000)])
            if chunk % 4 == 3:
                proxy.drop()
            time.sleep(0.01)
        assert client.flush(30) == 0
    finally:
        client.close(timeout=5)
        proxy.close()
        server.stop()
    got = collector.by_site["site-1"]
    assert [r["i"] for r in got] == list(range(20_000))
    assert [r["seq"] for r in got] == list(range(1, 20_001))
    assert proxy.drops >= 6  # each cut needed a new TLS handshake


class ThrottledProxy(FlakyProxy):
    """A slow link: each chunk relayed waits ``delay``, and nothing passes while ``open`` is clear
    (a link so congested it stalls)."""

    def __init__(self, target_port: int, delay: float) -> None:
        super().__init__(target_port)
        self.delay = delay
        self.open = threading.Event()
        self.open.set()

    def _pump(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        try:
            while data := src.recv(65536):
                self.open.wait()  # held before it is passed on
                time.sleep(self.delay)
                dst.sendall(data)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass


def test_a_slow_site_does_not_hold_up_the_others(kits: Path) -> None:
    collector = Collector()
    server = tls_server(kits, on_events=collector)
    slow_link = ThrottledProxy(server.port, delay=0.05)
    fast = tls_client(kits, "site-1", server.port, batch_max=500)
    slow = tls_client(kits, "site-2", slow_link.port, batch_max=500)
    try:
        fast.connect(timeout=10)
        slow.connect(timeout=30)
        slow_link.open.clear()  # site-2's link stalls with its records in flight
        for chunk in range(10):
            slow.send_events([{"i": chunk * 500 + k} for k in range(500)])
        for chunk in range(20):
            fast.send_events([{"i": chunk * 500 + k} for k in range(500)])
        assert fast.flush(30) == 0
        # Every record of site-1 is written while site-2's are all still on its link.
        assert [r["i"] for r in collector.by_site["site-1"]] == list(range(10_000))
        assert "site-2" not in collector.by_site and slow.unacked == 5000
        slow_link.open.set()  # the link comes back, slowly
        assert slow.flush(120) == 0
        got = collector.by_site["site-2"]
        assert [r["i"] for r in got] == list(range(5000))  # all, once, in order
        assert [r["seq"] for r in got] == list(range(1, 5001))
    finally:
        fast.close(timeout=5)
        slow.close(timeout=30)
        slow_link.close()
        server.stop()


@pytest.mark.slow
@pytest.mark.parametrize("min_clients", [1, 2])
def test_a_site_killed_mid_round(tmp_path: Path, min_clients: int) -> None:
    """The round goes on without a killed site while min_clients holds; else the job fails
    naming it. What it sent before is on disk."""
    dep = Deployment(tmp_path / "kits", {"site-1": True, "site-2": True})
    try:
        dep.start()
        job = job_variant(SEED_JOB, tmp_path / "job", rounds=3, epochs=1, sites=["site-1", "site-2"],
                          min_clients=min_clients, heartbeat=3.0)
        job_id = dep.submit(job)
        tb = dep.workspace / job_id / "tb_events" / "site-2"
        dep.wait_for(lambda: tb.is_dir() and bool(_scalars(tb)), "site-2's first records")
        dep.clients["site-2"].kill()  # the site's service; its job process follows it out
        dep.clients["site-2"].wait()
        sent = _scalars(tb)
        record = dep.wait_state(job_id, ("finished", "failed"))
        if min_clients == 1:
            assert record["state"] == "finished", record
            assert "lost contact with site-2" in dep.admin("logs", job_id, check=True).stdout
        else:
            assert record["state"] == "failed"
            assert "site-2" in record["error"]
        assert _scalars(tb)[:len(sent)] == sent
    finally:
        dep.stop()


def _scalars(folder: Path) -> list[tuple[int, float]]:
    from harness.launching import scalars

    return scalars(folder, "train_loss") if folder.is_dir() else []
