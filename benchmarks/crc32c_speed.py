"""Checksums of event-file records: the native google-crc32c against the numpy batch
fallback, per record, on scalar events as TBAnalyticsReceiver writes them, and on
64 KiB records (an image).

    python benchmarks/crc32c_speed.py
"""

from __future__ import annotations

import json
import sys
import time

from tensorboard.compat.proto import event_pb2, summary_pb2

from flconfig.tracking import crc32c


def per_record_us(fn, buffers: list[bytes], repeat: int = 20) -> float:  # type: ignore[no-untyped-def]
    fn(buffers)
    start = time.perf_counter()
    for _ in range(repeat):
        fn(buffers)
    return (time.perf_counter() - start) / repeat / len(buffers) * 1e6


def main() -> int:
    scalars = [event_pb2.Event(wall_time=1.7e9 + i, step=i, summary=summary_pb2.Summary(
        value=[summary_pb2.Summary.Value(tag="train_loss", simple_value=0.1 * i)])).SerializeToString()
        for i in range(2000)]
    large = [bytes([i % 251]) * 65536 for i in range(20)]
    native = crc32c.masked_crc32c_many if crc32c.NATIVE else None
    result = {
        "benchmark": "crc32c_speed",
        "native_available": crc32c.NATIVE,
        "scalar_native_us": round(per_record_us(native, scalars), 3) if native else None,
        "scalar_numpy_us": round(per_record_us(crc32c.masked_crc32c_many_numpy, scalars), 3),
        "64KiB_native_us": round(per_record_us(native, large, 5), 1) if native else None,
        "64KiB_fallback_us": round(per_record_us(crc32c.masked_crc32c_many_numpy, large, 1), 1),
    }
    assert native is None or native(scalars) == crc32c.masked_crc32c_many_numpy(scalars)
    print(json.dumps(result, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
