"""The server-site link: wire formats, authentication, task rounds, event delivery.

Everything runs over real gRPC on 127.0.0.1, each site a thread with its own
CommClient (its own channel and TCP connection).
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from collections.abc import Callable

import grpc
import numpy as np
import pytest
import torch
from harness import REPO
from harness.comm import (
    TOKENS,
    Collector,
    FlakyProxy,
    SiteWorker,
    add_site_number,
    raw_call,
    records_batch,
    wait_until,
)
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flconfig.errors import JobError
from flconfig.transport import contract as comm
from flconfig.transport import dispatch as comm_dispatch_module
from flconfig.transport import flconfig_pb2 as pb
from flconfig.transport.client import END, CommClient, Task
from flconfig.transport.codec import (
    ProtocolError,
    decode_model,
    decode_records,
    encode_model,
    encode_records,
)
from flconfig.transport.server import CommServer
from flconfig.types import FLModel, ReturnCode, Signal

pytestmark = pytest.mark.timeout(30)


# --------------------------------------------------------------------------- helpers


# --------------------------------------------------------------------------- codec


def test_model_round_trip_keeps_dtypes_values_order_and_metadata() -> None:
    params = {
        "z.weight": np.random.default_rng(0).standard_normal((3, 4)).astype(np.float32),
        "a.count": np.arange(6, dtype=np.int64).reshape(2, 3),
        "half": np.array([0.5, -1.25, 3.0], dtype=np.float16),
        "mask": np.array([True, False]),
        "scalar": np.array(2.5),
        "empty": np.zeros((0, 3), dtype=np.float32),
        "strided": np.arange(10.0)[::2],
        "big_endian": np.arange(3, dtype=">i4"),
        "torch": torch.randn(2, 2, requires_grad=True),
        "torch_i64": torch.arange(4),
        "bf16": torch.tensor([1.5, -2.0, 0.1], dtype=torch.bfloat16),
    }
    model = FLModel(
        params=params,
        meta={"NUM_STEPS_CURRENT_ROUND": 10, "nested": {"lr": 0.01, "tags": ["a", None, True]}},
        metrics={"accuracy": 0.75},
        params_type="DIFF",
        rc=ReturnCode.EXECUTION_EXCEPTION,
    )
    back = decode_model(encode_model(model))

    assert list(back.params) == list(params)
    for name, value in params.items():
        got = back.params[name]
        if isinstance(value, torch.Tensor):  # a tensor comes back a tensor (FLARE's pytorch exchange)
            assert isinstance(got, torch.Tensor) and got.dtype == value.dtype
            assert torch.equal(got, value.detach()) and not got.requires_grad
            got.add_(0)  # writable: in-place aggregation needs it
            continue
        want = value
        assert isinstance(got, np.ndarray)
        assert got.dtype == want.dtype.newbyteorder("=") and got.shape == want.shape
        np.testing.assert_array_equal(got, want)
        assert got.flags.writeable  # torch.from_numpy and in-place aggregation need this
    assert back.meta == model.meta and back.metrics == model.metrics
    assert (back.params_type, back.rc) == ("DIFF", ReturnCode.EXECUTION_EXCEPTION)


def test_empty_model_round_trips() -> None:
    assert decode_model(encode_model(FLModel())) == FLModel()


def test_plain_value_params_round_trip_beside_arrays_in_order() -> None:
    # scikit-learn jobs send settings and Nones as params: {"n_clusters": 3}, {"count": None}
    model = FLModel(params={"center": np.ones((2, 2)), "count": None, "n_clusters": 3,
                            "kernel": "rbf", "sizes": [1, 2], "opts": {"tol": 0.1}})
    back = decode_model(encode_model(model))
    assert list(back.params) == ["center", "count", "n_clusters", "kernel", "sizes", "opts"]
    assert {k: v for k, v in back.params.items() if k != "center"} == {
        "count": None, "n_clusters": 3, "kernel": "rbf", "sizes": [1, 2], "opts": {"tol": 0.1}}
    np.testing.assert_array_equal(back.params["center"], np.ones((2, 2)))


def test_arrays_in_meta_round_trip_in_the_blob() -> None:
    # SCAFFOLD sends its control terms in the model's meta
    controls = {"fc.weight": np.arange(6, dtype=np.float32).reshape(2, 3), "fc.bias": torch.ones(2)}
    model = FLModel(params={"w": np.zeros(1)}, meta={"scaffold_c_diff": controls, "steps": 3,
                                                      "history": [np.array([1, 2])]})
    frame = encode_model(model)
    assert b"scaffold_c_diff" in frame and len(frame) < 2000  # in the blob, not as JSON numbers
    back = decode_model(frame)
    np.testing.assert_array_equal(back.meta["scaffold_c_diff"]["fc.weight"], controls["fc.weight"])
    np.testing.assert_array_equal(back.meta["scaffold_c_diff"]["fc.bias"], [1.0, 1.0])
    assert isinstance(back.meta["scaffold_c_diff"]["fc.bias"], torch.Tensor)
    assert isinstance(back.meta["scaffold_c_diff"]["fc.weight"], np.ndarray)
    np.testing.assert_array_equal(back.meta["history"][0], [1, 2])
    assert back.meta["steps"] == 3 and list(back.params) == ["w"]


def test_a_tensor_list_naming_no_array_is_refused() -> None:
    frame = encode_model(FLModel(params={"a": torch.ones(2), "b": np.ones(2)}))
    forged = frame.replace(b'"torch":["a"]', b'"torch":["c"]')
    assert forged != frame
    with pytest.raises(ProtocolError, match="'torch'"):
        decode_model(forged)
    # a name that is not a string (a hostile peer's) is the same one clear refusal
    unhashable = frame.replace(b'"torch":["a"]', b'"torch":[[1]]')
    assert unhashable != frame
    with pytest.raises(ProtocolError, match="'torch'"):
        decode_model(unhashable)


def test_a_meta_array_reference_naming_nothing_is_refused() -> None:
    frame = encode_model(FLModel(meta={"c": np.ones(2), "d": np.ones(2)}))
    forged = frame.replace(b'"__meta__/1"}', b'"__meta__/0"}', 1)
    assert forged != frame
    with pytest.raises(ProtocolError, match="meta"):
        decode_model(forged)


def test_a_plain_value_naming_no_param_is_refused() -> None:
    frame = encode_model(FLModel(params={"a": 1}))
    forged = frame.replace(b'"plain":{"a":1}', b'"plain":{"b":1}')
    assert forged != frame
    with pytest.raises(ProtocolError, match="plain"):
        decode_model(forged)


@pytest.mark.parametrize(
    ("model", "named"),
    [
        (FLModel(meta={"lr": np.float32(0.1)}), "meta['lr']"),
        (FLModel(metrics={"val": {"acc": object()}}), "metrics['val']['acc']"),
        (FLModel(meta={"ok": [1, {2: "x"}]}), "meta['ok'][1]"),
        (FLModel(params={"w": [1.0, object()]}), "params['w'][1]"),
        (FLModel(params={"w": {"a": np.float32(1)}}), "params['w']['a']"),
        (FLModel(params={"names": np.array(["a", "b"])}), "params['names']"),
    ],
)
def test_encode_model_names_the_key_it_cannot_send(model: FLModel, named: str) -> None:
    with pytest.raises(TypeError, match=named.replace("[", r"\[").replace("]", r"\]")):
        encode_model(model)


def _frame(magic: bytes, header: bytes, body: bytes = b"", version: int = 1) -> bytes:
    return struct.pack(">4sHI", magic, version, len(header)) + header + body


def _valid_model_bytes() -> bytes:
    return encode_model(FLModel(params={"w": np.arange(4, dtype=np.float32)}, meta={"r": 1}))


def _other_blob() -> bytes:
    whole = encode_model(FLModel(params={"other": np.zeros(2, dtype=np.float32)}))
    return whole[10 + struct.unpack(">I", whole[6:10])[0] :]


GOOD_HEADER = b'{"meta":{},"metrics":{},"rc":"OK","params_type":"FULL","keys":["w"]}'


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "truncated"),
        (b"FLCM\x00", "truncated"),
        (b"NOPE" + _valid_model_bytes()[4:], "bad magic"),
        (_frame(b"FLCM", b"{}", version=9), "unsupported format version 9"),
        (struct.pack(">4sHI", b"FLCM", 1, 2**31) + b"{}", "exceeds"),
        (struct.pack(">4sHI", b"FLCM", 1, 10) + b"{}", "truncated header"),
        (_frame(b"FLCM", b"{not json"), "invalid JSON"),
        (_frame(b"FLCM", b"\xff\xfe\x00"), "invalid JSON"),
        (_frame(b"FLCM", b"[1, 2]"), "expected an object"),
        (_frame(b"FLCM", b'{"meta": 1, "metrics": {}}'), "'meta' and 'metrics'"),
        (_frame(b"FLCM", GOOD_HEADER, b"garbage"), "safetensors"),
        (_frame(b"FLCM", GOOD_HEADER, _other_blob()), "other names"),
        (_frame(b"FLCM", b"[" * 100_000), "invalid JSON"),
    ],
)
def test_decode_model_rejects_malformed_bytes(data: bytes, message: str) -> None:
    with pytest.raises(ProtocolError, match=message):
        decode_model(data)


def test_every_truncation_of_a_model_is_a_protocol_error() -> None:
    data = _valid_model_bytes()
    for cut in range(len(data)):
        with pytest.raises(ProtocolError):
            decode_model(data[:cut])


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=512))
def test_random_bytes_never_crash_the_decoders(data: bytes) -> None:
    for prefix in (b"", b"FLCM\x00\x01", b"FLCR\x00\x01"):
        for decode in (decode_model, decode_records):
            try:
                decode(prefix + data)
            except ProtocolError:
                pass


@settings(max_examples=300, deadline=None)
@given(st.data())
def test_corrupted_models_decode_or_raise_protocol_error(data: st.DataObject) -> None:
    raw = bytearray(_valid_model_bytes())
    for _ in range(data.draw(st.integers(1, 4))):
        raw[data.draw(st.integers(0, len(raw) - 1))] = data.draw(st.integers(0, 255))
    try:
        decode_model(bytes(raw))
    except ProtocolError:
        pass


def test_records_round_trip_and_reject_bad_input() -> None:
    records = [{"tag": "loss", "value": 0.5, "step": i, "type": "SCALAR"} for i in range(3)]
    assert decode_records(encode_records(records)) == records
    with pytest.raises(TypeError, match=r"records\[1\]\['value'\]"):
        encode_records([{"value": 1.0}, {"value": np.float32(1)}])
    for bad in (
        b"",
        b"FLCR",
        b"XXXX\x00\x01[]",
        b"FLCR\x00\x01{}",
        b"FLCR\x00\x01[1]",
        b"FLCR\x00\x01[{]",
    ):
        with pytest.raises(ProtocolError):
            decode_records(bad)


# --------------------------------------------------------------------------- authentication


def test_wrong_token_is_refused_with_unauthenticated(make_server) -> None:
    server = make_server()
    hello = pb.HelloRequest(stream="s1", version=comm.PROTOCOL_VERSION).SerializeToString()
    for site, token in (("site-1", "wrong"), ("site-9", "secret-token-1"), ("../etc", "x")):
        with pytest.raises(grpc.RpcError) as info:
            raw_call(server.address, "Hello", hello, site, token)
        assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED
    with grpc.insecure_channel(server.address) as channel, pytest.raises(grpc.RpcError) as info:
        channel.unary_unary(comm.method_path("Hello"))(hello, timeout=5)
    assert info.value.code() == grpc.StatusCode.UNAUTHENTICATED

    client = CommClient(server.address, "site-1", "wrong")
    with pytest.raises(JobError, match="server refused site-1: bad credentials") as err:
        client.connect(timeout=5)
    assert err.value.site == "site-1"
    client.close()
    assert server.alive_sites() == []


def test_calls_before_hello_are_refused(make_server) -> None:
    server = make_server()
    with pytest.raises(grpc.RpcError) as info:
        raw_call(
            server.address,
            "GetTask",
            pb.GetTaskRequest(wait=0).SerializeToString(),
            "site-1",
            TOKENS["site-1"],
        )
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_events_carry_the_authenticated_site_not_the_payload(make_server) -> None:
    received: list[tuple[str, dict]] = []
    server = make_server(on_events=lambda site, recs: received.extend((site, r) for r in recs))
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        client.send_events([{"site": "site-2", "origin": "site-2", "tag": "x", "value": 1.0}])
        assert client.flush(5) == 0
    assert [site for site, _ in received] == ["site-1"]


def test_a_hostile_payload_is_refused_and_the_server_keeps_working(make_server) -> None:
    server = make_server()
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        for method in ("GetTask", "SubmitResult", "SendEvents", "Hello"):
            with pytest.raises(grpc.RpcError) as info:
                raw_call(server.address, method, b"\x00garbage", "site-1", TOKENS["site-1"])
            assert info.value.code() == grpc.StatusCode.INVALID_ARGUMENT
        bad_result = pb.SubmitResultRequest(task_id="nope", model=b"FLCM junk")
        reply = raw_call(
            server.address, "SubmitResult", bad_result.SerializeToString(), "site-1",
            TOKENS["site-1"],
        )  # fmt: skip
        assert pb.SubmitResultReply.FromString(reply).accepted is False  # unknown task: ignored
        assert client.get_task(timeout=0) is None
    assert server.alive_sites() == []


def test_client_started_before_the_server_connects_when_it_comes_up() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    client = CommClient(f"127.0.0.1:{port}", "site-1", TOKENS["site-1"])
    connected = threading.Thread(target=client.connect, kwargs={"timeout": 10})
    connected.start()
    time.sleep(0.4)
    with CommServer(TOKENS, port=port) as server:
        assert server.wait_for_sites(1, timeout=10) == ["site-1"]
        connected.join(10)
        client.close()


def test_connect_times_out_with_a_clear_error() -> None:
    with socket.create_server(("127.0.0.1", 0)) as probe:
        port = probe.getsockname()[1]
    client = CommClient(f"127.0.0.1:{port}", "site-1", TOKENS["site-1"])
    with pytest.raises(JobError, match=f"could not reach the server at 127.0.0.1:{port}"):
        client.connect(timeout=0.5)
    client.close()


def test_bad_site_names_are_rejected() -> None:
    with pytest.raises(ValueError, match="bad site name"):
        CommServer({"../evil": "t"})
    with pytest.raises(ValueError, match="bad site name"):
        CommClient("127.0.0.1:1", "a b", "t")


# --------------------------------------------------------------------------- task rounds


def test_broadcast_reaches_three_sites_and_gathers_their_results(
    make_server, start_sites, monkeypatch
) -> None:
    encodes: list[int] = []
    real_encode = comm_dispatch_module.encode_model

    def counting_encode(model: FLModel) -> bytes:
        encodes.append(1)
        return real_encode(model)

    monkeypatch.setattr(comm_dispatch_module, "encode_model", counting_encode)
    server = make_server()
    workers = start_sites(server, add_site_number)
    seen: list[str] = []

    results = server.broadcast_and_wait(
        "train",
        FLModel(params={"w": np.zeros(3, dtype=np.float32)}),
        targets=None,
        min_responses=3,
        timeout=10,
        on_result=lambda site, result: seen.append(site),
    )

    assert sorted(results) == ["site-1", "site-2", "site-3"]
    for site, result in results.items():
        number = int(site[-1])
        np.testing.assert_array_equal(result.params["w"], np.full(3, number, dtype=np.float32))
        assert result.meta == {"site": site}
    assert sorted(seen) == sorted(results)
    assert len(encodes) == 1  # encoded once, shared by the three targets
    # The server stored each result before the site's submit_result returned.
    assert wait_until(lambda: [w.accepted for w in workers] == [[True]] * 3)

    one = server.send_and_wait("validate", FLModel(params={"w": np.ones(1)}), "site-2", timeout=5)
    np.testing.assert_array_equal(one.params["w"], [3.0])


def _slow_site(slow: str, delay: float) -> Callable[[str, Task], FLModel]:
    def answer(site: str, task: Task) -> FLModel:
        if site == slow:
            worker = threading.current_thread()
            assert isinstance(worker, SiteWorker)
            worker.stop.wait(delay)  # cut short when the test tears down
        return add_site_number(site, task)

    return answer


def _silent_site(silent: str) -> Callable[[str, Task], FLModel | None]:
    """Every site answers but ``silent``, which takes its task and never answers."""

    def answer(site: str, task: Task) -> FLModel | None:
        return None if site == silent else add_site_number(site, task)

    return answer


def test_min_responses_returns_without_waiting_for_the_slow_site(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, _silent_site("site-3"))
    # Returns at all only because 2 results are enough: site-3 never answers.
    results = server.broadcast_and_wait("train", FLModel(params={"w": np.zeros(1)}), None, 2)
    assert sorted(results) == ["site-1", "site-2"]


def test_a_result_after_the_task_closed_is_ignored(make_server, start_sites) -> None:
    server = make_server()
    (worker,) = start_sites(server, _slow_site("site-1", 0.6), n=1)
    with pytest.raises(JobError, match="site-1: no result for task 'train' within 0.3 s"):
        server.send_and_wait("train", FLModel(params={"w": np.zeros(1)}), "site-1", timeout=0.3)
    # The late answer is refused politely: the site carries on.
    assert wait_until(lambda: worker.accepted == [False])
    result = server.send_and_wait("train", FLModel(params={"w": np.zeros(1)}), "site-1", timeout=5)
    assert result.params["w"][0] == 1.0


def test_wait_time_after_min_received_lets_a_late_site_in(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, _slow_site("site-3", 0.5))
    # An hour's grace: the call returns only because it ends as soon as all answered.
    results = server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(1)}), None, 2, wait_time_after_min_received=3600
    )
    assert sorted(results) == ["site-1", "site-2", "site-3"]


def test_wait_time_after_min_received_is_bounded(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, _silent_site("site-3"))
    # Returns at all only because the grace time ends: site-3 never answers. That a late
    # site is let in during it: test_wait_time_after_min_received_lets_a_late_site_in.
    results = server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(1)}), None, 2, wait_time_after_min_received=0.3
    )
    assert sorted(results) == ["site-1", "site-2"]


def test_timeout_and_abort_return_what_arrived(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, _silent_site("site-3"))
    model = FLModel(params={"w": np.zeros(1)})
    # Both return only because of the timeout and the abort: site-3 never answers.
    results = server.broadcast_and_wait("train", model, None, 3, timeout=0.5)
    assert sorted(results) == ["site-1", "site-2"]

    abort = Signal()
    threading.Timer(0.3, abort.trigger, args=("user stop",)).start()
    results = server.broadcast_and_wait("train", model, ["site-3"], 1, abort=abort)
    assert results == {}


def test_a_site_that_stops_heartbeating_is_lost_but_the_round_completes(
    make_server, start_sites
) -> None:
    lost: list[str] = []
    server = make_server(heartbeat_timeout=1.0, on_site_lost=lost.append)

    def hang_on_site_3(site: str, task: Task) -> FLModel | None:
        return None if site == "site-3" else add_site_number(site, task)

    workers = start_sites(server, hang_on_site_3, n=2)
    hung = SiteWorker(server.address, "site-3", hang_on_site_3, heartbeat_interval=60)
    hung.start()
    server.wait_for_sites(3, timeout=10)
    try:
        # Returns before the hour's grace ends only because, once site-3 is lost,
        # nobody else can still answer.
        results = server.broadcast_and_wait(
            "train", FLModel(params={"w": np.zeros(1)}), None, 2,
            wait_time_after_min_received=3600,
        )  # fmt: skip
        assert sorted(results) == ["site-1", "site-2"]
        assert wait_until(lambda: lost == ["site-3"])  # told from the monitor thread
        assert server.alive_sites() == ["site-1", "site-2"]
        assert all(w.error is None for w in workers)
    finally:
        hung.release.set()
        hung.join(10)


def test_losing_a_site_below_min_responses_raises_naming_it(make_server, start_sites) -> None:
    server = make_server(heartbeat_timeout=1.0)

    def hang_on_site_3(site: str, task: Task) -> FLModel | None:
        return None if site == "site-3" else add_site_number(site, task)

    start_sites(server, hang_on_site_3, n=2)
    hung = SiteWorker(server.address, "site-3", hang_on_site_3, heartbeat_interval=60)
    hung.start()
    server.wait_for_sites(3, timeout=10)
    try:
        with pytest.raises(JobError, match="site-3: no call for 1 s") as err:
            server.broadcast_and_wait("train", FLModel(params={"w": np.zeros(1)}), None, 3)
        assert err.value.site == "site-3"
        assert "2 received" in str(err.value)
    finally:
        hung.release.set()
        hung.join(10)


def _mark_lost_after_two_results(server: CommServer, site: str, reason: str) -> Callable[..., None]:
    """An on_result callback: once two results are in, ``site``'s process "died"."""
    got: list[str] = []

    def on_result(name: str, result: FLModel) -> None:
        got.append(name)
        if len(got) == 2:
            assert server.mark_lost([site], reason) == [site]

    return on_result


