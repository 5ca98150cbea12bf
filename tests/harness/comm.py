"""A real server and real sites over gRPC on 127.0.0.1, for the tests of the link and of
what runs on it: the ``make_server`` and ``start_sites`` fixtures (conftest.py registers
them), sites as threads, a proxy that cuts connections, raw calls, event collectors."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable, Iterator

import grpc
import pytest

from flconfig.transport import contract as comm
from flconfig.transport import flconfig_pb2 as pb
from flconfig.transport.client import END, CommClient, Task
from flconfig.transport.codec import encode_records
from flconfig.transport.server import CommServer
from flconfig.types import FLModel

TOKENS = {f"site-{i}": f"secret-token-{i}" for i in range(1, 5)}


class SiteWorker(threading.Thread):
    """One site: connects, answers each task with ``answer(site, task)`` until END.

    ``answer`` returning None means "do not answer" (and make no further call
    until ``release`` is set), which is how a hung site looks to the server.
    """

    def __init__(
        self,
        address: str,
        site: str,
        answer: Callable[[str, Task], FLModel | None],
        heartbeat_interval: float = 0.2,
    ) -> None:
        super().__init__(name=f"worker-{site}", daemon=True)
        self.client = CommClient(address, site, TOKENS[site], heartbeat_interval)
        self.answer = answer
        self.release = threading.Event()
        self.stop = threading.Event()
        self.accepted: list[bool] = []
        self.got_end = False
        self.error: BaseException | None = None

    def run(self) -> None:
        try:
            self.client.connect(timeout=10)
            while not self.stop.is_set():
                task = self.client.get_task(timeout=0.2)
                if task is END:
                    self.got_end = True
                    break
                if task is None:
                    continue
                result = self.answer(self.client.site, task)
                if result is None:
                    self.release.wait(20)
                    return
                self.accepted.append(self.client.submit_result(task, result))
        except BaseException as exc:  # reported by the test
            self.error = exc
        finally:
            self.client.close(timeout=5)


@pytest.fixture
def make_server() -> Iterator[Callable[..., CommServer]]:
    servers: list[CommServer] = []

    def make(**kwargs: object) -> CommServer:
        server = CommServer(TOKENS, **kwargs)  # type: ignore[arg-type]
        server.start()
        servers.append(server)
        return server

    yield make
    for server in servers:
        server.stop(grace=0.5)


@pytest.fixture
def start_sites() -> Iterator[Callable[..., list[SiteWorker]]]:
    workers: list[SiteWorker] = []

    def start(server: CommServer, answer: Callable, n: int = 3, **kw: object) -> list[SiteWorker]:
        new = [SiteWorker(server.address, f"site-{i}", answer, **kw) for i in range(1, n + 1)]  # type: ignore[arg-type]
        for worker in new:
            worker.start()
        workers.extend(new)
        server.wait_for_sites(n, timeout=10)
        return new

    yield start
    for worker in workers:
        worker.stop.set()
        worker.release.set()
    for worker in workers:
        worker.join(timeout=10)
    errors = [f"{w.client.site}: {w.error!r}" for w in workers if w.error is not None]
    assert not errors, errors


def wait_until(condition: Callable[[], bool], timeout: float = 5.0) -> bool:
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.01)
    return True


def add_site_number(site: str, task: Task) -> FLModel:
    """A result that shows which site computed it."""
    number = int(site.rsplit("-", 1)[1])
    return FLModel(params={"w": task.data.params["w"] + number}, meta={"site": site})


def raw_call(address: str, method: str, request: bytes, site: str, token: str) -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.unary_unary(comm.method_path(method))
        return call(
            request,
            timeout=5,
            metadata=((comm.SITE_METADATA, site), (comm.TOKEN_METADATA, token)),
        )


def records_batch(stream: str, seqs: range, **fields: object) -> bytes:
    records = encode_records([{"seq": s, **fields} for s in seqs])
    return pb.SendEventsRequest(stream=stream, records=records).SerializeToString()


class FlakyProxy:
    """A TCP relay whose connections the test can cut, as a network would."""

    def __init__(self, target_port: int) -> None:
        self.target = ("127.0.0.1", target_port)
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        self.lock = threading.Lock()
        self.sockets: list[socket.socket] = []
        self.drops = 0
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                down, _ = self.listener.accept()
            except OSError:
                return
            up = socket.create_connection(self.target)
            with self.lock:
                self.sockets += [down, up]
            threading.Thread(target=self._pump, args=(down, up, False), daemon=True).start()
            threading.Thread(target=self._pump, args=(up, down, True), daemon=True).start()

    def _pump(self, src: socket.socket, dst: socket.socket, to_client: bool) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                self.relayed(len(data), to_client)
        except OSError:
            pass
        for sock in (src, dst):
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass

    def relayed(self, nbytes: int, to_client: bool) -> None:
        """Called after each chunk relayed; a test's subclass may cut the connection here."""

    def drop(self) -> None:
        """Cut every open connection."""
        with self.lock:
            sockets, self.sockets = self.sockets, []
            self.drops += 1
        for sock in sockets:
            try:
                sock.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
            sock.close()

    def close(self) -> None:
        self.listener.close()
        self.drop()


class Collector:
    """on_events target that records what arrived, per site."""

    def __init__(self, hook: Callable[[list[dict]], None] | None = None) -> None:
        self.lock = threading.Lock()
        self.by_site: dict[str, list[dict]] = {}
        self.hook = hook

    def __call__(self, site: str, records: list[dict]) -> None:
        with self.lock:
            self.by_site.setdefault(site, []).extend(records)
        if self.hook is not None:
            self.hook(records)
