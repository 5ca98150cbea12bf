"""Experiment tracking over the real link: clients stream metrics through gRPC on
127.0.0.1 to a server that writes TensorBoard files, wired as the launcher wires it.
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import pytest
from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from flconfig.runtime.context import SiteContext
from flconfig.runtime.fed_events import event_to_records, records_to_events
from flconfig.tracking.convert import ConvertToFedEvent
from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver
from flconfig.tracking.senders import TBWriter
from flconfig.transport.client import CommClient
from flconfig.transport.server import CommServer
from flconfig.types import EventType

pytestmark = pytest.mark.timeout(60)

TOKENS = {"site-1": "token-1", "site-2": "token-2"}
N = 20_000


def run_client(address: str, site: str, workspace: Path, errors: list[BaseException]) -> None:
    """One site: connect, start the run, log N scalars as fast as it can, end the run."""
    try:
        comm = CommClient(address, site, TOKENS[site], heartbeat_interval=1.0)
        comm.connect(timeout=10)
        writer = TBWriter()
        converter = ConvertToFedEvent(["analytix_log_stats"])
        ctx = SiteContext(
            site, "job", workspace, {"writer": writer, "converter": converter},
            [writer, converter], fed_sink=lambda event: comm.send_events(event_to_records(event)),
        )  # fmt: skip
        ctx.fire_event(EventType.ABOUT_TO_START_RUN)
        ctx.fire_event(EventType.START_RUN)
        sign = 1.0 if site == "site-1" else -1.0
        for step in range(N):
            writer.add_scalar("train_loss", sign * step, step)
        ctx.fire_event(EventType.ABOUT_TO_END_RUN)
        ctx.fire_event(EventType.END_RUN)
        assert comm.close(timeout=30) == 0, "records left unacknowledged"
    except BaseException as exc:  # reported by the test
        errors.append(exc)


def test_two_clients_stream_every_scalar_once_in_order_through_grpc(tmp_path: Path) -> None:
    receiver = TBAnalyticsReceiver()
    server_ctx = SiteContext("server", "job", tmp_path, {"tb": receiver}, [receiver], role="server")

    def on_events(site: str, records: list[dict[str, Any]]) -> None:
        for event_type, data in records_to_events(records, site):
            server_ctx.deliver_fed_event(event_type, data, origin=site)

    server = CommServer(TOKENS, heartbeat_timeout=30, on_events=on_events).start()
    try:
        server_ctx.fire_event(EventType.START_RUN)
        errors: list[BaseException] = []
        threads = [
            threading.Thread(target=run_client, args=(server.address, site, tmp_path, errors))
            for site in TOKENS
        ]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(timeout=50)
        assert not errors, errors
        server_ctx.fire_event(EventType.END_RUN)
    finally:
        server.stop(grace=0.5)

    root = tmp_path / "server" / "job" / "tb_events"
    assert sorted(p.name for p in root.iterdir()) == ["site-1", "site-2"]
    for site, sign in (("site-1", 1.0), ("site-2", -1.0)):
        acc = EventAccumulator(str(root / site), size_guidance={"scalars": 0})
        acc.Reload()
        events = acc.Scalars("train_loss")
        assert [e.step for e in events] == list(range(N))  # all, in order, none twice
        assert all(e.value == sign * e.step for e in events)