def test_a_site_whose_process_died_fails_the_task_at_once_with_the_reason(
    make_server, start_sites
) -> None:
    # An hour's heartbeat timeout: the task fails only because it is told the process died.
    server = make_server(heartbeat_timeout=3600)
    start_sites(server, _silent_site("site-3"))
    with pytest.raises(JobError, match=r"\(2 received\) because these sites are lost: "
                       r"site-3: its process died \(killed by SIGKILL\)") as err:
        server.broadcast_and_wait(
            "train", FLModel(params={"w": np.zeros(1)}), None, 3,
            on_result=_mark_lost_after_two_results(server, "site-3", "its process died (killed by SIGKILL)"),
        )  # fmt: skip
    assert err.value.site == "site-3"
    # Its late calls (its link still heartbeats here) do not make it alive again.
    heartbeat = pb.HeartbeatRequest().SerializeToString()
    raw_call(server.address, "Heartbeat", heartbeat, "site-3", TOKENS["site-3"])
    assert server.alive_sites() == ["site-1", "site-2"]


def test_a_site_whose_process_died_ends_the_round_with_the_others(make_server, start_sites) -> None:
    server = make_server(heartbeat_timeout=3600)
    start_sites(server, _silent_site("site-3"))
    # Returns before the hour's grace ends only because site-3 can no longer answer.
    results = server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(1)}), None, 2, wait_time_after_min_received=3600,
        on_result=_mark_lost_after_two_results(server, "site-3", "its process died (exited with code 1)"),
    )  # fmt: skip
    assert sorted(results) == ["site-1", "site-2"]


