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
"""

from __future__ import annotations

import base64
import binascii
import math
import numbers
import operator
import struct
from collections.abc import Mapping
from typing import Any

from ..transport.contract import JSON_ENCODER, MAX_RECORD_BYTES

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


# --------------------------------------------------------------------------- call-site checks
# Used by the sender at the call site: a wrong value fails where it is logged,
# with the tag in the message, not later on a background thread.


def _type_name(value: object) -> str:
    return type(value).__name__


def check_tag(tag: object, what: str = "tag") -> str:
    """Return ``tag`` if it is a non-empty str without NUL, else raise."""
    if type(tag) is not str:
        if not isinstance(tag, str):
            raise TypeError(f"{what} must be a str, got {_type_name(tag)} {tag!r}")
        tag = str(tag)
    if not tag or "\x00" in tag or len(tag) > MAX_TAG:
        raise ValueError(f"{what} {tag[:80]!r} must be 1 to {MAX_TAG} characters without NUL")
    return tag


def as_number(tag: str, value: object, what: str = "scalar_value") -> int | float:
    """A Python int or float from a number, numpy scalar or one-element tensor.

    Raises ``TypeError`` naming ``tag`` for anything else (strings, lists,
    tensors with several elements, complex numbers).
    """
    t = type(value)
    if t is float:
        return value  # type: ignore[return-value]
    if t is int or t is bool:
        return _int_number(tag, value, what)  # type: ignore[arg-type]
    item = getattr(value, "item", None)
    if item is not None and not isinstance(value, (str, bytes)):
        try:
            size = getattr(value, "size", 1)
            size = size() if callable(size) else size  # torch: size() is the shape
            numel = getattr(value, "numel", None)
            if callable(numel):
                size = numel()
            if size != 1:
                raise ValueError
            value = item()
        except Exception:
            shape = getattr(value, "shape", None)
            raise TypeError(
                f"{what} of {tag!r} must be a number or a one-element tensor/array, "
                f"got {_type_name(value)} of shape {tuple(shape) if shape is not None else '?'}"
            ) from None
        t = type(value)
        if t is float:
            return value  # type: ignore[return-value]
        if t is int or t is bool:
            return _int_number(tag, value, what)  # type: ignore[arg-type]
    if isinstance(value, numbers.Real) and not isinstance(value, bool):
        try:
            return float(value)
        except OverflowError:
            raise ValueError(f"{what} of {tag!r} is too large for a float") from None
    raise TypeError(
        f"{what} of {tag!r} must be a number (int, float, numpy scalar or 0-d tensor), "
        f"got {_type_name(value)} {str(value)[:80]!r}"
    )


def _int_number(tag: str, value: int, what: str) -> int | float:
    # Ints travel as JSON ints; one beyond what a float holds exactly travels as a float.
    if -(2**53) <= value <= 2**53:
        return int(value)
    try:
        return float(value)
    except OverflowError:
        raise ValueError(f"{what} of {tag!r} is too large for a float") from None


def as_step(tag: str, step: object) -> int | None:
    """``None`` or an int >= 0 from an int, numpy integer or 0-d integer tensor."""
    if step is None:
        return None
    if type(step) is not int:
        if isinstance(step, bool):
            raise TypeError(f"global_step of {tag!r} must be an int, got bool")
        try:
            step = operator.index(step)  # type: ignore[arg-type]
        except TypeError:
            item = getattr(step, "item", None)
            value = None
            if item is not None:
                try:
                    value = item()
                except Exception:
                    value = None
            if type(value) is not int:
                raise TypeError(
                    f"global_step of {tag!r} must be an int, got {_type_name(step)} {str(step)[:40]!r}"
                ) from None
            step = value
    if not 0 <= step <= MAX_STEP:  # type: ignore[operator]
        raise ValueError(f"global_step of {tag!r} must be >= 0, got {step}")
    return step  # type: ignore[return-value]


def as_walltime(tag: str, walltime: object) -> float:
    """The wall time as a float (seconds since the epoch, below :data:`MAX_WALL_TIME`)."""
    value = as_number(tag, walltime, "walltime")
    if not _is_wall_time(value):
        raise ValueError(
            f"walltime of {tag!r} must be seconds since the epoch, 0 to {MAX_WALL_TIME:g}, got {value}"
        )
    return float(value)


def _is_wall_time(value: object) -> bool:
    # The one rule for both ends (math.isfinite also refuses NaN).
    return (isinstance(value, (int, float)) and _is_number(value) and math.isfinite(value)
            and 0 <= value < MAX_WALL_TIME)




def check_size(kind: str, tag: str, value: Any) -> None:
    """Raise ``ValueError`` if a record of this value would exceed :data:`MAX_RECORD_BYTES`
    as it travels (the step, wall time and transport fields included)."""
    record = {"event_type": "x" * MAX_EVENT_TYPE, "kind": kind, "tag": tag, "value": value,
              "step": MAX_STEP, "wall_time": MAX_WALL_TIME, "seq": MAX_STEP}
    size = len(JSON_ENCODER.encode(record).encode("utf-8"))
    if size > MAX_RECORD_BYTES:
        raise ValueError(
            f"the {kind} record {tag[:80]!r} is {size:,} bytes as sent; records are limited to "
            f"{MAX_RECORD_BYTES:,} bytes (split it, or log a smaller one)"
        )


def as_series(tag: str, values: object) -> dict[str, int | float]:
    """``add_scalars``' dict: non-empty, str keys, number values (copied)."""
    if not isinstance(values, Mapping):
        raise TypeError(
            f"tag_scalar_dict of {tag!r} must be a dict of series name to number, "
            f"got {_type_name(values)}"
        )
    if not values or len(values) > MAX_SERIES:
        raise ValueError(f"tag_scalar_dict of {tag!r} must hold 1 to {MAX_SERIES} series")
    out: dict[str, int | float] = {}
    for key, value in values.items():
        check_tag(key, f"series name in {tag!r}")
        out[key] = as_number(tag, value, f"value of series {key!r}")
    return out


