"""Analytics records: what a sender logs, what travels, what a receiver saves.

A record is a plain, JSON-safe dict::

    {"event_type": "analytix_log_stats",  # the event that carries it
     "kind": "scalar",                     # scalar | scalars | text | image | histogram | hparams
     "tag": "train_loss",
     "value": 0.25,                        # depends on the kind, see below
     "step": 12,                           # int >= 0, or None
     "wall_time": 1718000000.5}            # seconds since the epoch, when it was logged

``value`` by kind:

``scalar``
    an int or float (NaN and infinities allowed, as TensorBoard shows them).
``scalars``
    ``{series name: number}``; ``tag`` is the main tag (``add_scalars``).
``text``
    a str.
``image``
    ``{"format": "png", "height": H, "width": W, "channels": 1|3|4,
    "data": base64 of the PNG}``, encoded on the sending site.
``histogram``
    ``{"min", "max", "num", "sum", "sum_squares", "bucket_limits",
    "bucket_counts"}``: TensorBoard's histogram, computed on the sending site
    (``bucket_limits[i]`` is the right edge of bucket ``i``).
``hparams``
    ``{"hparams": {name: bool|int|float|str}, "metrics": {name: number},
    "domains": {name: [values]}}``; ``tag`` is the run name (``add_hparams``'s
    ``run_name``, default ``"hparams"``).

The data of an analytics event is an :class:`AnalyticsBatch`: a list of such
records, in the order they were logged. :func:`clean_record` checks a record
that came from the network, where nothing can be trusted.

This module holds the format: the kinds, keys and limits, and the checks of a
record. What a learner logs becomes a record value in
:mod:`~flconfig.tracking.logged_values` (numbers, text, hyperparameters),
:mod:`~flconfig.tracking.images` and :mod:`~flconfig.tracking.histograms`.
"""

from __future__ import annotations

import base64
import binascii
import math
import struct
from collections.abc import Mapping
from typing import Any

#: The local event a sender fires (FLARE's name).
ANALYTICS_EVENT = "analytix_log_stats"

SCALAR = "scalar"
SCALARS = "scalars"
TEXT = "text"
IMAGE = "image"
HISTOGRAM = "histogram"
HPARAMS = "hparams"
#: Every record kind, in the order the list above gives them.
KINDS = (SCALAR, SCALARS, TEXT, IMAGE, HISTOGRAM, HPARAMS)

#: The keys of an analytics record.
RECORD_KEYS = frozenset({"event_type", "kind", "tag", "value", "step", "wall_time"})
#: The keys of a record carrying any other event's data (see :mod:`flconfig.runtime.fed_events`).
GENERIC_KEYS = frozenset({"event_type", "data"})
#: Keys the transport adds and the receiving side ignores.
TRANSPORT_KEYS = frozenset({"seq"})

# Limits on what a site may send: generous for real use, small enough that a
# hostile or broken site cannot make the server write without bound.
MAX_EVENT_TYPE = 256
MAX_TAG = 1024
MAX_SERIES = 1000
MAX_TEXT = 4 * 1024 * 1024
MAX_IMAGE_BYTES = 32 * 1024 * 1024
MAX_IMAGE_SIDE = 16384
MAX_BUCKETS = 10_000
MAX_HPARAMS = 1000
MAX_STEP = 2**63 - 1
#: Wall times are seconds since the epoch below this (the year 5138).
MAX_WALL_TIME = 1e11

_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"


class AnalyticsBatch(list):  # type: ignore[type-arg]
    """The data of one analytics event: records (dicts) in the order they were logged.

    A plain list to every handler and to JSON; its type tells
    :func:`flconfig.runtime.fed_events.event_to_records` that the event carries
    records to forward one by one. Handlers must not modify it: the same
    object reaches every handler on the site.
    """

    __slots__ = ()


# --------------------------------------------------------------------------- checks of records
# Used by the receiving side on records from the network: return a clean copy
# or raise ValueError saying what is wrong. Never trust a field's type. The
# sender checks what is logged with the same rules (logged_values).


def is_number(value: object) -> bool:
    """Whether ``value`` is a record's number: a float, or an int of magnitude below 2**64."""
    t = type(value)
    # JSON ints have no bound; one that no float can hold is refused here.
    return t is float or (t is int and -(2**64) < value < 2**64)  # type: ignore[operator]