def test_a_site_that_said_bye_or_never_existed_is_not_marked_lost(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, add_site_number, n=2)
    assert server.end_run(timeout=10) == []  # both said Bye
    assert server.mark_lost(["site-1", "site-2", "site-9"], "its process died (killed by SIGKILL)") == []


def test_wait_for_sites_stops_waiting_for_a_site_whose_process_died(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, add_site_number, n=2)
    assert server.mark_lost(["site-3", "site-4"], "its process died (exited with code 1)") == ["site-3", "site-4"]
    # Returns at all only because sites 3 and 4 will not come: an hour's wait otherwise.
    assert server.wait_for_sites(4, timeout=3600) == ["site-1", "site-2"]


def test_a_long_task_is_kept_alive_by_the_heartbeat(make_server, start_sites) -> None:
    server = make_server(heartbeat_timeout=0.6)
    start_sites(server, _slow_site("site-1", 1.0), n=1, heartbeat_interval=0.1)
    result = server.send_and_wait("train", FLModel(params={"w": np.zeros(1)}), "site-1", timeout=10)
    np.testing.assert_array_equal(result.params["w"], [1.0])


def test_min_responses_above_the_target_count_is_an_error(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, add_site_number, n=2)
    with pytest.raises(JobError, match="needs 3 results but has only 2 target"):
        server.broadcast_and_wait("train", FLModel(), None, 3)


