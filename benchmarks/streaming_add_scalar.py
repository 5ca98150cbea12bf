"""Cost of one ``TBWriter.add_scalar`` call to the training loop, in microseconds.

Bar (issue 4): median <= 5 µs per call on the project's 2-core machine.

The writer runs as in a client: captured by a site at START_RUN, its thread
drains the queue and fires batches through ConvertToFedEvent into a fed sink
that turns them into transport records and encodes them (everything a client
does short of the network), so the calls compete with that work for the GIL.
Calls are timed in chunks of ``--chunk`` (a single call is shorter than the
clock's resolution); the figures are per call.

    python benchmarks/streaming_add_scalar.py [--calls 300000] [--chunk 100]
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flconfig.runtime.context import SiteContext  # noqa: E402
from flconfig.runtime.fed_events import event_to_records  # noqa: E402
from flconfig.tracking.convert import ConvertToFedEvent  # noqa: E402
from flconfig.tracking.senders import TBWriter  # noqa: E402
from flconfig.transport.codec import encode_record  # noqa: E402
from flconfig.types import EventType  # noqa: E402

BAR_US = 5.0


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--calls", type=int, default=300_000)
    parser.add_argument("--chunk", type=int, default=100)
    ns = parser.parse_args()

    sent = [0]

    def fed_sink(event: object) -> None:
        records = event_to_records(event)  # type: ignore[arg-type]
        for record in records:
            encode_record(record)
        sent[0] += len(records)

    writer = TBWriter()
    converter = ConvertToFedEvent(["analytix_log_stats"])
    with tempfile.TemporaryDirectory() as workspace:
        ctx = SiteContext(
            "site-1", "bench", Path(workspace), {"w": writer, "c": converter},
            [writer, converter], fed_sink=fed_sink,
        )  # fmt: skip
        ctx.fire_event(EventType.START_RUN)
        add_scalar = writer.add_scalar
        clock = time.perf_counter_ns
        per_call: list[float] = []
        step = 0
        for _ in range(ns.calls // ns.chunk):
            start = clock()
            for _ in range(ns.chunk):
                add_scalar("train_loss", 0.125, step)
                step += 1
            per_call.append((clock() - start) / ns.chunk / 1000)
        writer.flush()
        ctx.fire_event(EventType.END_RUN)

    per_call.sort()
    result = {
        "benchmark": "streaming_add_scalar",
        "calls": step,
        "records_handed_on": sent[0],
        "median_us": round(statistics.median(per_call), 3),
        "p90_us": round(per_call[int(0.90 * (len(per_call) - 1))], 3),
        "p99_us": round(per_call[int(0.99 * (len(per_call) - 1))], 3),
        "bar_median_us": BAR_US,
    }
    result["pass"] = result["median_us"] <= BAR_US and sent[0] == step
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


if __name__ == "__main__":
    sys.exit(main())
