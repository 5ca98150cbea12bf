"""A model far larger than one gRPC message, sent to a site and back (issue 8: chunked models).

    python benchmarks/big_model.py [--mb 320] [--repeat 3]

One CommServer and one CommClient in this process, over real gRPC on
127.0.0.1: the server sends a task whose model is ``--mb`` MB of float32
(streamed to the site in chunks with FetchModel), the site returns the same
params (streamed back with PushResult), and the server checks every value.
Reports the time of each round trip, the throughput (both directions
counted) and the process's peak RSS.
"""

from __future__ import annotations

import argparse
import resource
import statistics
import sys
import threading
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from flconfig.transport import contract  # noqa: E402
from flconfig.transport.client import END, CommClient, Task  # noqa: E402
from flconfig.transport.codec import encode_model  # noqa: E402
from flconfig.transport.server import CommServer  # noqa: E402
from flconfig.types import FLModel  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--mb", type=int, default=320, help="model size in MB (float32)")
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()

    n = args.mb * 1_000_000 // 4
    model = FLModel(params={"w": np.arange(n, dtype=np.float32)})
    frame_bytes = len(encode_model(model))
    server = CommServer({"site-1": "token-1"}).start()
    client = CommClient(server.address, "site-1", "token-1")
    client.connect(timeout=10)

    def site() -> None:
        while (task := client.get_task()) is not END:
            assert isinstance(task, Task)
            client.submit_result(task, FLModel(params=task.data.params))
        client.close(timeout=5)

    worker = threading.Thread(target=site, daemon=True)
    worker.start()
    times = []
    try:
        for i in range(args.repeat):
            start = time.perf_counter()
            result = server.send_and_wait("train", model, "site-1", timeout=600)
            elapsed = time.perf_counter() - start
            if not np.array_equal(result.params["w"], model.params["w"]):
                print("FAILED: the model came back changed")
                return 1
            times.append(elapsed)
            print(f"round trip {i + 1}: {elapsed:.2f} s")
    finally:
        server.end_run(timeout=10)
        worker.join(10)
        server.stop()
    median = statistics.median(times)
    rss_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print(
        f"model frame {frame_bytes / 1e6:.0f} MB ({frame_bytes / contract.CHUNK_BYTES:.0f} chunks "
        f"of {contract.CHUNK_BYTES // 2**20} MiB; gRPC message limit "
        f"{contract.DEFAULT_MAX_MESSAGE_MB} MiB): median round trip {median:.2f} s, "
        f"{2 * frame_bytes / median / 1e6:.0f} MB/s both directions counted, "
        f"peak RSS {rss_mb:.0f} MB (server and site in one process)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