def test_end_run_makes_get_task_return_end(make_server, start_sites) -> None:
    server = make_server()
    workers = start_sites(server, add_site_number)
    assert server.end_run(timeout=10) == []
    for worker in workers:
        worker.join(10)
        assert worker.got_end and worker.error is None
    assert server.alive_sites() == []


def test_fifty_megabyte_models_travel_both_ways(make_server, start_sites) -> None:
    server = make_server()
    start_sites(server, lambda site, task: FLModel(params=task.data.params), n=1)
    rng = np.random.default_rng(1)
    params = {f"layer{i}": rng.standard_normal(1_310_720, dtype=np.float32) for i in range(10)}
    assert sum(a.nbytes for a in params.values()) >= 50 * 1024 * 1024
    result = server.send_and_wait("train", FLModel(params=params), "site-1", timeout=20)
    for name, value in params.items():
        np.testing.assert_array_equal(result.params[name], value)


def test_a_resent_result_counts_once(make_server) -> None:
    server = make_server()
    box: dict[str, dict[str, FLModel]] = {}
    with (
        CommClient(server.address, "site-1", TOKENS["site-1"]) as one,
        CommClient(server.address, "site-2", TOKENS["site-2"]) as two,
    ):
        model = FLModel(params={"w": np.zeros(1)})
        round_ = threading.Thread(
            target=lambda: box.update(r=server.broadcast_and_wait("train", model, None, 2))
        )
        round_.start()
        task = one.get_task(timeout=5)
        assert isinstance(task, Task)
        assert one.submit_result(task, FLModel(meta={"copy": 1}))
        assert one.submit_result(task, FLModel(meta={"copy": 2}))  # a retry: accepted, not stored
        other = two.get_task(timeout=5)
        assert isinstance(other, Task) and other.task_id == task.task_id
        assert two.submit_result(other, FLModel())
        round_.join(5)
    assert box["r"]["site-1"].meta == {"copy": 1}


