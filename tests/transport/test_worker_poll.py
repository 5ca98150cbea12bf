"""One long poll per worker: the sites of a process that share a channel wait for their tasks
in ONE open PollTasks call, each joined to it by its own Hello (its own token), and are
kept alive by it; a caller that did not join a group is refused its tasks; and the sites
of a worker make a bounded number of calls at once. Real servers,
real gRPC, and a real worker process where one is killed."""

from __future__ import annotations

import asyncio
import subprocess
import sys
import textwrap
import threading
import time

import grpc
import numpy as np
import pytest
from harness.comm import TOKENS, add_site_number, raw_call, wait_until

from flconfig.transport import flconfig_pb2 as pb
from flconfig.transport.client import END, CommClient, Task
from flconfig.transport.contract import PROTOCOL_VERSION
from flconfig.transport.link import MAX_CALLS_IN_FLIGHT, SiteLink
from flconfig.transport.server import CommServer
from flconfig.types import FLModel

WORKER_SITES = ("site-1", "site-2", "site-3")


def _heartbeats(server: CommServer) -> int:
    """Heartbeat calls the server has served (what its log's "calls served" line counts)."""
    assert server._plumbing is not None
    return server._plumbing.calls["Heartbeat"]


@pytest.fixture
def worker(make_server):
    """A server, and three sites of one "worker": CommClients sharing their channel (and
    so their poll), heartbeat every 0.1 s."""
    clients: list[CommClient] = []

    def start(**server_args: object) -> tuple[CommServer, list[CommClient]]:
        server = make_server(**server_args)
        for site in WORKER_SITES:
            client = CommClient(server.address, site, TOKENS[site], 0.1, share_channel=True)
            client.connect(timeout=10)
            clients.append(client)
        return server, clients

    yield start
    for client in clients:
        client.close(timeout=5)


def test_a_workers_sites_wait_in_one_poll_and_each_gets_its_own_tasks(worker) -> None:
    server, clients = worker(heartbeat_timeout=600)
    got: dict[str, object] = {}
    waiting = [threading.Thread(target=lambda c=c: got.update({c.site: c.get_task()}), daemon=True)
               for c in clients]
    for thread in waiting:
        thread.start()
    # Three sites waiting for work, one call open on the server for them all.
    assert wait_until(lambda: server.open_polls == 1)
    time.sleep(0.3)
    assert server.open_polls == 1
    assert server.alive_sites() == list(WORKER_SITES)

    gathered: dict[str, FLModel] = {}
    sender = threading.Thread(target=lambda: gathered.update(server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(2)}), list(WORKER_SITES), 0, timeout=30)), daemon=True)
    sender.start()
    for thread in waiting:
        thread.join(10)
    assert sorted(got) == list(WORKER_SITES)
    for client in clients:
        task = got[client.site]
        assert isinstance(task, Task) and task.name == "train"
        assert client.submit_result(task, add_site_number(client.site, task))
    sender.join(10)
    assert {site: r.params["w"].tolist() for site, r in gathered.items()} == {
        "site-1": [1.0, 1.0], "site-2": [2.0, 2.0], "site-3": [3.0, 3.0]}

    # A task for one site reaches that site only; the others' polls time out empty.
    one = threading.Thread(target=lambda: gathered.update(validate=server.send_and_wait(
        "validate", FLModel(params={"w": np.ones(1)}), "site-2", timeout=30)), daemon=True)
    one.start()
    task = clients[1].get_task(timeout=10)
    assert isinstance(task, Task) and task.name == "validate"
    assert clients[0].get_task(timeout=0.3) is None
    assert clients[2].get_task(timeout=0.3) is None
    assert clients[1].submit_result(task, add_site_number("site-2", task))
    one.join(10)
    assert gathered["validate"].params["w"].tolist() == [3.0]

    assert server.end_run(timeout=0.1) == list(WORKER_SITES)  # they have not left yet
    assert [client.get_task(timeout=10) for client in clients] == [END, END, END]


def test_the_open_poll_keeps_every_site_of_the_worker_alive_without_heartbeats(worker) -> None:
    server, clients = worker(heartbeat_timeout=1.0)
    assert wait_until(lambda: server.open_polls == 1)
    before = _heartbeats(server)
    time.sleep(3.0)  # three heartbeat timeouts; the sites beat every 0.1 s when they must
    assert server.alive_sites() == list(WORKER_SITES)
    assert _heartbeats(server) == before
    # One site leaving (Bye) leaves the others in the poll, which another member now makes.
    clients[0].close(timeout=5)
    time.sleep(2.0)
    assert server.alive_sites() == ["site-2", "site-3"]
    assert wait_until(lambda: server.open_polls == 1)


_WORKER_SCRIPT = textwrap.dedent("""
    import asyncio, sys
    from flconfig.transport.link import SiteLink

    address, tokens = sys.argv[1], dict(pair.split("=") for pair in sys.argv[2:])

    async def main():
        links = [SiteLink(address, site, token, heartbeat_interval=0.1, share_channel=True)
                 for site, token in tokens.items()]
        await asyncio.gather(*(link.connect(timeout=30) for link in links))
        await asyncio.gather(*(link.get_task() for link in links))  # waits: nothing comes

    asyncio.run(main())
""")