def is_wall_time(value: object) -> bool:
    """Whether ``value`` is a record's wall time: seconds since the epoch, 0 to
    :data:`MAX_WALL_TIME` (the one rule for both ends; NaN is refused)."""
    return (isinstance(value, (int, float)) and is_number(value) and math.isfinite(value)
            and 0 <= value < MAX_WALL_TIME)


def _check_name(value: object, what: str, limit: int = MAX_TAG) -> str:
    if type(value) is not str or not value or len(value) > limit or "\x00" in value:
        raise ValueError(f"{what} must be a non-empty str of at most {limit} characters")
    return value


def _check_number_dict(value: object, what: str, limit: int, allow_empty: bool) -> dict[str, Any]:
    if type(value) is not dict or len(value) > limit or (not value and not allow_empty):
        raise ValueError(f"{what} must be an object of at most {limit} numbers")
    for key, item in value.items():
        _check_name(key, f"a key of {what}")
        if not is_number(item):
            raise ValueError(f"{what}[{key[:40]!r}] must be a number")
    return value


def png_size(data: bytes) -> tuple[int, int]:
    """(width, height) from a PNG's IHDR chunk; ValueError if it is not a PNG."""
    if len(data) < 24 or not data.startswith(_PNG_SIGNATURE) or data[12:16] != b"IHDR":
        raise ValueError("image data is not a PNG")
    width, height = struct.unpack(">II", data[16:24])
    return width, height


def decode_image_value(value: Mapping[str, Any]) -> bytes:
    """The PNG bytes of an image record value (checked)."""
    try:
        png = base64.b64decode(value["data"], validate=True)
    except (binascii.Error, ValueError, TypeError):
        raise ValueError("image data is not valid base64") from None
    if png_size(png) != (value["width"], value["height"]):
        raise ValueError("image width/height do not match the PNG")
    return png


def _check_image(value: object) -> None:
    if type(value) is not dict or set(value) != {"format", "height", "width", "channels", "data"}:
        raise ValueError("an image value must have exactly format, height, width, channels, data")
    if value["format"] != "png":
        raise ValueError("image format must be 'png'")
    for key in ("height", "width"):
        if type(value[key]) is not int or not 0 < value[key] <= MAX_IMAGE_SIDE:
            raise ValueError(f"image {key} must be an int in 1..{MAX_IMAGE_SIDE}")
    if value["channels"] not in (1, 3, 4) or type(value["channels"]) is not int:
        raise ValueError("image channels must be 1, 3 or 4")
    if type(value["data"]) is not str or len(value["data"]) > MAX_IMAGE_BYTES:
        raise ValueError(f"image data must be a base64 str of at most {MAX_IMAGE_BYTES} characters")
    decode_image_value(value)


_HISTOGRAM_KEYS = frozenset(
    {"min", "max", "num", "sum", "sum_squares", "bucket_limits", "bucket_counts"}
)


def _check_histogram(value: object) -> None:
    if type(value) is not dict or set(value) != _HISTOGRAM_KEYS:
        raise ValueError(
            f"a histogram value must have exactly {', '.join(sorted(_HISTOGRAM_KEYS))}"
        )
    for key in ("min", "max", "num", "sum", "sum_squares"):
        if not is_number(value[key]):
            raise ValueError(f"histogram {key} must be a number")
    limits, counts = value["bucket_limits"], value["bucket_counts"]
    if (
        type(limits) is not list
        or type(counts) is not list
        or not 0 < len(limits) <= MAX_BUCKETS
        or len(limits) != len(counts)
    ):
        raise ValueError(
            f"histogram bucket_limits and bucket_counts must be lists of equal length 1..{MAX_BUCKETS}"
        )
    if not all(map(is_number, limits)) or not all(map(is_number, counts)):
        raise ValueError("histogram buckets must be numbers")


_HPARAMS_KEYS = frozenset({"hparams", "metrics"})