def test_a_result_carries_the_records_and_brings_back_the_next_task(make_server, caplog) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    box: dict[str, dict[str, FLModel]] = {}

    def two_rounds() -> None:
        for name, w in (("one", 0.0), ("two", 1.0)):
            box[name] = server.broadcast_and_wait("train", FLModel(params={"w": np.full(1, w)}),
                                                  ["site-1"], 1)

    caplog.set_level("INFO", logger="flconfig.transport.server")
    # A linger far longer than the test: the event stream itself sends nothing meanwhile.
    with CommClient(server.address, "site-1", TOKENS["site-1"], batch_linger=60) as client:
        rounds = threading.Thread(target=two_rounds)
        rounds.start()
        first = client.get_task(timeout=5)
        assert isinstance(first, Task)
        client.send_events([{"step": i} for i in range(3)])
        assert client.submit_result(first, FLModel(meta={"round": 1}), wait_next=10)
        # Written before the reply, which acknowledged them.
        assert [r["step"] for r in collector.by_site["site-1"]] == [0, 1, 2]
        assert client.unacked == 0
        second = client.get_task(timeout=5)  # it came with the reply: no call
        assert isinstance(second, Task) and second.data.params["w"][0] == 1.0
        client.send_events([{"step": 3}])
        assert client.submit_result(second, FLModel(meta={"round": 2}))
        rounds.join(5)
    server.stop()
    assert [r["seq"] for r in collector.by_site["site-1"]] == [1, 2, 3, 4]
    assert box["one"]["site-1"].meta == {"round": 1} and box["two"]["site-1"].meta == {"round": 2}
    served = next(r.getMessage() for r in caplog.records if "calls served" in r.getMessage())
    assert "GetTask 1," in served and "SubmitResult 2" in served and "SendEvents" not in served


def test_only_a_small_result_waits_for_the_next_task(make_server) -> None:
    # gRPC holds a request until its call ends: a large result is answered at once (the site
    # then asks for its next task apart), a small one may wait; a result that does not ask
    # to wait (an older site) is answered at once, without ``next``.
    server = make_server()
    with CommClient(server.address, "site-1", TOKENS["site-1"]):
        def submit(model: bytes, wait: float) -> pb.SubmitResultReply:
            request = pb.SubmitResultRequest(task_id="nope", model=model, wait=wait)
            return pb.SubmitResultReply.FromString(raw_call(
                server.address, "SubmitResult", request.SerializeToString(), "site-1",
                TOKENS["site-1"]))

        small = submit(b"FLCM junk", 0.2)
        assert small.HasField("next") and small.next.kind == pb.TaskReply.NONE
        assert not submit(b"FLCM junk", 0).HasField("next")
        large = submit(b"x" * (comm.WAIT_WITH_RESULT_BYTES + 1), 3)
        assert not large.HasField("next") and large.accepted is False


def test_wait_for_sites_returns_who_connected_when_time_runs_out(
    make_server, start_sites, caplog
) -> None:
    server = make_server()
    start_sites(server, add_site_number, n=2)
    assert server.wait_for_sites(3, timeout=0.3) == ["site-1", "site-2"]
    assert "none more for 0.3 s" in caplog.text and "not connected: site-3, site-4" in caplog.text


# --------------------------------------------------------------------------- events


def test_twenty_thousand_events_arrive_once_and_in_order(make_server) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        for chunk in range(40):
            client.send_events(
                [{"tag": "loss", "value": 0.1, "step": chunk * 500 + i} for i in range(500)]
            )
        assert client.flush(20) == 0
    got = collector.by_site["site-1"]
    assert [r["seq"] for r in got] == list(range(1, 20_001))
    assert [r["step"] for r in got] == list(range(20_000))


def test_send_events_rejects_unsendable_records_without_queueing_any(make_server) -> None:
    server = make_server()
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        with pytest.raises(TypeError, match=r"record\['value'\]"):
            client.send_events([{"value": 1.0}, {"value": torch.tensor(1.0)}])
        assert client.unacked == 0