def as_text(tag: str, text: object) -> str:
    if not isinstance(text, str):
        raise TypeError(f"text_string of {tag!r} must be a str, got {_type_name(text)}")
    if len(text) > MAX_TEXT:
        raise ValueError(f"text_string of {tag!r} is longer than {MAX_TEXT} characters")
    return str(text)


def _to_numpy(tag: str, what: str, value: Any) -> Any:
    import numpy as np

    # A torch tensor, recognised without importing torch.
    if hasattr(value, "detach") and hasattr(value, "cpu"):
        value = value.detach().cpu()
        if str(getattr(value, "dtype", "")) == "torch.bfloat16":
            value = value.float()
        value = value.numpy()
    try:
        return np.array(value, copy=True)  # a copy: training may change the tensor next step
    except Exception as exc:
        raise TypeError(
            f"{what} of {tag!r} must be an array or tensor, got {_type_name(value)} ({exc})"
        ) from None


def image_to_hwc(tag: str, img_tensor: Any, dataformats: str) -> Any:
    """An image as a ``uint8`` array of shape (H, W, C), C in 1, 3, 4 (torch's rules).

    ``dataformats`` is ``"CHW"`` (default), ``"HWC"`` or ``"HW"``. Float
    images are in [0, 1] and scaled by 255; integer images are clipped to
    [0, 255].
    """
    import numpy as np

    if not isinstance(dataformats, str) or dataformats.upper() not in ("CHW", "HWC", "HW"):
        raise ValueError(
            f"dataformats of {tag!r} must be 'CHW', 'HWC' or 'HW', got {dataformats!r}"
        )
    fmt = dataformats.upper()
    arr = _to_numpy(tag, "img_tensor", img_tensor)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"img_tensor of {tag!r} must hold numbers, got dtype {arr.dtype}")
    if arr.ndim != len(fmt):
        raise ValueError(
            f"img_tensor of {tag!r} has shape {arr.shape}, which does not match dataformats {fmt!r}"
        )
    if fmt == "HW":
        arr = arr[:, :, None]
    elif fmt == "CHW":
        arr = arr.transpose(1, 2, 0)
    height, width, channels = arr.shape
    if channels not in (1, 3, 4):
        raise ValueError(f"img_tensor of {tag!r} has {channels} channels; use 1, 3 or 4")
    if not (0 < height <= MAX_IMAGE_SIDE and 0 < width <= MAX_IMAGE_SIDE):
        raise ValueError(f"img_tensor of {tag!r} has size {height}x{width}")
    if arr.dtype == np.uint8:
        out = arr
    elif arr.dtype.kind == "f":
        out = np.clip(np.nan_to_num(arr.astype(np.float32) * 255.0), 0, 255).astype(np.uint8)
    else:
        out = np.clip(arr, 0, 255).astype(np.uint8)
    return np.ascontiguousarray(out)