def _check_hparams(value: object) -> None:
    if type(value) is not dict or not _HPARAMS_KEYS <= set(value) <= _HPARAMS_KEYS | {"domains"}:
        raise ValueError("an hparams value must have hparams, metrics and optionally domains")
    hparams = value["hparams"]
    if type(hparams) is not dict or len(hparams) > MAX_HPARAMS:
        raise ValueError(f"hparams must be an object of at most {MAX_HPARAMS} values")
    for key, item in hparams.items():
        _check_name(key, "an hparam name")
        if not (is_number(item) or type(item) in (bool, str)):
            raise ValueError(f"hparam {key[:40]!r} must be a bool, number or str")
        if type(item) is str and len(item) > MAX_TAG:
            raise ValueError(f"hparam {key[:40]!r} is longer than {MAX_TAG} characters")
    _check_number_dict(value["metrics"], "metrics", MAX_HPARAMS, allow_empty=True)
    domains = value.get("domains", {})
    if type(domains) is not dict:
        raise ValueError("hparams domains must be an object")
    for key, items in domains.items():
        if key not in hparams or type(items) is not list or len(items) > MAX_HPARAMS:
            raise ValueError(f"hparams domain {str(key)[:40]!r} must be a list for a known hparam")
        if not all(type(i) is type(hparams[key]) for i in items):
            raise ValueError(f"hparams domain {key[:40]!r} must hold values of the hparam's type")


def is_reserved_event(event_type: object) -> bool:
    """True for the system's own event names (``_start_run``, ``_end_run`` ...): FLARE's
    convention reserves names starting with ``_``. Such events stay on their site; no
    peer can deliver one."""
    return isinstance(event_type, str) and event_type.startswith("_")


def check_event_type(event_type: object) -> str:
    """Return ``event_type`` if a site may send it to the server, else raise ``ValueError``.

    The same rule on both ends: the sender refuses at the call what the server
    would refuse on arrival.
    """
    _check_name(event_type, "event_type", MAX_EVENT_TYPE)
    if is_reserved_event(event_type):
        raise ValueError(
            f"event type {str(event_type)[:80]!r} is reserved for the system (names starting "
            "with '_' are lifecycle events, local to their site); a site cannot send it"
        )
    return event_type  # type: ignore[return-value]


def clean_record(record: object) -> dict[str, Any]:
    """A checked copy of a record from the network, without transport keys.

    An analytics record (it has ``kind``) must follow the schema above; any
    other record must be ``{"event_type", "data"}``. Raises ``ValueError``
    saying what is wrong.
    """
    if type(record) is not dict:
        raise ValueError(f"a record must be an object, got {type(record).__name__}")
    keys = record.keys() - TRANSPORT_KEYS
    event_type = check_event_type(record.get("event_type"))
    if "kind" not in record:
        if keys != GENERIC_KEYS:
            raise ValueError(
                f"a record without 'kind' must have exactly the keys event_type and data, got {sorted(keys)[:8]}"
            )
        return {"event_type": event_type, "data": record["data"]}
    if not keys <= RECORD_KEYS:
        raise ValueError(f"unknown record keys {sorted(keys - RECORD_KEYS)[:8]}")
    kind = record["kind"]
    if kind not in KINDS or type(kind) is not str:
        raise ValueError(f"kind must be one of {', '.join(KINDS)}, got {str(kind)[:40]!r}")
    tag = _check_name(record.get("tag"), "tag")
    if "value" not in record:
        raise ValueError("the record has no value")
    value = record["value"]
    if kind == SCALAR:
        if not is_number(value):
            raise ValueError(f"the value of scalar {tag[:80]!r} must be a number")
    elif kind == SCALARS:
        _check_number_dict(
            value, f"the value of scalars {tag[:80]!r}", MAX_SERIES, allow_empty=False
        )
    elif kind == TEXT:
        if type(value) is not str or len(value) > MAX_TEXT:
            raise ValueError(
                f"the value of text {tag[:80]!r} must be a str of at most {MAX_TEXT} characters"
            )
    elif kind == IMAGE:
        _check_image(value)
    elif kind == HISTOGRAM:
        _check_histogram(value)
    else:
        _check_hparams(value)
    step = record.get("step")
    if step is not None and (type(step) is not int or not 0 <= step <= MAX_STEP):
        raise ValueError(f"step of {tag[:80]!r} must be null or an int >= 0")
    wall_time = record.get("wall_time")
    if wall_time is not None and not is_wall_time(wall_time):
        raise ValueError(f"wall_time of {tag[:80]!r} must be null or seconds since the epoch")
    return {
        "event_type": event_type,
        "kind": kind,
        "tag": tag,
        "value": value,
        "step": step,
        "wall_time": wall_time,
    }
