"""The server's live events (flconfig.runtime.live_events): what each site does, read from a
real job server with real sites over gRPC, and snapshots that stay one line at 10,000 sites."""

from __future__ import annotations

import json
import threading
from collections.abc import Callable
from typing import Any

import numpy as np
from harness.comm import add_site_number, wait_until

from flconfig.runtime.live_events import EVENT_MARKER, LiveEvents, event_line, site_state
from flconfig.transport.client import Task
from flconfig.transport.server import CommServer
from flconfig.types import Event, EventType, FLModel


def states_of(server: CommServer) -> dict[str, str]:
    return {site: site_state(*what) for site, what in server.activity().items()}


def test_a_sites_state_follows_what_the_server_knows_of_it(make_server: Callable[..., CommServer],
                                                            start_sites: Callable[..., Any]) -> None:
    server = make_server()
    gate = threading.Event()

    def answer(site: str, task: Task) -> FLModel:
        if site == "site-2":  # still training while the others are done
            gate.wait(20)
        return add_site_number(site, task)

    assert set(states_of(server).values()) == {"connecting"}
    start_sites(server, answer, n=3)  # site-4 never comes
    assert states_of(server) == {"site-1": "connected", "site-2": "connected", "site-3": "connected",
                                 "site-4": "connecting"}
    results: dict[str, FLModel] = {}
    gather = threading.Thread(target=lambda: results.update(server.broadcast_and_wait(
        "train", FLModel(params={"w": np.zeros(2)}), ["site-1", "site-2", "site-3"], 0)))
    gather.start()
    try:
        assert wait_until(lambda: states_of(server)["site-3"] == "done", timeout=10), states_of(server)
        assert wait_until(lambda: states_of(server)["site-1"] == "done", timeout=10), states_of(server)
        assert states_of(server)["site-2"] == "training"
    finally:
        gate.set()
        gather.join(timeout=20)
    assert sorted(results) == ["site-1", "site-2", "site-3"]
    # The task closed: nothing of theirs is open; a task of another name is not training.
    assert states_of(server)["site-1"] == "connected"
    assert site_state("alive", "validate", "running") == "validating"
    assert site_state("alive", "submit_model", "queued") == "working"
    assert site_state("failed", "", "") == "failed"
    assert site_state("lost", "train", "running") == "lost"
    assert site_state("left", "", "") == "done"
    assert site_state("alive", "train", "sending") == "sending"


def test_sites_events_say_only_what_changed_once_a_snapshot_at_10000_sites() -> None:
    sent: list[dict[str, Any]] = []
    names = [f"site-{i}" for i in range(1, 10_001)]
    activity = {name: ("new", "", "") for name in names}
    events = LiveEvents(sent.append, len(names))
    events.watch(lambda: activity)  # snapshots taken here, not by the thread
    events.snapshot()
    assert len(sent) == 1
    assert sent[0]["counts"] == {"connecting": 10_000}
    assert sent[0]["changed"]["connecting"][:3] == ["site-1", "site-2", "site-3"]
    events.snapshot()  # nothing changed: nothing said
    assert len(sent) == 1
    for name in names:
        activity[name] = ("alive", "train", "running")
    activity["site-10"] = ("alive", "train", "returned")
    activity["site-9999"] = ("lost", "", "")
    events.snapshot()  # 10,000 changes: one event
    assert len(sent) == 2
    assert sent[1]["counts"] == {"training": 9_998, "done": 1, "lost": 1}
    assert sent[1]["changed"]["done"] == ["site-10"]
    assert sent[1]["changed"]["lost"] == ["site-9999"]
    activity["site-10"] = ("alive", "", "")
    events.snapshot()
    assert sent[2] == {"event": "sites", "counts": {"connected": 1, "training": 9_998, "lost": 1},
                       "changed": {"connected": ["site-10"]}}
    line = event_line(sent[2])
    assert line.startswith(EVENT_MARKER) and line.endswith("\n") and line.count("\n") == 1
    assert json.loads(line[len(EVENT_MARKER):]) == sent[2]


def test_rounds_metrics_and_records_as_events() -> None:
    sent: list[dict[str, Any]] = []
    latest = [{"site-2": {"loss": (0.5, 10), "acc": (float("nan"), 1), "a": (1, 1), "b": (2, 2)},
               "site-10": {"loss": (0.25, 12)}}]
    events = LiveEvents(sent.append, 2, lambda: latest.pop() if latest else {})
    events.handle_event(Event(EventType.ROUND_STARTED, {"current_round": 0, "num_rounds": 3}), None)
    events.count_records(40)
    events.count_records(2)
    events.handle_event(Event(EventType.ROUND_DONE, {"current_round": 0, "num_rounds": 3}), None)
    kinds = [event["event"] for event in sent]
    assert kinds == ["round", "metrics", "records", "round"]
    assert sent[0] == {"event": "round", "n": 1, "of": 3, "state": "started"}
    # The first three tags of each site, NaN as null (JSON has no NaN), site-2 before site-10.
    assert sent[1]["sites"] == {"site-2": {"loss": [0.5, 10], "acc": [None, 1], "a": [1, 1]},
                                "site-10": {"loss": [0.25, 12]}}
    assert list(sent[1]["sites"]) == ["site-2", "site-10"]
    assert sent[2]["total"] == 42
    # A round whose start was seen says how long it took (one whose start was not: None).
    assert sent[3]["state"] == "done" and sent[3]["n"] == 1 and isinstance(sent[3]["seconds"], float)
    events.metrics()  # nothing new: nothing said
    assert len(sent) == 4
    for event in sent:
        json.loads(event_line(event)[len(EVENT_MARKER):])