def test_resent_and_out_of_order_batches_are_not_delivered_twice(make_server) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    site, token = "site-1", TOKENS["site-1"]
    hello = pb.HelloRequest(stream="s1", version=comm.PROTOCOL_VERSION).SerializeToString()
    raw_call(server.address, "Hello", hello, site, token)

    def send(seqs: range) -> int:
        reply = raw_call(server.address, "SendEvents", records_batch("s1", seqs), site, token)
        return pb.SendEventsReply.FromString(reply).ack

    assert send(range(1, 4)) == 3
    assert send(range(1, 4)) == 3  # a retry of the same batch: dropped
    assert send(range(2, 6)) == 5  # overlapping: only 4 and 5 are new
    assert send(range(8, 10)) == 5  # a gap: refused, the ack says resend from 6
    assert send(range(6, 10)) == 9
    assert [r["seq"] for r in collector.by_site[site]] == list(range(1, 10))

    with pytest.raises(grpc.RpcError) as info:  # an event stream the site no longer owns
        raw_call(server.address, "SendEvents", records_batch("old", range(10, 11)), site, token)
    assert info.value.code() == grpc.StatusCode.FAILED_PRECONDITION


def test_a_restarted_client_starts_a_new_event_sequence(make_server) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    for run in range(2):
        with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
            client.send_events([{"run": run, "i": i} for i in range(5)])
            assert client.flush(5) == 0
    got = collector.by_site["site-1"]
    assert [(r["run"], r["seq"]) for r in got] == [(0, s) for s in range(1, 6)] + [
        (1, s) for s in range(1, 6)
    ]


def test_dropped_connections_lose_and_duplicate_nothing(make_server) -> None:
    proxy_box: list[FlakyProxy] = []
    batches = 0

    def cut_after_delivery(records: list[dict]) -> None:
        # Cut the connection after the server delivered a batch but before the
        # client sees the ack: the client must resend, the server must drop it.
        nonlocal batches
        batches += 1
        if batches in (2, 5, 9):
            proxy_box[0].drop()

    collector = Collector(hook=cut_after_delivery)
    server = make_server(on_events=collector)
    proxy = FlakyProxy(server.port)
    proxy_box.append(proxy)
    client = CommClient(f"127.0.0.1:{proxy.port}", "site-1", TOKENS["site-1"], batch_max=1000)
    try:
        client.connect(timeout=10)
        for chunk in range(20):
            client.send_events([{"i": chunk * 1000 + i} for i in range(1000)])
            if chunk == 12:
                client.reconnect()  # close the channel and open a new one mid-stream
            if chunk % 4 == 3:
                proxy.drop()
            time.sleep(0.01)
        assert client.flush(20) == 0
    finally:
        client.close(timeout=5)
        proxy.close()
    got = collector.by_site["site-1"]
    assert [r["i"] for r in got] == list(range(20_000))
    assert [r["seq"] for r in got] == list(range(1, 20_001))
    assert proxy.drops >= 6


def test_events_in_flight_at_end_run_are_delivered(make_server) -> None:
    collector = Collector(hook=lambda records: time.sleep(0.01))  # a slowish receiver
    server = make_server(on_events=collector)

    def site_loop(client: CommClient) -> None:
        client.connect(timeout=10)
        step = 0
        while client.get_task(timeout=0.05) is not END:
            client.send_events([{"step": step + i} for i in range(200)])
            step += 200
        client.send_events([{"step": -1, "last": True}])
        client.close(timeout=10)

    client = CommClient(server.address, "site-1", TOKENS["site-1"], batch_linger=0.2)
    thread = threading.Thread(target=site_loop, args=(client,))
    thread.start()
    server.wait_for_sites(1, timeout=10)
    time.sleep(0.3)
    assert server.end_run(timeout=15) == []
    thread.join(10)
    got = collector.by_site["site-1"]
    assert got[-1].get("last") is True
    assert [r["seq"] for r in got] == list(range(1, len(got) + 1))


def test_record_throughput_is_reported(make_server, capsys) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    n = 50_000
    records = [{"tag": "train/loss", "value": 0.25, "step": i, "type": "SCALAR"} for i in range(n)]
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        start = time.perf_counter()
        for i in range(0, n, 1000):
            client.send_events(records[i : i + 1000])
        assert client.flush(30) == 0
        elapsed = time.perf_counter() - start
    assert len(collector.by_site["site-1"]) == n
    with capsys.disabled():
        print(f"\n[comm] {n} records in {elapsed:.2f} s = {n / elapsed:,.0f} records/s")


# --------------------------------------------------------------------------- back-pressure


class OutboxSampler(threading.Thread):
    """Samples ``client.unacked`` every millisecond until stopped; keeps the largest."""

    def __init__(self, client: CommClient) -> None:
        super().__init__(daemon=True)
        self.client = client
        self.largest = 0
        self.samples = 0
        self.done = threading.Event()

    def run(self) -> None:
        while not self.done.is_set():
            self.largest = max(self.largest, self.client.unacked)
            self.samples += 1
            time.sleep(0.001)

    def stop(self) -> None:
        self.done.set()
        self.join(5)