def test_a_killed_workers_sites_are_each_reported_lost_by_name(make_server) -> None:
    lost: list[str] = []
    server = make_server(heartbeat_timeout=1.0, on_site_lost=lost.append)
    process = subprocess.Popen([sys.executable, "-c", _WORKER_SCRIPT, server.address,
                                *(f"{site}={TOKENS[site]}" for site in WORKER_SITES)])
    try:
        assert len(server.wait_for_sites(3, timeout=30)) == 3
        assert wait_until(lambda: server.open_polls == 1, timeout=10)
        time.sleep(2.0)  # alive through two heartbeat timeouts on their one poll
        assert server.alive_sites() == list(WORKER_SITES) and lost == []
        process.kill()
        process.wait(10)
        assert wait_until(lambda: len(lost) == 3, timeout=10)
    finally:
        if process.poll() is None:
            process.kill()
    assert sorted(lost) == list(WORKER_SITES)
    assert server.alive_sites() == []
    assert server.open_polls == 0


def _poll(address: str, site: str, token: str, group: str) -> pb.PollTasksReply:
    request = pb.PollTasksRequest(group=group, wait=0.0).SerializeToString()
    return pb.PollTasksReply.FromString(raw_call(address, "PollTasks", request, site, token))


def _hello(address: str, site: str, group: str = "") -> None:
    request = pb.HelloRequest(stream="s" * 8, version=PROTOCOL_VERSION, poll_group=group)
    raw_call(address, "Hello", request.SerializeToString(), site, TOKENS[site])


def test_a_poll_for_a_group_the_caller_did_not_join_is_refused_and_takes_nothing(worker) -> None:
    server, clients = worker(heartbeat_timeout=600)
    group = clients[0].link._group
    assert group is not None
    stolen = group.group_id  # what a hostile peer would have to learn
    # A site of the job, with its own valid token, that joined no group or another one.
    _hello(server.address, "site-4")
    with pytest.raises(grpc.RpcError) as refused:
        _poll(server.address, "site-4", TOKENS["site-4"], stolen)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    assert refused.value.details() == (
        "site site-4 has not joined this poll group (its Hello names the group it polls for)")
    _hello(server.address, "site-4", "another-group-of-its-own")
    with pytest.raises(grpc.RpcError) as refused:
        _poll(server.address, "site-4", TOKENS["site-4"], stolen)
    assert refused.value.code() == grpc.StatusCode.PERMISSION_DENIED
    # A member's name without its token does not get that far.
    with pytest.raises(grpc.RpcError) as refused:
        _poll(server.address, "site-1", "not-the-token", stolen)
    assert refused.value.code() == grpc.StatusCode.UNAUTHENTICATED
    # A malformed group id is refused at Hello.
    with pytest.raises(grpc.RpcError) as refused:
        _hello(server.address, "site-4", "short")
    assert refused.value.code() == grpc.StatusCode.INVALID_ARGUMENT

    # Nothing leaked: the group's task still goes to its own site, and only there.
    results: dict[str, FLModel] = {}
    sender = threading.Thread(target=lambda: results.update(server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(1)}), ["site-1"], 0, timeout=30)), daemon=True)
    sender.start()
    task = clients[0].get_task(timeout=10)
    assert isinstance(task, Task)
    assert _poll(server.address, "site-4", TOKENS["site-4"], "another-group-of-its-own").tasks == []
    assert clients[0].submit_result(task, add_site_number("site-1", task))
    sender.join(10)
    assert list(results) == ["site-1"]
    assert server.refused_calls >= 1


def test_a_workers_sites_make_at_most_their_share_of_calls_at_once() -> None:
    sites = MAX_CALLS_IN_FLIGHT * 3
    tokens = {f"site-{i}": f"token-of-site-{i}" for i in range(1, sites + 1)}
    release = threading.Event()
    received: dict[str, list[float]] = {}

    def on_events(site: str, records: list[dict[str, object]]) -> None:
        release.wait(30)  # the server is slow to write: every SendEvents stays open
        received.setdefault(site, []).extend(float(r["value"]) for r in records)  # type: ignore[arg-type]

    server = CommServer(tokens, on_events=on_events).start()

    def in_calls() -> int:
        with server._state.cond:
            return sum(st.active_calls for st in server._state.sites.values())

    async def worker() -> list[int]:
        links = [SiteLink(server.address, site, token, share_channel=True)
                 for site, token in tokens.items()]
        await asyncio.gather(*(link.connect(timeout=30) for link in links))
        for number, link in enumerate(links, start=1):
            link.send_events([{"tag": "x", "value": float(number)}])
        while not release.is_set():
            await asyncio.sleep(0.05)
        return await asyncio.gather(*(link.close(timeout=30) for link in links))

    left: list[int] = []
    runner = threading.Thread(target=lambda: left.extend(asyncio.run(worker())), daemon=True)
    try:
        runner.start()
        # Every site has a batch to send; the server holds each call it gets.
        assert wait_until(lambda: in_calls() >= MAX_CALLS_IN_FLIGHT, timeout=30)
        time.sleep(1.0)
        # The worker's poll, and as many SendEvents as it has call slots: no more.
        assert in_calls() == MAX_CALLS_IN_FLIGHT + 1
        release.set()
        runner.join(60)
    finally:
        release.set()
        server.stop(grace=0.5)
    assert left == [0] * sites  # every record delivered
    assert received == {site: [float(n)] for n, site in enumerate(tokens, start=1)}
