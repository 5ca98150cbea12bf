"""TensorBoard event files read record by record, checksums checked: a torn or corrupt one fails."""

from __future__ import annotations

from pathlib import Path


def read_event_file(path: Path) -> list[bytes]:
    """The records of a TensorFlow record file; AssertionError on a torn or corrupt one."""
    from flconfig.tracking.crc32c import masked_crc32c

    data = path.read_bytes()
    out, i = [], 0
    while i < len(data):
        assert i + 12 <= len(data), f"torn record header at byte {i} of {path}"
        length = int.from_bytes(data[i:i + 8], "little")
        assert int.from_bytes(data[i + 8:i + 12], "little") == masked_crc32c(data[i:i + 8])
        end = i + 12 + length + 4
        assert end <= len(data), f"torn record at byte {i} of {path}"
        payload = data[i + 12:i + 12 + length]
        assert int.from_bytes(data[end - 4:end], "little") == masked_crc32c(payload)
        out.append(payload)
        i = end
    return out
