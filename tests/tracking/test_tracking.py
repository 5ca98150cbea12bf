"""Experiment tracking: what a learner logs on a client is what TensorBoard shows on the server.

Real parts only: SiteContexts with the components a config would build, the
fed sink the launcher wires (``event_to_records`` → ``records_to_events``),
and the event files read back with tensorboard's own reader.
"""

from __future__ import annotations

import io
import json
import logging
import os
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from PIL import Image
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
from tensorboard.compat.tensorflow_stub.pywrap_tensorflow import masked_crc32c

from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext
from flconfig.runtime.fed_events import event_to_records, records_to_events
from flconfig.tracking.convert import ConvertToFedEvent
from flconfig.tracking.crc32c import masked_crc32c_many
from flconfig.tracking.receivers import AnalyticsReceiver
from flconfig.tracking.receivers.jsonl import JsonLinesReceiver
from flconfig.tracking.receivers.mlflow import MLflowReceiver
from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver
from flconfig.tracking.records import RECORD_KEYS, AnalyticsBatch
from flconfig.tracking.senders import TBWriter
from flconfig.types import Event, EventType

pytestmark = pytest.mark.timeout(60)

START = (EventType.ABOUT_TO_START_RUN, EventType.START_RUN)
END = (EventType.ABOUT_TO_END_RUN, EventType.END_RUN)
SIZES = {"scalars": 0, "tensors": 0, "images": 0, "histograms": 0}


# --------------------------------------------------------------------------- helpers


def fire(ctx: SiteContext, *event_types: str) -> None:
    for event_type in event_types:
        ctx.fire_event(event_type)


class Job:
    """A server with a receiver, and clients whose fed events reach it as records."""

    def __init__(self, workspace: Path, receivers: list[AnalyticsReceiver] | None = None) -> None:
        self.workspace = workspace
        self.receivers = receivers if receivers is not None else [TBAnalyticsReceiver()]
        self.server = SiteContext(
            "server", "job", workspace, {f"r{i}": r for i, r in enumerate(self.receivers)},
            self.receivers, role="server",
        )  # fmt: skip
        fire(self.server, *START)
        self.clients: dict[str, tuple[SiteContext, TBWriter]] = {}

    def sink(self, site: str) -> Callable[[Event], None]:
        def fed_sink(event: Event) -> None:
            for event_type, data in records_to_events(event_to_records(event)):
                self.server.deliver_fed_event(event_type, data, origin=site)

        return fed_sink

    def client(self, site: str, extra: list[Any] | None = None, writer_class: type = TBWriter,
               **writer_args: Any) -> TBWriter:
        writer = writer_class(**writer_args)
        converter = ConvertToFedEvent(["analytix_log_stats"])
        handlers = [writer, converter, *(extra or [])]
        ctx = SiteContext(
            site, "job", self.workspace, {"writer": writer, "converter": converter}, handlers,
            fed_sink=self.sink(site),
        )  # fmt: skip
        fire(ctx, *START)
        self.clients[site] = (ctx, writer)
        return writer

    def end(self) -> None:
        for ctx, _ in self.clients.values():
            fire(ctx, *END)
        fire(self.server, *END)

    @property
    def tb_root(self) -> Path:
        return self.workspace / "server" / "job" / "tb_events"


def accumulator(folder: Path) -> EventAccumulator:
    acc = EventAccumulator(str(folder), size_guidance=SIZES)
    acc.Reload()
    return acc


def scalars(folder: Path, tag: str) -> list[tuple[int, float]]:
    return [(e.step, e.value) for e in accumulator(folder).Scalars(tag)]


@pytest.fixture
def job(tmp_path: Path) -> Iterator[Job]:
    job = Job(tmp_path)
    yield job
    for _ctx, writer in job.clients.values():
        writer.close()


# --------------------------------------------------------------------------- the streaming path


def test_every_scalar_reaches_the_server_per_site_in_order(job: Job) -> None:
    sent = {
        "site-1": [(i, i * 0.5) for i in range(3000)],
        "site-2": [(i, -i - 1.0) for i in range(1500)],
    }
    writers = {site: job.client(site) for site in sent}
    for site, points in sent.items():
        for step, value in points:
            writers[site].add_scalar("train_loss", value, global_step=step)
    job.end()

    assert sorted(p.name for p in job.tb_root.iterdir()) == ["site-1", "site-2"]
    for site, points in sent.items():
        acc = accumulator(job.tb_root / site)
        assert acc.Tags()["scalars"] == ["train_loss"]
        assert [(e.step, e.value) for e in acc.Scalars("train_loss")] == points
    # The learner's wall time travels with the record.
    first = accumulator(job.tb_root / "site-1").Scalars("train_loss")[0]
    assert abs(first.wall_time - time.time()) < 60


