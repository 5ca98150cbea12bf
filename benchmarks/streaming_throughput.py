"""End-to-end streaming: one client process logs scalars, a server process writes them
as TensorBoard files; how fast, and how soon each one is readable.

Bars (issue 4), on the project's 2-core machine:

- throughput >= 50,000 scalars/s, from the first ``add_scalar`` call to the
  last record readable in the server's event file (``--scalars`` logged as
  fast as the loop can);
- latency ``add_scalar`` → readable in the server's event file, p50 <= 0.5 s
  and p99 <= 1.5 s, for a training loop logging ``--paced-rate`` scalars/s
  (the flood's latency is reported too: it is mostly time spent waiting in
  the sender's queue, by design).

Three processes: the server (CommServer + SiteContext + TBAnalyticsReceiver),
the client (CommClient + SiteContext + TBWriter + ConvertToFedEvent, the
wiring the launcher uses, real gRPC on 127.0.0.1) and this one, which tails
the server's event file and notes when each record became readable. At the
end every record is read again with tensorboard's own reader (which checks
the checksums) and must be there exactly once, in order.

The ceiling: the same scalars written by ``torch.utils.tensorboard.SummaryWriter``
in one process, first call to flushed file; the throughput is also given as a
fraction of it. For reference, the rate of tensorboard's own ``EventFileWriter``
(torch's back end, checksums in pure Python) alone, in one process.

With ``--tls``, the link is a deployment's (issue 10): the benchmark provisions a
project and the two ends use its certificates, mutual TLS, every call's
certificate checked against the site it claims.

    python benchmarks/streaming_throughput.py [--scalars 300000] [--paced-rate 10000] [--tls]
"""

from __future__ import annotations

import argparse
import json
import os
import struct
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

BAR_RATE = 50_000
BAR_P50_S = 0.5
BAR_P99_S = 1.5
SITE = "site-1"
TOKEN = "bench-token"
JOB = "bench"
TAG = "train_loss"


# --------------------------------------------------------------------------- server process


def provision_kits(folder: Path) -> Path:
    """A project with a server and SITE, provisioned into ``folder``."""
    from flconfig.deploy.provision import provision

    folder.mkdir(parents=True, exist_ok=True)
    project = folder / "project.yaml"
    project.write_text("name: bench\nparticipants:\n"
                       "  - {name: server, type: server, host: localhost}\n"
                       f"  - {{name: {SITE}, type: client}}\n")
    provision(project, folder / "kits")
    return folder / "kits"


def run_server(workspace: Path, kits: Path | None = None) -> None:
    from flconfig.runtime.context import SiteContext
    from flconfig.runtime.fed_events import records_to_events
    from flconfig.tracking.receivers.tensorboard import TBAnalyticsReceiver
    from flconfig.transport.server import CommServer
    from flconfig.types import EventType

    receiver = TBAnalyticsReceiver()
    ctx = SiteContext("server", JOB, workspace, {"tb": receiver}, [receiver], role="server")

    def on_events(site: str, records: list[dict[str, Any]]) -> None:
        for event_type, data in records_to_events(records, site):
            ctx.deliver_fed_event(event_type, data, origin=site)

    tls: dict[str, Any] = {}
    if kits is not None:
        from flconfig.deploy.kit import load_kit
        from flconfig.transport.tls import job_server_tls

        credentials, check = job_server_tls(load_kit(kits / "server").tls_files())
        tls = {"host": "localhost", "server_credentials": credentials, "peer_check": check}
    server = CommServer({SITE: TOKEN}, port=0, heartbeat_timeout=60, on_events=on_events, **tls)
    server.start()
    ctx.fire_event(EventType.START_RUN)
    print(f"READY {server.port}", flush=True)
    sys.stdin.read()  # the driver closes stdin when it has seen everything
    ctx.fire_event(EventType.END_RUN)
    server.stop()


# --------------------------------------------------------------------------- client process


