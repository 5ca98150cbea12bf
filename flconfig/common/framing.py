"""Length-prefixed frames over a socket: a JSON header and a binary payload.

A frame is a 4-byte big-endian length and a JSON object (the header), then a 4-byte
length and the payload (maybe empty). Both ends of the Client API's local channel
(:mod:`flconfig.compat.remote`) read and write frames with these functions, and only
with these. The reader bounds both lengths before it reads, so a peer cannot make it
allocate without limit.
"""

from __future__ import annotations

import json
import socket
import struct
from typing import Any

#: The largest header :func:`read_frame` takes unless told otherwise.
MAX_HEADER = 16 * 2**20
#: The largest payload :func:`read_frame` takes unless told otherwise.
MAX_PAYLOAD = 8 * 2**30

_LENGTH = struct.Struct(">I")


class ChannelClosed(Exception):
    """The other side went away, or sent what is not a frame."""


def _read_exact(sock: socket.socket, size: int) -> bytes:
    chunks, left = [], size
    while left:
        chunk = sock.recv(min(left, 2**20))
        if not chunk:
            raise ChannelClosed("the connection closed")
        chunks.append(chunk)
        left -= len(chunk)
    return b"".join(chunks)


def send_frame(sock: socket.socket, header: dict[str, Any], payload: bytes = b"") -> None:
    """Send one frame: ``header`` as compact JSON, then ``payload``."""
    body = json.dumps(header, separators=(",", ":")).encode()
    sock.sendall(_LENGTH.pack(len(body)) + body + _LENGTH.pack(len(payload)) + payload)


def read_frame(sock: socket.socket, max_header: int = MAX_HEADER,
               max_payload: int = MAX_PAYLOAD) -> tuple[dict[str, Any], bytes]:
    """Read one frame: its header (a JSON object) and its payload.

    Raises :class:`ChannelClosed` when the connection closes, or when a length is over
    its bound or the header is not a JSON object; ``ValueError`` when the header is not
    JSON.
    """
    (size,) = _LENGTH.unpack(_read_exact(sock, 4))
    if size > max_header:
        raise ChannelClosed(f"a frame header of {size} bytes")
    header = json.loads(_read_exact(sock, size))
    if not isinstance(header, dict):
        raise ChannelClosed("a frame header that is not an object")
    (length,) = _LENGTH.unpack(_read_exact(sock, 4))
    if length > max_payload:
        raise ChannelClosed(f"a payload of {length} bytes")
    return header, _read_exact(sock, length) if length else b""
