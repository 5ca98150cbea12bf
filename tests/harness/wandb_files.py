"""Reading back the run files W&B writes offline (``run-*.wandb``): its records, in order.

W&B keeps a run as a LevelDB-style log (a 7-byte header ``:W&B`` + magic + version, then
32 KiB blocks of records: crc32, length, type — full, first, middle, last — and data), each
record a ``wandb_internal_pb2.Record``. wandb 0.31 ships no Python reader of it.
"""

from __future__ import annotations

import json
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

_BLOCK = 32768
_HEADER = struct.Struct("<IHB")


def _chunks(data: bytes) -> Iterator[bytes]:
    if data[:4] != b":W&B":
        raise ValueError("not a W&B run file")
    pos, pending = 7, b""
    while pos + _HEADER.size <= len(data):
        left = _BLOCK - pos % _BLOCK
        if left < _HEADER.size:
            pos += left
            continue
        _crc, length, kind = _HEADER.unpack_from(data, pos)
        chunk = data[pos + _HEADER.size:pos + _HEADER.size + length]
        pos += _HEADER.size + length
        if kind == 1:
            yield chunk
        elif kind == 2:
            pending = chunk
        elif kind == 3:
            pending += chunk
        elif kind == 4:
            yield pending + chunk
            pending = b""


def runs(folder: Path) -> dict[str, dict[str, Any]]:
    """``{run name: {"group": ..., "config": {...}, "history": [{key: value}, ...]}}`` of the
    offline runs under ``folder``."""
    from wandb.proto import wandb_internal_pb2 as pb

    out: dict[str, dict[str, Any]] = {}
    for file in sorted(folder.rglob("run-*.wandb")):
        run: dict[str, Any] = {"history": [], "config": {}}
        for raw in _chunks(file.read_bytes()):
            record = pb.Record()
            record.ParseFromString(raw)
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"], run["group"] = record.run.display_name, record.run.run_group
                for item in record.run.config.update:
                    run["config"][item.key] = json.loads(item.value_json)
            elif kind == "history":
                run["history"].append({item.key or "/".join(item.nested_key): json.loads(item.value_json)
                                       for item in record.history.item})
        out[run.get("name", file.name)] = run
    return out
