"""The server's TensorBoard receiver keeps only a few sites' files open: ten thousand sites
must not take ten thousand file descriptors, and a file closed and opened again loses and
reorders nothing (read back with tensorboard's own reader)."""

from __future__ import annotations

import os
from pathlib import Path

from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

from flconfig.runtime.context import SiteContext
from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver
from flconfig.tracking.records import AnalyticsBatch
from flconfig.types import EventType


def _record(tag: str, value: float, step: int) -> dict[str, object]:
    return {"event_type": "fed.analytix_log_stats", "kind": "scalar", "tag": tag,
            "value": value, "step": step, "wall_time": 1_700_000_000.0 + step}


def _open_event_files(root: Path) -> int:
    """How many of this process's file descriptors are event files under ``root``."""
    count = 0
    for fd in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{fd}")
        except OSError:
            continue
        if target.startswith(str(root)) and "tfevents" in target:
            count += 1
    return count


def test_at_most_max_open_sites_files_are_open_and_every_record_is_read_back_in_order(
    tmp_path: Path,
) -> None:
    receiver = TBAnalyticsReceiver()
    receiver.max_open_sites = 3
    server = SiteContext("server", "job", tmp_path / "ws", {}, [receiver], role="server")
    for event_type in (EventType.ABOUT_TO_START_RUN, EventType.START_RUN):
        server.fire_event(event_type)
    root = server.run_dir / "tb_events"
    sites = [f"site-{i}" for i in range(1, 11)]
    most_open = 0
    for step in range(6):  # every site writes in every round, in a rotating order
        for i in range(len(sites)):
            site = sites[(i + step) % len(sites)]
            batch = AnalyticsBatch([_record("train_loss", step * 100 + i, step),
                                    _record("lr", 0.1 * step, step)])
            server.deliver_fed_event("fed.analytix_log_stats", batch, origin=site)
            most_open = max(most_open, _open_event_files(root))
    # Never more than 3 sites' files open (and one more while a batch is written).
    assert 1 <= most_open <= 4
    for event_type in (EventType.ABOUT_TO_END_RUN, EventType.END_RUN):
        server.fire_event(event_type)
    assert _open_event_files(root) == 0
    for site in sites:
        folder = root / site
        # One event file per site, whatever number of times it was closed and opened again.
        assert len(list(folder.glob("events.out.tfevents.*"))) == 1
        acc = EventAccumulator(str(folder), size_guidance={"scalars": 0})
        acc.Reload()
        assert [e.step for e in acc.Scalars("train_loss")] == list(range(6))
        i = sites.index(site)
        expected = [step * 100 + (i - step) % len(sites) for step in range(6)]
        assert [e.value for e in acc.Scalars("train_loss")] == expected
        assert [round(e.value, 6) for e in acc.Scalars("lr")] == [round(0.1 * s, 6) for s in range(6)]
