"""The wire contract: the .proto and its generated stubs, and models larger than one message.

Real gRPC over real sockets. A model frame above one chunk travels in chunks
(FetchModel, PushResult), so its size is bounded by ``max_model_mb`` only, not by
the gRPC message limit.
"""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import grpc
import numpy as np
import pytest
from harness import REPO
from harness.comm import TOKENS, FlakyProxy, raw_call
from harness.protos import stale_stubs

from flconfig.errors import JobError
from flconfig.transport import contract
from flconfig.transport import flconfig_pb2 as pb
from flconfig.transport.client import CommClient, Task
from flconfig.transport.codec import encode_model
from flconfig.types import FLModel, Signal

pytestmark = pytest.mark.timeout(120)

ROOT = REPO
PROTO = ROOT / "flconfig" / "transport" / "flconfig.proto"
#: Several hundred MB: far above one gRPC message (16 MiB by default).
BIG_FLOATS = 80_000_000  # 320 MB of float32


def big_model(seed: int = 0) -> FLModel:
    rng = np.random.default_rng(seed)
    w = np.empty(BIG_FLOATS, dtype=np.float32)
    w[:] = rng.standard_normal(1000, dtype=np.float32).repeat(BIG_FLOATS // 1000)
    return FLModel(params={"w": w, "b": np.arange(10, dtype=np.int64)}, meta={"round": 3})


def hello(site: str = "site-1", version: int = contract.PROTOCOL_VERSION) -> bytes:
    return pb.HelloRequest(stream="s1", version=version).SerializeToString()


# --------------------------------------------------------------------------- the contract


def test_the_service_methods_are_those_of_the_proto() -> None:
    service = pb.DESCRIPTOR.services_by_name["Comm"]
    assert f"{pb.DESCRIPTOR.package}.{service.name}" == contract.SERVICE
    assert tuple(m.name for m in service.methods) == contract.METHODS
    streaming_requests = {m.name for m in service.methods if m.client_streaming}
    streaming_replies = {m.name for m in service.methods if m.server_streaming}
    assert streaming_requests == contract.STREAMING_REQUESTS
    assert streaming_replies == contract.STREAMING_REPLIES


def test_the_committed_stubs_are_generated_from_the_proto(tmp_path: Path) -> None:
    assert stale_stubs(PROTO, tmp_path) == [], "the stubs do not match flconfig.proto: run `make proto`"


@pytest.mark.parametrize("size", [1, 127, 128, 16_383, 16_384, 2_097_152, 4 * 2**20])
def test_chunks_framed_by_hand_are_the_messages_protobuf_writes(size: int) -> None:
    data = bytes(range(256)) * (size // 256) + bytes(size % 256)
    assert contract.wire_bytes_field(1, memoryview(data)) == pb.Chunk(data=data).SerializeToString()
    head = pb.ResultPart(task_id="t", model_bytes=size)
    framed = head.SerializeToString() + contract.wire_bytes_field(3, data)
    assert pb.ResultPart.FromString(framed) == pb.ResultPart(task_id="t", model_bytes=size, data=data)


def test_a_site_of_another_protocol_version_is_told_so(make_server) -> None:
    server = make_server()
    with pytest.raises(grpc.RpcError) as info:
        raw_call(server.address, "Hello", hello(version=1), "site-1", TOKENS["site-1"])
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION
    assert "protocol version 1; this server speaks 2" in info.value.details()


def test_the_size_limits_are_checked() -> None:
    with pytest.raises(ValueError, match="max_message_mb must be an int >= 8"):
        CommClient("127.0.0.1:1", "site-1", "t", max_message_mb=4)
    with pytest.raises(ValueError, match="max_model_mb must be an int >= 1"):
        CommClient("127.0.0.1:1", "site-1", "t", max_model_mb=0)


# --------------------------------------------------------------------------- big models


def test_a_model_of_hundreds_of_mb_goes_both_ways_in_chunks(make_server, start_sites) -> None:
    server = make_server()
    model = big_model()
    size = len(encode_model(model))
    assert size > 300 * 2**20 > 10 * server.max_message_mb * 2**20

    def double(site: str, task: Task) -> FLModel:
        return FLModel(params={k: v * 2 for k, v in task.data.params.items()},
                       meta={"seen": task.data.meta["round"]})

    start_sites(server, double, n=1)
    result = server.send_and_wait("train", model, "site-1", timeout=60)
    assert result.meta == {"seen": 3}
    assert np.array_equal(result.params["w"], model.params["w"] * 2)
    assert result.params["w"].dtype == np.float32
    assert np.array_equal(result.params["b"], np.arange(10) * 2)


def test_a_broken_model_transfer_resumes_where_it_stopped(make_server) -> None:
    server = make_server()
    model = big_model(seed=1)
    size = len(encode_model(model))

    class CuttingProxy(FlakyProxy):
        """Cuts the connection once, after 60 % of the model went down."""

        down = 0

        def relayed(self, nbytes: int, to_client: bool) -> None:
            if to_client:
                with self.lock:
                    self.down += nbytes
                    cut = self.drops == 0 and self.down > 0.6 * size
                if cut:
                    self.drop()

    proxy = CuttingProxy(server.port)
    client = CommClient(f"127.0.0.1:{proxy.port}", "site-1", TOKENS["site-1"], 0.2)
    box: dict[str, object] = {}
    try:
        client.connect(timeout=10)
        thread = threading.Thread(
            target=lambda: box.update(r=server.broadcast_and_wait("train", model, None, 1))
        )
        thread.start()
        task = client.get_task(timeout=60)
        assert isinstance(task, Task)
        assert np.array_equal(task.data.params["w"], model.params["w"])
        assert client.submit_result(task, FLModel(meta={"ok": True}))
        thread.join(30)
    finally:
        client.close(timeout=5)
        proxy.close()
    assert box["r"]["site-1"].meta == {"ok": True}  # type: ignore[index]
    assert proxy.drops >= 1
    # Resumed, not started again: well under the 1.6 × size a restart would take.
    assert proxy.down < 1.3 * size


def test_a_result_above_the_servers_limit_is_refused_at_the_site(make_server) -> None:
    server = make_server(max_model_mb=1)
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        task = Task("train", "t1", FLModel())
        big = FLModel(params={"w": np.zeros(300_000, dtype=np.float32)})  # 1.2 MB
        with pytest.raises(JobError, match=r"is 1\.1 MiB, above the limit of 1 MiB"):
            client.submit_result(task, big)


def test_oversize_task_data_is_refused_before_it_is_sent(make_server, start_sites) -> None:
    server = make_server(max_model_mb=1)
    start_sites(server, lambda site, task: FLModel(), n=1)
    big = FLModel(params={"w": np.zeros(300_000, dtype=np.float32)})  # 1.2 MB
    with pytest.raises(JobError, match="above max_model_mb=1"):
        server.broadcast_and_wait("train", big, None, 1)


# --------------------------------------------------------------------------- hostile parts


def _push(address: str, parts: list[pb.ResultPart], site: str = "site-1") -> bytes:
    with grpc.insecure_channel(address) as channel:
        call = channel.stream_unary(contract.method_path("PushResult"))
        metadata = ((contract.SITE_METADATA, site), (contract.TOKEN_METADATA, TOKENS[site]))
        return call(iter(p.SerializeToString() for p in parts), timeout=10, metadata=metadata)


def test_hostile_chunked_results_are_refused_and_the_server_keeps_working(
    make_server, start_sites
) -> None:
    server = make_server()
    held = threading.Event()

    def hold(site: str, task: Task) -> FLModel | None:
        held.set()
        return None  # site-1 never answers: the test answers for it, badly

    start_sites(server, hold, n=1)
    box: dict[str, object] = {}
    thread = threading.Thread(target=lambda: box.update(
        r=server.broadcast_and_wait("train", FLModel(params={"w": np.ones(3)}), None, 1,
                                    timeout=20)))
    thread.start()
    assert held.wait(10)
    task_id = server._state.tasks and next(iter(server._state.tasks))
    frame = encode_model(FLModel(params={"w": np.full(3, 7.0)}))

    # More bytes than announced, fewer than announced, a size above the limit.
    cases = [
        ([pb.ResultPart(task_id=task_id, model_bytes=4, data=frame[:4]),
          pb.ResultPart(data=frame[4:])], grpc.StatusCode.INVALID_ARGUMENT, "more than the 4"),
        ([pb.ResultPart(task_id=task_id, model_bytes=len(frame) + 1, data=frame)],
         grpc.StatusCode.INVALID_ARGUMENT, "of the"),
        ([pb.ResultPart(task_id=task_id, model_bytes=1 << 60)],
         grpc.StatusCode.RESOURCE_EXHAUSTED, "above this server's max_model_mb"),
    ]
    for parts, code, words in cases:
        with pytest.raises(grpc.RpcError) as info:
            _push(server.address, parts)
        assert info.value.code() == code and words in info.value.details()
    # A task that was never sent to this site: not accepted, and not stored.
    reply = _push(server.address, [pb.ResultPart(task_id="nope", model_bytes=len(frame),
                                                 data=frame)])
    assert pb.SubmitResultReply.FromString(reply).accepted is False
    with pytest.raises(grpc.RpcError) as info:
        raw_call(server.address, "FetchModel",
                 pb.FetchModelRequest(task_id="nope").SerializeToString(), "site-1",
                 TOKENS["site-1"])
    assert info.value.code() == grpc.StatusCode.NOT_FOUND

    # The honest result, in parts, still counts.
    parts = [pb.ResultPart(task_id=task_id, model_bytes=len(frame), data=frame[:10]),
             pb.ResultPart(data=frame[10:])]
    assert pb.SubmitResultReply.FromString(_push(server.address, parts)).accepted is True
    thread.join(10)
    assert np.array_equal(box["r"]["site-1"].params["w"], np.full(3, 7.0))  # type: ignore[index]


def test_fetching_a_model_from_an_offset_returns_the_rest(make_server, start_sites) -> None:
    server = make_server()
    held = threading.Event()
    start_sites(server, lambda site, task: held.set(), n=1)  # takes the task, never answers
    model = FLModel(params={"w": np.arange(3_000_000, dtype=np.float32)})  # 12 MB: chunked
    frame = encode_model(model)
    stop = Signal()
    thread = threading.Thread(
        target=lambda: server.broadcast_and_wait("train", model, None, 1, abort=stop)
    )
    thread.start()
    assert held.wait(10)
    task_id = next(iter(server._state.tasks))
    options = contract.client_options(contract.DEFAULT_MAX_MESSAGE_MB)
    with grpc.insecure_channel(server.address, options=options) as channel:
        call = channel.unary_stream(contract.method_path("FetchModel"))
        metadata = ((contract.SITE_METADATA, "site-1"), (contract.TOKEN_METADATA,
                                                        TOKENS["site-1"]))
        offset = len(frame) - 5_000_000
        request = pb.FetchModelRequest(task_id=task_id, offset=offset).SerializeToString()
        chunks = [pb.Chunk.FromString(c).data for c in call(request, timeout=10,
                                                            metadata=metadata)]
    assert b"".join(chunks) == frame[offset:]
    assert max(len(c) for c in chunks) == contract.CHUNK_BYTES
    stop.trigger("done")
    thread.join(10)


if __name__ == "__main__":
    sys.exit(pytest.main([__file__, "-v"]))