def test_numbers_numpy_scalars_and_tensors_are_accepted(job: Job) -> None:
    writer = job.client("site-1")
    writer.add_scalar("v", 1)
    writer.add_scalar("v", 2.5, 1)
    writer.add_scalar("v", np.float32(3.5), np.int64(2))
    writer.add_scalar("v", torch.tensor(4.5), torch.tensor(3))
    writer.add_scalar("v", torch.tensor([5.5]), 4)
    writer.add_scalar("v", True, 5)
    job.end()
    assert scalars(job.tb_root / "site-1", "v") == [
        (0, 1.0), (1, 2.5), (2, 3.5), (3, 4.5), (4, 5.5), (5, 1.0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("call", "error", "words"),
    [
        (lambda w: w.add_scalar("loss", "0.5", 1), TypeError, ["'loss'", "str"]),
        (lambda w: w.add_scalar("loss", [0.5], 1), TypeError, ["'loss'", "list"]),
        (lambda w: w.add_scalar("loss", torch.ones(3), 1), TypeError, ["'loss'", "(3,)"]),
        (lambda w: w.add_scalar("loss", None, 1), TypeError, ["'loss'", "NoneType"]),
        (lambda w: w.add_scalar("loss", 0.5, 1.5), TypeError, ["global_step", "'loss'"]),
        (lambda w: w.add_scalar("loss", 0.5, -1), ValueError, ["global_step", "'loss'"]),
        (lambda w: w.add_scalar("loss", 0.5, "3"), TypeError, ["global_step", "'loss'"]),
        (lambda w: w.add_scalar(7, 0.5, 1), TypeError, ["tag", "int"]),
        (lambda w: w.add_scalar("", 0.5, 1), ValueError, ["tag"]),
        (lambda w: w.add_scalars("acc", {"a": "x"}, 1), TypeError, ["'acc'", "'a'"]),
        (lambda w: w.add_scalars("acc", [1, 2], 1), TypeError, ["'acc'", "dict"]),
        (lambda w: w.add_text("note", 42, 1), TypeError, ["'note'", "str"]),
        (lambda w: w.add_image("img", np.zeros((2, 4, 4)), 1), ValueError, ["'img'", "channels"]),
        (lambda w: w.add_image("img", np.zeros((4, 4)), 1), ValueError, ["'img'", "CHW"]),
        (lambda w: w.add_image("img", "pixels", 1), TypeError, ["'img'"]),
        (lambda w: w.add_histogram("w", np.array([]), 1), ValueError, ["'w'", "empty"]),
        (lambda w: w.add_histogram("w", np.array([np.nan]), 1), ValueError, ["'w'", "NaN"]),
        (lambda w: w.add_hparams({"lr": [1]}, {"acc": 1.0}), TypeError, ["'lr'"]),
    ],
)
def test_a_wrong_value_fails_at_the_call_site_naming_the_tag(
    job: Job, call: Callable[[TBWriter], None], error: type[Exception], words: list[str]
) -> None:
    writer = job.client("site-1")
    with pytest.raises(error) as info:
        call(writer)
    for word in words:
        assert word in str(info.value)
    writer.add_scalar("ok", 1.0, 0)  # the writer still works
    job.end()
    assert scalars(job.tb_root / "site-1", "ok") == [(0, 1.0)]


def test_add_scalars_writes_one_sub_run_per_series_as_torch_does(job: Job) -> None:
    writer = job.client("site-1")
    for step in range(3):
        writer.add_scalars("loss/split", {"train": step * 1.0, "val": step * 2.0}, step)
    job.end()
    site = job.tb_root / "site-1"
    assert sorted(p.name for p in site.iterdir() if p.is_dir()) == [
        "loss_split_train",
        "loss_split_val",
    ]
    assert scalars(site / "loss_split_train", "loss/split") == [(0, 0.0), (1, 1.0), (2, 2.0)]
    assert scalars(site / "loss_split_val", "loss/split") == [(0, 0.0), (1, 2.0), (2, 4.0)]


def test_text_image_histogram_and_hparams_round_trip(job: Job) -> None:
    writer = job.client("site-1")
    writer.add_text("notes", "epoch 1: ok ✓", 1)
    image = np.zeros((3, 4, 5), dtype=np.float32)
    image[0] = 1.0  # red
    writer.add_image("sample", image, 2)
    writer.add_image("gray", np.arange(12, dtype=np.uint8).reshape(3, 4) * 20, 2, dataformats="HW")
    values = np.random.default_rng(0).normal(size=1000)
    writer.add_histogram("weights", values, 3)
    writer.add_hparams({"lr": 0.01, "optimizer": "sgd", "nesterov": True}, {"hp/acc": 0.9})
    job.end()

    site = job.tb_root / "site-1"
    acc = accumulator(site)
    text = acc.Tensors("notes/text_summary")
    assert [(t.step, t.tensor_proto.string_val[0].decode()) for t in text] == [(1, "epoch 1: ok ✓")]
    (img,) = acc.Images("sample")
    assert (img.step, img.width, img.height) == (2, 5, 4)
    pixels = np.asarray(Image.open(io.BytesIO(img.encoded_image_string)))
    assert (
        pixels.shape == (4, 5, 3) and (pixels[..., 0] == 255).all() and (pixels[..., 1:] == 0).all()
    )
    (gray,) = acc.Images("gray")
    gray_pixels = np.asarray(Image.open(io.BytesIO(gray.encoded_image_string)))
    assert (gray_pixels == np.arange(12).reshape(3, 4) * 20).all()
    (hist,) = acc.Histograms("weights")
    assert hist.step == 3
    h = hist.histogram_value
    assert (
        h.num == 1000
        and h.min == pytest.approx(values.min())
        and h.max == pytest.approx(values.max())
    )
    assert h.sum == pytest.approx(values.sum()) and sum(h.bucket) == 1000
    hp = accumulator(site / "hparams")
    content = hp.PluginTagToContent("hparams")
    assert set(content) == {
        "_hparams_/experiment",
        "_hparams_/session_start_info",
        "_hparams_/session_end_info",
    }
    from tensorboard.plugins.hparams import metadata

    start = metadata.parse_session_start_info_plugin_data(content["_hparams_/session_start_info"])
    assert start.hparams["lr"].number_value == 0.01
    assert start.hparams["optimizer"].string_value == "sgd"
    assert start.hparams["nesterov"].bool_value is True
    assert scalars(site / "hparams", "hp/acc") == [(0, pytest.approx(0.9))]


def test_flares_mlflow_and_wandb_writers_send_their_calls_as_records(job: Job) -> None:
    from flconfig.tracking.senders import MLflowWriter, WandBWriter

    mlflow = job.client("site-1", writer_class=MLflowWriter)
    assert isinstance(mlflow, MLflowWriter)
    mlflow.log_params({"lr": 0.01})
    mlflow.set_tag("model", "cnn")
    for step in range(3):
        mlflow.log_metric("loss", 1.0 / (step + 1), step)
        mlflow.log_metrics({"acc": step / 10, "f1": step / 20}, step)
    mlflow.log_text("fine", "notes/run.txt")
    wandb = job.client("site-2", writer_class=WandBWriter)
    assert isinstance(wandb, WandBWriter)
    wandb.log({"acc": 0.5, "loss": 2.0}, step=4)
    job.end()

    site1 = job.tb_root / "site-1"
    assert scalars(site1, "loss") == [(0, 1.0), (1, 0.5), (2, pytest.approx(1 / 3))]
    assert scalars(site1, "acc") == [(0, 0.0), (1, pytest.approx(0.1)), (2, pytest.approx(0.2))]
    texts = accumulator(site1).Tags()["tensors"]
    assert {"params/lr/text_summary", "tags/model/text_summary", "notes/run.txt/text_summary"} <= set(texts)
    assert scalars(job.tb_root / "site-2", "loss") == [(4, 2.0)]


def test_records_logged_before_the_run_starts_are_sent_once_it_does(tmp_path: Path) -> None:
    job = Job(tmp_path)
    writer = TBWriter(queue_size=10)
    converter = ConvertToFedEvent(["analytix_log_stats"])
    ctx = SiteContext(
        "site-1", "job", tmp_path, {}, [writer, converter], fed_sink=job.sink("site-1")
    )
    for step in range(10):
        writer.add_scalar("early", float(step), step)
    with pytest.raises(RuntimeError, match="run has not started"):
        writer.add_scalar(
            "early", 10.0, 10
        )  # a full queue nothing could empty: an error, not a hang
    assert writer.flush(timeout=0.1) is False
    fire(ctx, *START)
    writer.add_scalar("early", 10.0, 10)
    fire(ctx, *END)
    fire(job.server, *END)
    assert scalars(job.tb_root / "site-1", "early") == [(s, float(s)) for s in range(11)]


def test_a_full_queue_makes_the_caller_wait_and_loses_nothing(tmp_path: Path) -> None:
    """Back-pressure: a tiny bound and a slow consumer; every record arrives, in order."""
    job = Job(tmp_path)

    class Slow:
        def handle_event(self, event: Event, ctx: Any) -> None:
            if event.type == "analytix_log_stats":
                time.sleep(0.002)

    writer = job.client("site-1", extra=[Slow()], queue_size=4)
    longest = 0
    for step in range(600):
        writer.add_scalar("x", float(step), step)
        longest = max(longest, len(writer._queue))
    assert longest <= 4
    job.end()
    assert scalars(job.tb_root / "site-1", "x") == [(s, float(s)) for s in range(600)]


def test_end_of_run_flushes_what_the_learner_logged_last(tmp_path: Path) -> None:
    job = Job(tmp_path)
    writer = job.client("site-1")
    writer.POLL_SECONDS = 5.0  # the thread would not wake on its own before the end
    for step in range(100):
        writer.add_scalar("last", float(step), step)
    job.end()
    assert len(scalars(job.tb_root / "site-1", "last")) == 100


def test_flush_returns_once_everything_was_handed_on(job: Job) -> None:
    writer = job.client("site-1")
    for step in range(500):
        writer.add_scalar("f", float(step), step)
    assert writer.flush(timeout=10)
    # Handed on means written: the receiver's files already hold every record.
    assert len(scalars(job.tb_root / "site-1", "f")) == 500
    job.end()


def test_records_arriving_after_end_run_but_before_finalize_are_written(tmp_path: Path) -> None:
    """A fed event delivered while END_RUN is being dispatched, before the receiver's
    turn, is written (FLARE drops it)."""
    receiver = TBAnalyticsReceiver()
    job = Job(tmp_path, [receiver])

    class LateSender:
        def handle_event(self, event: Event, ctx: SiteContext) -> None:
            if event.type == EventType.END_RUN:
                batch = AnalyticsBatch([_record("late", 1.0, 7)])
                ctx.deliver_fed_event("fed.analytix_log_stats", batch, origin="site-9")

    job.server._handlers.insert(0, LateSender())
    fire(job.server, *END)
    assert scalars(job.tb_root / "site-9", "late") == [(7, 1.0)]
    # After finalize: counted and reported, not written, and nothing breaks.
    job.server.deliver_fed_event(
        "fed.analytix_log_stats", AnalyticsBatch([_record("late", 2.0, 8)]), "site-9"
    )
    assert receiver.late_records == 1


# --------------------------------------------------------------------------- conversion


def test_convert_to_fed_event_converts_local_events_only_once(tmp_path: Path) -> None:
    seen: list[Event] = []
    sunk: list[Event] = []

    class Recorder:
        def handle_event(self, event: Event, ctx: Any) -> None:
            if not event.type.startswith("_"):
                seen.append(event)

    converter = ConvertToFedEvent(["a", "b", "fed.c"], fed_event_prefix="fed.")
    ctx = SiteContext("site-1", "job", tmp_path, {}, [converter, Recorder()], fed_sink=sunk.append)
    ctx.fire_event("a", {"x": 1})
    ctx.fire_event("b", [1])
    ctx.fire_fed_event("a", {"x": 2})  # already federated: not converted again
    ctx.fire_event("fed.c", 3)  # already carries the prefix
    ctx.fire_event("other", 4)  # not listed
    assert [(e.type, e.scope) for e in sunk] == [("fed.a", "fed"), ("fed.b", "fed"), ("a", "fed")]
    assert [(e.type, e.scope, e.data) for e in seen] == [
        ("fed.a", "fed", {"x": 1}),
        ("a", "local", {"x": 1}),
        ("fed.b", "fed", [1]),
        ("b", "local", [1]),
        ("a", "fed", {"x": 2}),
        ("fed.c", "local", 3),
        ("other", "local", 4),
    ]


def test_a_receiver_in_the_client_config_writes_the_sites_own_files_once(tmp_path: Path) -> None:
    """Decentralised tracking: the client's receiver sees the local event and its fed
    twin (same batch); each record is written once, under the client's run_dir."""
    job = Job(tmp_path)
    local = TBAnalyticsReceiver()
    writer = job.client("site-1", extra=[local])
    for step in range(50):
        writer.add_scalar("loss", float(step), step)
    job.end()
    own = tmp_path / "site-1" / "job" / "tb_events" / "site-1"
    assert scalars(own, "loss") == [(s, float(s)) for s in range(50)]
    assert scalars(job.tb_root / "site-1", "loss") == [(s, float(s)) for s in range(50)]


# --------------------------------------------------------------------------- records on the wire


def _record(tag: str, value: Any, step: int | None, **extra: Any) -> dict[str, Any]:
    return {
        "event_type": "fed.analytix_log_stats", "kind": "scalar", "tag": tag, "value": value,
        "step": step, "wall_time": 1_700_000_000.0, **extra,
    }  # fmt: skip


def test_event_to_records_and_back() -> None:
    batch = AnalyticsBatch([_record("a", 1.0, 0), _record("b", 2, 1)])
    records = event_to_records(Event("fed.analytix_log_stats", batch, "fed", "site-1"))
    assert [r["tag"] for r in records] == ["a", "b"]
    assert all(r["event_type"] == "fed.analytix_log_stats" for r in records)
    other = event_to_records(Event("fed.custom", {"round": 3, "ok": [True, None]}, "fed"))
    assert other == [{"event_type": "fed.custom", "data": {"round": 3, "ok": [True, None]}}]
    # The transport adds seq; it is dropped on the way back.
    wire = [{**r, "seq": i} for i, r in enumerate(records + other, 1)]
    events = records_to_events(wire)
    assert [(t, type(d).__name__) for t, d in events] == [
        ("fed.analytix_log_stats", "AnalyticsBatch"), ("fed.custom", "dict"),
    ]  # fmt: skip
    assert events[0][1] == batch and events[1][1] == {"round": 3, "ok": [True, None]}


def test_event_data_json_cannot_carry_is_refused_clearly() -> None:
    with pytest.raises(TypeError, match="fed.custom.*ndarray"):
        event_to_records(Event("fed.custom", {"w": np.zeros(2)}, "fed"))
    with pytest.raises(TypeError, match="non-string key"):
        event_to_records(Event("fed.custom", {1: "x"}, "fed"))


HOSTILE = [
    "not a dict",
    ["a", "list"],
    {"kind": "scalar", "tag": "t", "value": 1.0},  # no event_type
    _record("t", "1.0", 0),  # a string value
    _record("t", True, 0),  # a bool is not a number
    _record("t", 10**400, 0),  # no float holds it
    _record("t", 1.0, -1),
    _record("t", 1.0, True),
    _record("t", 1.0, 1.5),
    _record("", 1.0, 0),
    _record("t\x00", 1.0, 0),
    _record(7, 1.0, 0),  # type: ignore[arg-type]
    _record("t", 1.0, 0, extra="key"),
    _record("t", 1.0, 0, kind="video"),
    _record("t", 1.0, 0, wall_time="yesterday"),
    _record("t", 1.0, 0, event_type=["x"]),
    _record("t", 1.0, 0, event_type="x" * 1000),
    _record("t", {"a": "1"}, 0, kind="scalars"),
    _record("t", {}, 0, kind="scalars"),
    _record("t", ["x"], 0, kind="text"),
    _record(
        "t",
        {"format": "png", "height": 1, "width": 1, "channels": 3, "data": "!!"},
        0,
        kind="image",
    ),
    _record(
        "t",
        {"format": "png", "height": 1, "width": 1, "channels": 3, "data": "aGVsbG8="},
        0,
        kind="image",
    ),
    _record("t", {"min": 0}, 0, kind="histogram"),
    _record("t", {"hparams": {"lr": [1]}, "metrics": {}}, 0, kind="hparams"),
    {"event_type": "fed.x"},  # no data
    {"event_type": "fed.x", "data": 1, "more": 2},
]


def test_hostile_records_are_dropped_with_a_warning_and_the_rest_delivered(
    caplog: pytest.LogCaptureFixture,
) -> None:
    good = [_record("ok", float(i), i) for i in range(3)]
    records = [good[0], *HOSTILE, good[1], good[2]]
    with caplog.at_level(logging.WARNING, logger="flconfig.runtime.fed_events"):
        events = records_to_events(records, site="site-1")
    assert [(t, [r["value"] for r in d]) for t, d in events] == [
        ("fed.analytix_log_stats", [0.0, 1.0, 2.0])
    ]
    warnings = [r for r in caplog.records if "bad event record from site site-1" in r.getMessage()]
    assert len(warnings) == len(HOSTILE)


@settings(max_examples=200, deadline=None)
@given(st.lists(st.dictionaries(st.sampled_from(["event_type", "kind", "tag", "value", "step", "wall_time", "data", "x"]),
                                st.one_of(st.none(), st.booleans(), st.integers(), st.floats(), st.text(max_size=5),
                                          st.lists(st.integers(), max_size=2), st.dictionaries(st.text(max_size=3), st.integers(), max_size=2))),
                max_size=5))  # fmt: skip
def test_records_to_events_never_raises(records: list[dict[str, Any]]) -> None:
    events = records_to_events(records)
    delivered = 0
    for event_type, data in events:
        assert isinstance(event_type, str) and event_type
        if isinstance(data, AnalyticsBatch):
            assert all(set(r) == set(RECORD_KEYS) for r in data)
            delivered += len(data)
        else:
            delivered += 1
    assert delivered <= len(records)


def test_hostile_site_names_and_sub_runs_cannot_leave_the_tb_folder(
    job: Job, caplog: pytest.LogCaptureFixture
) -> None:
    server = job.server
    with caplog.at_level(logging.WARNING):
        for origin in ["../x", "..", "/etc", "a/b", "", "ok\x00", ".hidden"]:
            server.deliver_fed_event(
                "fed.analytix_log_stats", AnalyticsBatch([_record("t", 1.0, 0)]), origin=origin
            )
        evil = _record("../../../../escape", {"../../../x": 1.0, "..": 2.0}, 0, kind="scalars")
        for event_type, data in records_to_events([evil]):
            server.deliver_fed_event(event_type, data, origin="site-1")
    job.end()
    assert sorted(os.listdir(job.tb_root)) == ["site-1"]
    site = job.tb_root / "site-1"
    assert sorted(p.name for p in site.iterdir() if p.is_dir()) == sorted(
        [".._.._.._.._escape_.._.._.._x", ".._.._.._.._escape_.."]
    )
    assert list(job.workspace.rglob("escape*")) == []
    assert list(job.workspace.parent.glob("x")) == []
    assert any("not a valid site name" in r.getMessage() for r in caplog.records)


@pytest.mark.parametrize("folder", ["/abs/tb", "../tb", "a/../../tb"])
def test_tb_folder_must_stay_inside_the_run_dir(tmp_path: Path, folder: str) -> None:
    # A config's tb_folder is refused by the schema before anything runs (test_registry);
    # a receiver built in Python is refused when it starts, and writes nothing outside.
    receiver = TBAnalyticsReceiver(tb_folder=folder)
    server = SiteContext("server", "job", tmp_path / "ws", {}, [receiver], role="server")
    with pytest.raises(ValueError, match="leaves the run directory"):
        receiver.initialize(server)
    assert not any(p.name == "tb" for p in tmp_path.rglob("*"))


# --------------------------------------------------------------------------- receivers


def test_a_receiver_is_a_few_lines_and_its_failures_are_logged_once_per_kind(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    class Picky(AnalyticsReceiver):
        def __init__(self) -> None:
            super().__init__()
            self.saved: list[tuple[str, str, Any]] = []
            self.calls: list[str] = []

        def initialize(self, ctx: Any) -> None:
            self.calls.append("initialize")

        def save(self, record: dict[str, Any], origin: str) -> None:
            if record["kind"] == "text":
                raise RuntimeError("no text here")
            self.saved.append((origin, record["tag"], record["value"]))

        def finalize(self, ctx: Any) -> None:
            self.calls.append("finalize")

    picky = Picky()
    job = Job(tmp_path, [picky])
    writer = job.client("site-1")
    with caplog.at_level(logging.ERROR):
        for step in range(3):
            writer.add_text("t", "hi", step)
            writer.add_scalar("s", float(step), step)
            writer.flush()
        job.end()
    assert picky.saved == [("site-1", "s", 0.0), ("site-1", "s", 1.0), ("site-1", "s", 2.0)]
    assert picky.calls == ["initialize", "finalize"]
    assert len([r for r in caplog.records if "no text here" in r.getMessage()]) == 1


def test_json_lines_receiver_writes_one_line_per_record_with_its_site(tmp_path: Path) -> None:
    receiver = JsonLinesReceiver()
    job = Job(tmp_path, [receiver])
    for site in ("site-1", "site-2"):
        writer = job.client(site)
        writer.add_scalar("loss", 0.5, 1)
        writer.add_scalars("acc", {"a": 1}, 2)
        writer.flush()
    job.end()
    lines = (tmp_path / "server" / "job" / "analytics.jsonl").read_text().splitlines()
    rows = [json.loads(line) for line in lines]
    assert [(r["site"], r["kind"], r["tag"], r["value"], r["step"]) for r in rows] == [
        ("site-1", "scalar", "loss", 0.5, 1), ("site-1", "scalars", "acc", {"a": 1}, 2),
        ("site-2", "scalar", "loss", 0.5, 1), ("site-2", "scalars", "acc", {"a": 1}, 2),
    ]  # fmt: skip


def test_mlflow_receiver_writes_runs_or_names_the_extra_to_install(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    receiver = MLflowReceiver()
    try:
        import mlflow  # noqa: F401
    except ImportError:
        server = SiteContext("server", "job", tmp_path, {}, [receiver], role="server")
        with pytest.raises(JobError, match=r"pip install 'flconfig\[mlflow\]'"):
            receiver.initialize(server)
        with caplog.at_level(logging.ERROR):
            server.fire_event(EventType.START_RUN)  # logged clearly; the run goes on
        assert any("flconfig[mlflow]" in r.getMessage() for r in caplog.records)
        return
    from mlflow.tracking import MlflowClient

    job = Job(tmp_path, [receiver])
    writer = job.client("site-1")
    for step in range(5):
        writer.add_scalar("loss", step / 10, step)
    writer.add_scalars("acc", {"train": 0.5, "val": 0.25}, 4)
    writer.add_text("notes", "hello", 4)
    writer.add_hparams({"lr": 0.01, "optimizer": "sgd"}, {"best": 0.75})
    writer.add_histogram("w", np.arange(10), 4)  # MLflow has none: skipped, logged
    job.end()
    client = MlflowClient(tracking_uri=(tmp_path / "server" / "job" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("FLARE FL Experiment")  # FLARE's default name
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "site-1"
    history = client.get_metric_history(run.info.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(s, s / 10) for s in range(5)]
    data = client.get_run(run.info.run_id).data
    assert data.metrics == {"loss": 0.4, "acc/train": 0.5, "acc/val": 0.25, "best": 0.75}
    assert data.params == {"lr": "0.01", "optimizer": "sgd"}
    assert [a.path for a in client.list_artifacts(run.info.run_id, "text/notes")] == [
        "text/notes/4.txt"
    ]


def test_mlflow_receiver_takes_flares_run_settings(tmp_path: Path) -> None:
    # As FLARE's hello-pt-mlflow job configures it (kw_args; kwargs in FLARE 2.4).
    kw_args = {"experiment_name": "nvflare-sag-pt", "run_name": "with-mlflow",
               "experiment_tags": {"mlflow.note.content": "## SAG"}, "run_tags": {"team": "a"}}
    for spelling in ("kw_args", "kwargs"):
        receiver = MLflowReceiver(tracking_uri="", artifact_location="artifacts",
                                  buffer_flush_time=1, **{spelling: kw_args})
        assert receiver.experiment_name == "nvflare-sag-pt" and receiver.tracking_uri is None
    with pytest.raises(ValueError, match=r"kw_args\['run_tags'\] must be a dict"):
        MLflowReceiver(kw_args={"run_tags": "x"})
    try:
        from mlflow.tracking import MlflowClient
    except ImportError:
        return  # what runs without MLflow is checked by the test above
    job = Job(tmp_path, [receiver])
    job.client("site-1").add_scalar("loss", 0.5, 1)
    job.end()
    client = MlflowClient(tracking_uri=(tmp_path / "server" / "job" / "mlruns").as_uri())
    experiment = client.get_experiment_by_name("nvflare-sag-pt")
    assert experiment.tags["mlflow.note.content"] == "## SAG"
    assert experiment.artifact_location == (tmp_path / "server" / "job" / "artifacts").resolve().as_uri()
    (run,) = client.search_runs([experiment.experiment_id])
    assert run.info.run_name == "site-1-job-with-mlflow"
    assert run.data.tags["team"] == "a" and run.data.metrics == {"loss": 0.5}


# --------------------------------------------------------------------------- event files


def test_batched_checksums_match_tensorboards() -> None:
    from flconfig.tracking import crc32c

    rng = np.random.default_rng(1)
    buffers = [rng.bytes(int(n)) for n in rng.integers(0, 90, size=500)] + [rng.bytes(2000), b""]
    expected = [masked_crc32c(b) for b in buffers]
    assert masked_crc32c_many(buffers) == expected  # native when installed (flconfig[run])
    assert masked_crc32c_many(buffers[:3]) == expected[:3]
    # The fallback without google-crc32c gives the same checksums.
    assert crc32c.masked_crc32c_many_numpy(buffers) == expected
    assert crc32c.masked_crc32c_many_numpy(buffers[:3]) == expected[:3]
    assert [crc32c.mask(crc32c.crc32c_python(b)) for b in buffers[:50]] == expected[:50]


def test_the_native_crc32c_is_used_when_installed() -> None:
    from flconfig.tracking import crc32c

    google = pytest.importorskip("google_crc32c")
    assert crc32c.NATIVE == (google.implementation == "c")


def test_tb_files_are_readable_while_the_run_goes_on(job: Job) -> None:
    """No waiting for the end of the run: what was handed on is on disk."""
    writer = job.client("site-1")
    writer.add_scalar("live", 1.0, 0)
    assert writer.flush(timeout=5)
    assert scalars(job.tb_root / "site-1", "live") == [(0, 1.0)]
    writer.add_scalar("live", 2.0, 1)
    assert writer.flush(timeout=5)
    assert scalars(job.tb_root / "site-1", "live") == [(0, 1.0), (1, 2.0)]
    job.end()


def test_two_threads_logging_to_one_writer_lose_nothing(job: Job) -> None:
    writer = job.client("site-1", queue_size=64)

    def log(tag: str) -> None:
        for step in range(2000):
            writer.add_scalar(tag, float(step), step)

    threads = [threading.Thread(target=log, args=(tag,)) for tag in ("a", "b")]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    job.end()
    for tag in ("a", "b"):
        assert scalars(job.tb_root / "site-1", tag) == [(s, float(s)) for s in range(2000)]


def test_nan_infinity_and_big_ints_survive_the_wire(job: Job) -> None:
    """The transport's JSON carries NaN and infinities (a diverging loss must show)."""
    from flconfig.transport.codec import decode_records, encode_record, join_records

    def wire_sink(site: str) -> Callable[[Event], None]:
        def fed_sink(event: Event) -> None:
            wire = decode_records(join_records(encode_record(r) for r in event_to_records(event)))
            for event_type, data in records_to_events(wire):
                job.server.deliver_fed_event(event_type, data, origin=site)

        return fed_sink

    writer = job.client("site-1")
    job.clients["site-1"][0].fed_sink = wire_sink("site-1")
    writer.add_scalar("loss", float("nan"), 0)
    writer.add_scalar("loss", float("inf"), 1)
    writer.add_scalar("loss", 10**30, 2)
    with pytest.raises(ValueError, match="'loss'"):
        writer.add_scalar("loss", 10**400, 3)
    with pytest.raises(ValueError, match="global_step of 'loss'"):
        writer.add_scalar("loss", 1.0, 2**63)
    job.end()
    values = scalars(job.tb_root / "site-1", "loss")
    assert [s for s, _ in values] == [0, 1, 2]
    assert np.isnan(values[0][1]) and values[1][1] == float("inf")
    assert values[2][1] == pytest.approx(1e30)


def test_an_idle_sender_sleeps_and_the_next_record_wakes_it(
    job: Job, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A thousand idle sites in one process must cost nothing: an idle sender's thread
    sleeps until a record arrives (no poll), and that record is sent without a flush."""
    from harness.comm import wait_until

    from flconfig.tracking import drainer

    monkeypatch.setattr(drainer, "IDLE_WAIT_S", 600.0)  # no safety-net wake-up in this test
    writer = job.client("site-1")
    writer.add_scalar("first", 1.0, 0)
    assert writer.flush(timeout=10)
    assert wait_until(lambda: writer._asleep, timeout=20)  # empty for IDLE_POLLS polls: asleep
    writer.add_scalar("after_a_quiet_spell", 2.0, 1)
    assert wait_until(lambda: (job.tb_root / "site-1").exists()
                      and "after_a_quiet_spell" in accumulator(job.tb_root / "site-1").Tags()["scalars"],
                      timeout=20)
    job.end()


def test_three_hundred_sites_senders_share_one_thread_and_lose_nothing(job: Job) -> None:
    """A worker hosting many sites drains all their senders on one analytics thread:
    no thread per site, and every site's records reach its own TensorBoard run."""
    before = {t.ident for t in threading.enumerate()}
    writers = {f"site-{i}": job.client(f"site-{i}") for i in range(1, 301)}
    for step in range(3):
        for site, writer in writers.items():
            writer.add_scalar("x", float(site.removeprefix("site-")), step)
    started = [t for t in threading.enumerate() if t.ident not in before]
    assert all(writer.flush(30) for writer in writers.values())
    job.end()
    # At most the one analytics thread (none if an earlier test of this process started it).
    assert len(started) <= 1, [t.name for t in started]
    for site in ("site-1", "site-150", "site-300"):
        number = float(site.removeprefix("site-"))
        assert scalars(job.tb_root / site, "x") == [(0, number), (1, number), (2, number)]
    assert len([p for p in job.tb_root.iterdir() if p.is_dir()]) == 300


def test_a_handler_of_the_analytics_event_that_flushes_gets_false_and_nothing_is_lost(
    job: Job,
) -> None:
    """The handlers of an analytics event run on the analytics thread, which would do the
    flushing: flush() there returns False at once instead of waiting for itself."""

    class Flusher:
        answers: list[bool] = []

        def handle_event(self, event: Event, ctx: object) -> None:
            if event.type == "analytix_log_stats":
                self.answers.append(writer.flush())  # no timeout: waiting would be for ever

    flusher = Flusher()
    writer = job.client("site-1", extra=[flusher])
    for step in range(50):
        writer.add_scalar("h", float(step), step)
    assert writer.flush(timeout=30)  # the analytics thread got past the handler
    job.end()
    assert flusher.answers and not any(flusher.answers)
    assert [s for s, _ in scalars(job.tb_root / "site-1", "h")] == list(range(50))