def run_client(workspace: Path, port: int, scalars: int, paced: int, rate: int,
               kits: Path | None = None) -> None:
    from flconfig.runtime.context import SiteContext
    from flconfig.runtime.fed_events import event_to_records
    from flconfig.tracking.convert import ConvertToFedEvent
    from flconfig.tracking.senders import TBWriter
    from flconfig.transport.client import CommClient
    from flconfig.types import EventType

    if kits is None:
        comm = CommClient(f"127.0.0.1:{port}", SITE, TOKEN)
    else:
        from flconfig.deploy.kit import load_kit

        comm = CommClient(f"localhost:{port}", SITE, TOKEN,
                          channel_credentials=load_kit(kits / SITE).channel_credentials())
    comm.connect()
    writer = TBWriter()
    converter = ConvertToFedEvent(["analytix_log_stats"])
    ctx = SiteContext(
        SITE, JOB, workspace, {"w": writer, "c": converter}, [writer, converter],
        fed_sink=lambda event: comm.send_events(event_to_records(event)),
    )  # fmt: skip
    ctx.fire_event(EventType.ABOUT_TO_START_RUN)
    ctx.fire_event(EventType.START_RUN)

    add_scalar = writer.add_scalar
    start = time.time()
    for i in range(scalars):
        add_scalar(TAG, float(i), i)
    calls_done = time.time()
    writer.flush()
    comm.flush()

    # A training loop: `rate` scalars a second, logged in 1 ms ticks.
    per_tick = max(1, rate // 1000)
    tick = per_tick / rate
    next_tick = time.perf_counter()
    step = scalars
    while step < scalars + paced:
        for _ in range(min(per_tick, scalars + paced - step)):
            add_scalar(TAG, float(step), step)
            step += 1
        next_tick += tick
        delay = next_tick - time.perf_counter()
        if delay > 0:
            time.sleep(delay)

    ctx.fire_event(EventType.ABOUT_TO_END_RUN)
    ctx.fire_event(EventType.END_RUN)
    unacked = comm.close()
    print(
        json.dumps({"start": start, "calls_done": calls_done, "unacked": unacked}),
        flush=True,
    )


# --------------------------------------------------------------------------- driver


class Tail:
    """Reads the records of a growing event file as they become readable."""

    def __init__(self, path: Path) -> None:
        self._file = open(path, "rb")  # noqa: SIM115
        self._buf = b""

    def read(self) -> list[bytes]:
        self._buf += self._file.read()
        out = []
        buf, pos = self._buf, 0
        while len(buf) - pos >= 12:
            (length,) = struct.unpack_from("<Q", buf, pos)
            end = pos + 12 + length + 4
            if end > len(buf):
                break
            out.append(buf[pos + 12 : pos + 12 + length])
            pos = end
        self._buf = buf[pos:]
        return out


def watch(folder: Path, total: int, timeout: float) -> dict[int, tuple[float, float]]:
    """step -> (wall time it was logged, time it became readable), for every scalar."""
    from tensorboard.compat.proto import event_pb2

    deadline = time.time() + timeout
    tail = None
    seen: dict[int, tuple[float, float]] = {}
    while len(seen) < total:
        if time.time() > deadline:
            raise SystemExit(f"only {len(seen)} of {total} records readable after {timeout:g} s")
        if tail is None:
            files = sorted(folder.glob("events.out.tfevents.*")) if folder.is_dir() else []
            if not files:
                time.sleep(0.002)
                continue
            tail = Tail(files[0])
        payloads = tail.read()
        now = time.time()
        for payload in payloads:
            event = event_pb2.Event.FromString(payload)
            if event.HasField("summary"):
                seen[event.step] = (event.wall_time, now)
        if not payloads:
            time.sleep(0.002)
    return seen


def percentile(values: list[float], q: float) -> float:
    values = sorted(values)
    return values[min(len(values) - 1, int(q * len(values)))]


def verify(folder: Path, total: int) -> bool:
    """Every step exactly once, in order, values as sent: read with tensorboard's reader.

    (The legacy loader yields the events as written; the other one rewrites
    scalars into tensors.)
    """
    from tensorboard.backend.event_processing.event_file_loader import LegacyEventFileLoader

    steps = []
    for path in sorted(folder.glob("events.out.tfevents.*")):
        for event in LegacyEventFileLoader(str(path)).Load():
            for value in event.summary.value:
                if value.tag == TAG:
                    steps.append(event.step)
                    if value.simple_value != float(event.step):
                        return False
    return steps == list(range(total))


def torch_ceiling(scalars: int) -> float:
    from torch.utils.tensorboard import SummaryWriter

    with tempfile.TemporaryDirectory() as logdir:
        writer = SummaryWriter(logdir, max_queue=1000)
        start = time.perf_counter()
        for i in range(scalars):
            writer.add_scalar(TAG, float(i), i)
        writer.flush()
        elapsed = time.perf_counter() - start
        writer.close()
    return scalars / elapsed


def tensorboard_writer_rate(scalars: int) -> float:
    """The same scalars through tensorboard's ``EventFileWriter`` (what torch uses), in one process."""
    from tensorboard.compat.proto import event_pb2, summary_pb2
    from tensorboard.summary.writer.event_file_writer import EventFileWriter

    with tempfile.TemporaryDirectory() as logdir:
        writer = EventFileWriter(logdir, max_queue_size=1000)
        start = time.perf_counter()
        for i in range(scalars):
            value = summary_pb2.Summary.Value(tag=TAG, simple_value=float(i))
            writer.add_event(
                event_pb2.Event(
                    wall_time=time.time(), step=i, summary=summary_pb2.Summary(value=[value])
                )
            )
        writer.flush()
        elapsed = time.perf_counter() - start
        writer.close()
    return scalars / elapsed


def drive(ns: argparse.Namespace) -> int:
    with tempfile.TemporaryDirectory() as tmp:
        workspace = Path(tmp)
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        me = [sys.executable, str(Path(__file__).resolve())]
        tls = ["--kits", str(provision_kits(workspace / "deploy"))] if ns.tls else []
        server = subprocess.Popen(
            [*me, "--role", "server", "--workspace", tmp, *tls],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, env=env,
        )  # fmt: skip
        try:
            assert server.stdout is not None and server.stdin is not None
            line = server.stdout.readline()
            if not line.startswith("READY"):
                raise SystemExit(f"server did not start: {line!r}")
            port = int(line.split()[1])
            client = subprocess.Popen(
                [*me, "--role", "client", "--workspace", tmp, "--port", str(port),
                 "--scalars", str(ns.scalars), "--paced", str(ns.paced), "--paced-rate", str(ns.paced_rate), *tls],
                stdout=subprocess.PIPE, text=True, env=env,
            )  # fmt: skip
            folder = workspace / "server" / JOB / "tb_events" / SITE
            seen = watch(folder, ns.scalars + ns.paced, timeout=ns.timeout)
            out, _ = client.communicate(timeout=60)
            client_report = json.loads(out.strip().splitlines()[-1])
            server.stdin.close()
            server.wait(timeout=30)
            complete = verify(folder, ns.scalars + ns.paced)
        finally:
            if server.poll() is None:
                server.kill()

    flood = [seen[i] for i in range(ns.scalars)]
    paced = [seen[i] for i in range(ns.scalars, ns.scalars + ns.paced)]
    first_call = client_report["start"]
    last_readable = max(readable for _, readable in flood)
    rate = ns.scalars / (last_readable - first_call)
    flood_latency = [readable - logged for logged, readable in flood]
    paced_latency = [readable - logged for logged, readable in paced]
    ceiling = torch_ceiling(ns.scalars)
    event_file_writer = tensorboard_writer_rate(ns.scalars)
    result: dict[str, Any] = {
        "benchmark": "streaming_throughput",
        "scalars": ns.scalars,
        "link": "mutual TLS (a deployment's)" if ns.tls else "plain gRPC on loopback (the simulator's)",
        "throughput_per_s": round(rate),
        "loop_calls_per_s": round(ns.scalars / (client_report["calls_done"] - first_call)),
        "flood_latency_p50_s": round(percentile(flood_latency, 0.5), 3),
        "flood_latency_p99_s": round(percentile(flood_latency, 0.99), 3),
        "paced_rate_per_s": ns.paced_rate,
        "paced_scalars": ns.paced,
        "latency_p50_s": round(percentile(paced_latency, 0.5), 3),
        "latency_p99_s": round(percentile(paced_latency, 0.99), 3),
        "latency_max_s": round(max(paced_latency), 3),
        "torch_summarywriter_per_s": round(ceiling),
        "fraction_of_torch": round(rate / ceiling, 2),
        "tensorboard_eventfilewriter_per_s": round(event_file_writer),
        "all_records_once_in_order": complete and client_report["unacked"] == 0,
        "bars": {
            "throughput_per_s": BAR_RATE,
            "latency_p50_s": BAR_P50_S,
            "latency_p99_s": BAR_P99_S,
        },
    }
    result["pass"] = (
        rate >= BAR_RATE
        and result["latency_p50_s"] <= BAR_P50_S
        and result["latency_p99_s"] <= BAR_P99_S
        and result["all_records_once_in_order"]
    )
    print(json.dumps(result, indent=2))
    return 0 if result["pass"] else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--role", choices=["driver", "server", "client"], default="driver")
    parser.add_argument("--workspace")
    parser.add_argument("--port", type=int)
    parser.add_argument("--scalars", type=int, default=300_000)
    parser.add_argument("--paced", type=int, default=50_000)
    parser.add_argument("--paced-rate", type=int, default=10_000)
    parser.add_argument("--timeout", type=float, default=120.0)
    parser.add_argument("--tls", action="store_true", help="over mutual TLS, as a deployment runs")
    parser.add_argument("--kits", type=Path, help=argparse.SUPPRESS)
    ns = parser.parse_args()
    if ns.role == "server":
        run_server(Path(ns.workspace), ns.kits)
        return 0
    if ns.role == "client":
        run_client(Path(ns.workspace), ns.port, ns.scalars, ns.paced, ns.paced_rate, ns.kits)
        return 0
    return drive(ns)


if __name__ == "__main__":
    sys.exit(main())