@pytest.mark.parametrize(
    ("bound", "calls", "record_size"),
    [
        # calls of 1..30 records, and one of 600 that waits for a dozen batches
        ({"max_outbox_records": 50}, [i % 30 + 1 for i in range(100)] + [600, 5], 0),
        # 1 MiB records against a 4 MiB bound: at most 3 wait at once
        ({"max_outbox_bytes": 4 * 1024 * 1024}, [1, 3, 2, 5, 1, 4, 2, 2], 1024 * 1024),
    ],
    ids=["records", "bytes"],
)
def test_a_slow_server_makes_send_events_wait_and_loses_nothing(
    make_server, bound: dict[str, int], calls: list[int], record_size: int
) -> None:
    collector = Collector(hook=lambda records: time.sleep(0.02))  # 20 ms per batch
    server = make_server(on_events=collector)
    # retry_timeout is below the longest wait: waiting on a server that keeps
    # acknowledging must not count as the server being unreachable.
    client = CommClient(server.address, "site-1", TOKENS["site-1"], retry_timeout=0.15, **bound)
    most = bound.get("max_outbox_records") or bound["max_outbox_bytes"] // (record_size + 40)
    padding = "x" * record_size
    sampler = OutboxSampler(client)
    durations: list[float] = []
    try:
        client.connect(timeout=10)
        sampler.start()
        step = 0
        for n in calls:
            records = [{"step": step + i, "pad": padding} for i in range(n)]
            began = time.perf_counter()
            client.send_events(records)
            durations.append(time.perf_counter() - began)
            step += n
        assert client.flush(20) == 0
    finally:
        sampler.stop()
        client.close(timeout=5)
    got = collector.by_site["site-1"]
    assert [r["step"] for r in got] == list(range(step))
    assert [r["seq"] for r in got] == list(range(1, step + 1))
    assert 0 < sampler.largest <= most
    assert sampler.samples > 20
    # A call that found room returns in microseconds; one that waited, for a
    # batch (20 ms) to be acknowledged.
    assert sum(d >= 0.01 for d in durations) >= 3
    if bound.get("max_outbox_records"):
        assert max(durations) > client.retry_timeout


def test_an_unreachable_server_ends_the_wait_with_an_error_after_retry_timeout(
    make_server,
) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    client = CommClient(
        server.address, "site-1", TOKENS["site-1"], retry_timeout=1.0, max_outbox_records=10
    )
    try:
        client.connect(timeout=10)
        client.send_events([{"i": i} for i in range(5)])
        assert client.flush(5) == 0
        server.stop(grace=0)
        with pytest.raises(JobError) as err:
            client.send_events([{"i": i} for i in range(5, 30)])
        assert err.value.site == "site-1"
        message = str(err.value)
        assert f"server at {server.address} acknowledged no events" in message
        assert "retry_timeout=1" in message
        assert "15 of 25 event records of this call were not queued" in message
        assert "10 queued records are not acknowledged" in message
        assert client.unacked == 10
    finally:
        left = client.close(timeout=0.2)
    assert left == 25  # 10 queued but unacknowledged + 15 never queued: none silently lost
    assert [r["i"] for r in collector.by_site["site-1"]] == list(range(5))


def test_a_call_that_gave_up_leaves_no_gap_in_the_sequence(make_server) -> None:
    gate = threading.Event()
    collector = Collector(hook=lambda records: gate.wait(10))  # answers nothing until opened
    server = make_server(on_events=collector)
    client = CommClient(
        server.address, "site-1", TOKENS["site-1"], retry_timeout=0.5, max_outbox_records=4
    )
    try:
        client.connect(timeout=10)
        with pytest.raises(JobError, match="2 of 6 event records of this call were not queued"):
            client.send_events([{"i": i} for i in range(6)])
        gate.set()
        client.send_events([{"i": i} for i in range(6, 9)])
        assert client.flush(10) == 0
    finally:
        client.close(timeout=5)
    got = collector.by_site["site-1"]
    assert [r["i"] for r in got] == [0, 1, 2, 3, 6, 7, 8]
    assert [r["seq"] for r in got] == list(range(1, 8))


def test_a_full_outbox_before_connect_is_an_error_not_a_hang() -> None:
    client = CommClient("127.0.0.1:1", "site-1", TOKENS["site-1"], max_outbox_records=3)
    client.send_events([{"i": 0}, {"i": 1}])
    with pytest.raises(JobError, match="1 of 2 event records of this call were not queued"):
        client.send_events([{"i": 2}, {"i": 3}])
    assert client.unacked == 3
    assert client.close() == 4


def test_outbox_bounds_are_checked() -> None:
    with pytest.raises(ValueError, match="max_outbox_records"):
        CommClient("127.0.0.1:1", "site-1", TOKENS["site-1"], max_outbox_records=0)
    with pytest.raises(ValueError, match="max_outbox_bytes"):
        CommClient("127.0.0.1:1", "site-1", TOKENS["site-1"], max_outbox_bytes=1000)


def test_records_go_at_once_after_a_quiet_spell_and_in_batches_while_they_keep_coming(
    make_server,
) -> None:
    collector = Collector()
    server = make_server(on_events=collector)
    with CommClient(server.address, "site-1", TOKENS["site-1"], batch_linger=2.0) as client:
        client.send_events([{"i": 0}])
        assert wait_until(lambda: len(collector.by_site.get("site-1", [])) == 1, timeout=1.0)
        client.send_events([{"i": 1}])
        client.send_events([{"i": 2}])
        time.sleep(0.3)
        assert len(collector.by_site["site-1"]) == 1  # waiting for company, up to 2 s
        assert client.flush(5) == 0  # flush does not wait for the interval
    assert [r["i"] for r in collector.by_site["site-1"]] == [0, 1, 2]


def test_close_ends_a_waiting_send_events_and_counts_what_it_left(make_server) -> None:
    gate = threading.Event()
    server = make_server(on_events=lambda site, records: gate.wait(10))
    client = CommClient(server.address, "site-1", TOKENS["site-1"], max_outbox_records=4)
    errors: list[BaseException] = []

    def produce() -> None:
        try:
            client.send_events([{"i": i} for i in range(10)])
        except JobError as exc:
            errors.append(exc)

    try:
        client.connect(timeout=10)
        producer = threading.Thread(target=produce)
        producer.start()
        assert wait_until(lambda: client.unacked == 4)
        assert client.close(timeout=0.3) == 10  # 4 sent but unacknowledged, 6 never queued
        producer.join(5)
    finally:
        gate.set()
    assert len(errors) == 1
    assert "client was closed; 6 of 10 event records of this call were not queued" in str(errors[0])


# --------------------------------------------------------------------------- many sites in one process