def encode_image(hwc: Any) -> dict[str, Any]:
    """The record value of an image: a base64 PNG with its size."""
    import io

    try:
        from PIL import Image
    except ImportError as exc:  # pragma: no cover - tensorboard setups have Pillow
        raise ImportError("add_image needs Pillow: pip install pillow") from exc

    height, width, channels = hwc.shape
    mode = {1: "L", 3: "RGB", 4: "RGBA"}[channels]
    image = Image.fromarray(hwc[:, :, 0] if channels == 1 else hwc, mode=mode)
    buf = io.BytesIO()
    image.save(buf, format="PNG", compress_level=1)
    return {
        "format": "png",
        "height": int(height),
        "width": int(width),
        "channels": int(channels),
        "data": base64.b64encode(buf.getvalue()).decode("ascii"),
    }


def _tensorflow_bins() -> list[float]:
    # TensorFlow's default histogram buckets (torch's SummaryWriter.default_bins).
    v = 1e-12
    buckets: list[float] = []
    while v < 1e20:
        buckets.append(v)
        v *= 1.1
    return [-b for b in reversed(buckets)] + [0.0] + buckets


_TF_BINS: list[float] | None = None


def histogram_value(
    tag: str, values: Any, bins: Any = "tensorflow", max_bins: int | None = None
) -> dict[str, Any]:
    """TensorBoard's histogram of ``values`` (torch's ``make_histogram``), as a record value."""
    import numpy as np

    global _TF_BINS
    arr = _to_numpy(tag, "values", values)
    if arr.dtype.kind not in "biuf":
        raise TypeError(f"values of {tag!r} must hold numbers, got dtype {arr.dtype}")
    arr = arr.astype(np.float64).reshape(-1)
    if arr.size == 0:
        raise ValueError(f"values of {tag!r} is empty")
    if not np.isfinite(arr).all():
        raise ValueError(f"values of {tag!r} contain NaN or infinity")
    if isinstance(bins, str) and bins == "tensorflow":
        if _TF_BINS is None:
            _TF_BINS = _tensorflow_bins()
        bins = _TF_BINS
    if max_bins is not None and (
        isinstance(max_bins, bool) or not isinstance(max_bins, int) or max_bins < 1
    ):
        raise ValueError(f"max_bins of {tag!r} must be an int >= 1 or None, got {max_bins!r}")
    try:
        counts, limits = np.histogram(arr, bins=bins)
    except (TypeError, ValueError) as exc:
        raise ValueError(f"bins of {tag!r}: {exc}") from None
    num_bins = len(counts)
    if max_bins is not None and num_bins > max_bins:
        sub = num_bins // max_bins
        rem = num_bins % sub
        if rem:
            counts = np.pad(counts, (0, sub - rem))
        counts = counts.reshape(-1, sub).sum(axis=-1)
        new_limits = np.empty(counts.size + 1, limits.dtype)
        new_limits[:-1] = limits[:-1:sub]
        new_limits[-1] = limits[-1]
        limits = new_limits
    # Keep the support only; TensorBoard reads right edges, so keep one empty
    # bucket on the left to carry the leftmost edge.
    cum = np.cumsum(np.greater(counts, 0))
    start, end = np.searchsorted(cum, [0, cum[-1] - 1], side="right")
    start, end = int(start), int(end) + 1
    counts = counts[start - 1 : end] if start > 0 else np.concatenate([[0], counts[:end]])
    limits = limits[start : end + 1]
    if len(limits) > MAX_BUCKETS:
        raise ValueError(f"histogram of {tag!r} has {len(limits)} buckets; pass max_bins")
    return {
        "min": float(arr.min()),
        "max": float(arr.max()),
        "num": int(arr.size),
        "sum": float(arr.sum()),
        "sum_squares": float(arr.dot(arr)),
        "bucket_limits": [float(x) for x in limits],
        "bucket_counts": [float(x) for x in counts],
    }


def _hparam_value(tag: str, name: str, value: Any) -> bool | float | str | None:
    if value is None or isinstance(value, bool):
        return value
    if isinstance(value, str):
        if len(value) > MAX_TAG:
            raise ValueError(f"hparam {name!r} of {tag!r} is longer than {MAX_TAG} characters")
        return str(value)
    # Numbers as floats: TensorBoard keeps them as float64, and a domain must hold
    # values of its hparam's type.
    number = as_number(tag, value, f"hparam {name!r}")
    if not math.isfinite(number) or abs(number) >= 2**64:
        raise ValueError(f"hparam {name!r} of {tag!r} must be a finite number, got {number}")
    return float(number)


def hparams_value(
    hparam_dict: object, metric_dict: object, hparam_domain_discrete: object, run_name: str
) -> dict[str, Any]:
    """The record value of ``add_hparams`` (``None`` hyperparameters are left out, as torch does)."""
    if not isinstance(hparam_dict, Mapping):
        raise TypeError(
            f"hparam_dict of {run_name!r} must be a dict, got {_type_name(hparam_dict)}"
        )
    if not isinstance(metric_dict, Mapping):
        raise TypeError(
            f"metric_dict of {run_name!r} must be a dict, got {_type_name(metric_dict)}"
        )
    if len(hparam_dict) > MAX_HPARAMS or len(metric_dict) > MAX_HPARAMS:
        raise ValueError(f"add_hparams {run_name!r}: at most {MAX_HPARAMS} hparams and metrics")
    hparams: dict[str, Any] = {}
    for name, value in hparam_dict.items():
        check_tag(name, f"hparam name in {run_name!r}")
        v = _hparam_value(run_name, name, value)
        if v is not None:
            hparams[name] = v
    metrics = {
        check_tag(name, f"metric name in {run_name!r}"): as_number(
            run_name, value, f"metric {name!r}"
        )
        for name, value in metric_dict.items()
    }
    domains: dict[str, list[Any]] = {}
    if hparam_domain_discrete is not None:
        if not isinstance(hparam_domain_discrete, Mapping):
            raise TypeError(f"hparam_domain_discrete of {run_name!r} must be a dict")
        for name, values in hparam_domain_discrete.items():
            if name not in hparams or not isinstance(values, (list, tuple)):
                raise TypeError(
                    f"hparam_domain_discrete[{name!r}] of {run_name!r} must be a list and "
                    "name a hyperparameter of hparam_dict"
                )
            if len(values) > MAX_HPARAMS:
                raise ValueError(f"hparam_domain_discrete[{name!r}] of {run_name!r} holds more "
                                 f"than {MAX_HPARAMS} values")
            domain = [_hparam_value(run_name, name, v) for v in values]
            if not all(type(v) is type(hparams[name]) for v in domain):
                raise TypeError(
                    f"hparam_domain_discrete[{name!r}] of {run_name!r} must hold values of the "
                    f"hparam's type ({type(hparams[name]).__name__})"
                )
            domains[name] = domain
    return {"hparams": hparams, "metrics": metrics, "domains": domains}


# --------------------------------------------------------------------------- network checks
# Used by the receiving side on records from the network: return a clean copy
# or raise ValueError saying what is wrong. Never trust a field's type.


def _is_number(value: object) -> bool:
    t = type(value)
    # JSON ints have no bound; one that no float can hold is refused here.
    return t is float or (t is int and -(2**64) < value < 2**64)  # type: ignore[operator]


def _check_name(value: object, what: str, limit: int = MAX_TAG) -> str:
    if type(value) is not str or not value or len(value) > limit or "\x00" in value:
        raise ValueError(f"{what} must be a non-empty str of at most {limit} characters")
    return value


def _check_number_dict(value: object, what: str, limit: int, allow_empty: bool) -> dict[str, Any]:
    if type(value) is not dict or len(value) > limit or (not value and not allow_empty):
        raise ValueError(f"{what} must be an object of at most {limit} numbers")
    for key, item in value.items():
        _check_name(key, f"a key of {what}")
        if not _is_number(item):
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
        if not _is_number(value[key]):
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
    if not all(map(_is_number, limits)) or not all(map(_is_number, counts)):
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
        if not (_is_number(item) or type(item) in (bool, str)):
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
        raise ValueError(f"a record must be an object, got {_type_name(record)}")
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
        if not _is_number(value):
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
    if wall_time is not None and not _is_wall_time(wall_time):
        raise ValueError(f"wall_time of {tag[:80]!r} must be null or seconds since the epoch")
    return {
        "event_type": event_type,
        "kind": kind,
        "tag": tag,
        "value": value,
        "step": step,
        "wall_time": wall_time,
    }