def test_sites_sharing_a_channel_keep_their_own_identity(make_server) -> None:
    received: list[tuple[str, float]] = []
    server = make_server(on_events=lambda site, recs: received.extend((site, r["value"]) for r in recs))
    clients = [CommClient(server.address, site, TOKENS[site], share_channel=True)
               for site in ("site-1", "site-2", "site-3")]
    for client in clients:
        client.connect(timeout=10)
    # One channel for the three: the connection is shared, the credentials are not.
    assert len({id(client._channel) for client in clients}) == 1
    for number, client in enumerate(clients, start=1):
        client.send_events([{"tag": "x", "value": float(number)}])
        assert client.flush(5) == 0
    assert sorted(received) == [("site-1", 1.0), ("site-2", 2.0), ("site-3", 3.0)]
    # A site that leaves does not take the shared channel with it.
    assert clients[0].close(timeout=5) == 0
    clients[1].send_events([{"tag": "x", "value": 20.0}])
    assert clients[1].flush(5) == 0
    assert ("site-2", 20.0) in received
    assert sorted(server.alive_sites()) == ["site-2", "site-3"]
    for client in clients[1:]:
        client.close(timeout=5)


def test_a_get_task_waiting_in_its_long_poll_receives_the_task(make_server) -> None:
    server = make_server(heartbeat_timeout=600)  # a long poll may last up to 20 s
    with CommClient(server.address, "site-1", TOKENS["site-1"]) as client:
        got: list[object] = []
        poller = threading.Thread(target=lambda: got.append(client.get_task()), daemon=True)
        poller.start()
        assert wait_until(lambda: server._state.sites["site-1"].active_calls > 0)
        gathered: dict[str, FLModel] = {}
        sender = threading.Thread(
            target=lambda: gathered.update(server.broadcast_and_wait(
                "train", FLModel(params={"w": np.zeros(2)}), ["site-1"], 0, timeout=30)),
            daemon=True)
        sender.start()
        poller.join(10)  # inside the 20 s long poll: only the task itself can have woken it
        assert not poller.is_alive()
        assert isinstance(got[0], Task) and got[0].name == "train"
        client.submit_result(got[0], FLModel(params={"w": np.ones(2)}))
        sender.join(10)
        assert list(gathered) == ["site-1"]


def test_a_sites_lines_from_the_training_threads_go_to_its_own_log(tmp_path) -> None:
    import asyncio
    import logging

    from flconfig.runtime.logs import _router, add_log_file
    from flconfig.runtime.site_process import ProcessJob

    files = [add_log_file(tmp_path / site / "log.txt", site=site) for site in ("site-1", "site-2")]
    try:
        from flconfig.runtime.planner import plan_run
        from flconfig.validate.loader import load_job

        example = REPO / "configs" / "tensorboard-streaming"
        plan = plan_run(load_job(example), ["site-1"],
                        tmp_path / "ws", "run-1")
        job = ProcessJob(plan, slots=1)
        say = logging.getLogger("learner").info
        asyncio.run(job.call("site-2", say, "trained on site-2's data"))
        asyncio.run(job.call("site-1", say, "trained on site-1's data"))
        job.close()
        for handler in files:
            handler.flush()
        assert "trained on site-1's data" in (tmp_path / "site-1" / "log.txt").read_text()
        assert "site-2" not in (tmp_path / "site-1" / "log.txt").read_text()
        assert "trained on site-2's data" in (tmp_path / "site-2" / "log.txt").read_text()
    finally:  # this process's other tests keep their log routing
        router = _router()
        for site, handler in zip(("site-1", "site-2"), files, strict=True):
            router.by_site[site].remove(handler)
            handler.close()


# --------------------------------------------------------------------------- sites as coroutines


def test_three_hundred_sites_on_one_event_loop_need_no_thread_of_their_own() -> None:
    """A worker's sites are coroutines: 300 links on one loop, all connected and polling,
    each with its own identity, and not one thread started for any of them."""
    import asyncio

    from flconfig.transport.link import END as LINK_END
    from flconfig.transport.link import SiteLink

    names = [f"site-{i}" for i in range(1, 301)]
    tokens = {name: f"token-of-{name}" for name in names}
    received: dict[str, list[float]] = {}
    server = CommServer(tokens, on_events=lambda site, recs: received.setdefault(site, []).extend(
        r["value"] for r in recs)).start()
    threads_while_polling: list[list[str]] = []

    async def site(link: SiteLink) -> float:
        await link.connect(timeout=30)
        task = await link.get_task()
        assert isinstance(task, Task)
        number = float(link.site.removeprefix("site-"))
        link.send_events([{"tag": "x", "value": number}])
        await link.submit_result(task, FLModel(params={"w": task.data.params["w"] + number}))
        assert await link.get_task() is LINK_END
        return await link.close(timeout=10)

    async def sites() -> list[float]:
        links = [SiteLink(server.address, name, tokens[name], share_channel=True) for name in names]
        running = [asyncio.create_task(site(link)) for link in links]
        while len(server.alive_sites()) < len(names):
            await asyncio.sleep(0.05)
        threads_while_polling.append([t.name for t in threading.enumerate()
                                      if not t.name.startswith("flconfig-comm") and t not in before])
        return await asyncio.gather(*running)

    # Threads other tests of this process left running (a W&B manager, an accept loop) are
    # not this test's: only the threads that appear while the sites run count.
    before = set(threading.enumerate())
    try:
        runner = threading.Thread(target=lambda: left.extend(asyncio.run(sites())), name="loop")
        left: list[float] = []
        runner.start()
        server.wait_for_sites(len(names), timeout=60)
        results = server.broadcast_and_wait("train", FLModel(params={"w": np.zeros(1)}), None,
                                            len(names), timeout=120)
        server.end_run(timeout=60)
        runner.join(60)
    finally:
        server.stop(grace=0.5)
    assert left == [0] * len(names)  # every record delivered
    assert {site: float(r.params["w"][0]) for site, r in results.items()} == {
        name: float(name.removeprefix("site-")) for name in names}
    assert received == {name: [float(name.removeprefix("site-"))] for name in names}
    # Besides the server's handler threads: the loop's and gRPC's few, never one per site.
    assert len(threads_while_polling[0]) < 10, threads_while_polling[0]
