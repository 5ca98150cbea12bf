"""Wire formats: models and event records as bytes, and back.

No pickle anywhere: a peer may send anything, so every ``decode_*`` function
checks what it reads and raises :class:`ProtocolError` for bad input.

Model frame (:func:`encode_model`)::

    b"FLCM" | u16 version | u32 header length | UTF-8 JSON header | safetensors blob

The header holds ``meta``, ``metrics``, ``rc``, ``params_type``, the
parameter names in their original order, under ``torch`` the names of the arrays that
were torch tensors (they come back as tensors: a job exchanging PyTorch tensors end to
end gets tensors on both sides, as FLARE's tensor decomposers give them), and under
``plain`` the parameters
that are plain values rather than arrays (``None``, numbers, strings, lists and
dicts: scikit-learn settings such as ``{"n_clusters": 3}``); the blob holds the
arrays. Arrays inside ``meta`` (SCAFFOLD's control terms) travel in the blob too, under
the names ``header["meta_arrays"]`` lists, each replaced in the header's meta by
``{"__array__": name}``.

Record batch (:func:`encode_records`)::

    b"FLCR" | u16 version | UTF-8 JSON array of objects

Both travel in ``bytes`` fields of the messages of ``flconfig.proto``.

All integers are big-endian.
"""

from __future__ import annotations

import json
import math
import struct
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import numpy as np
from safetensors import SafetensorError, TensorSpec, deserialize, serialize

from ..errors import JobError
from ..types import FLModel, is_torch_tensor
from .contract import JSON_ENCODER

MODEL_MAGIC = b"FLCM"
RECORDS_MAGIC = b"FLCR"
VERSION = 1
#: Largest JSON header a peer may send; bigger ones are refused before parsing.
MAX_HEADER_BYTES = 16 * 1024 * 1024

_FRAME = struct.Struct(">4sHI")  # magic, version, header length
_RECORDS_PREFIX = struct.Struct(">4sH")  # magic, version
_MAX_JSON_DEPTH = 64

# safetensors dtype code -> numpy dtype (always little-endian, as the format is).
_NUMPY_DTYPES: dict[str, np.dtype] = {
    "F64": np.dtype("<f8"),
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "I64": np.dtype("<i8"),
    "U64": np.dtype("<u8"),
    "I32": np.dtype("<i4"),
    "U32": np.dtype("<u4"),
    "I16": np.dtype("<i2"),
    "U16": np.dtype("<u2"),
    "I8": np.dtype("i1"),
    "U8": np.dtype("u1"),
    "BOOL": np.dtype("?"),
    "C64": np.dtype("<c8"),
}
# numpy dtype name -> name safetensors' TensorSpec expects.
_NUMPY_SPEC_NAMES = {
    "float64", "float32", "float16", "int64", "uint64", "int32", "uint32",
    "int16", "uint16", "int8", "uint8", "bool", "complex64",
}  # fmt: skip
# dtypes numpy cannot hold: they travel from torch tensors and come back as torch tensors.
_TORCH_ONLY = {"bfloat16": "BF16", "float8_e4m3fn": "F8_E4M3", "float8_e5m2": "F8_E5M2"}
_TORCH_ONLY_BY_CODE = {code: name for name, code in _TORCH_ONLY.items()}


class ProtocolError(JobError):
    """Bytes from a peer are not a valid flconfig message."""


# --------------------------------------------------------------------------- JSON


def _json_path(path: str, key: object) -> str:
    return f"{path}[{key!r}]"


def find_unsendable(value: Any, path: str, depth: int = 0) -> None:
    """Raise ``TypeError`` naming the first part of ``value`` JSON cannot carry faithfully.

    Allowed: ``None``, ``bool``, ``int``, ``float``, ``str``, lists/tuples of
    those, and dicts with ``str`` keys.
    """
    if value is None or isinstance(value, (bool, int, float, str)):
        return
    if depth > _MAX_JSON_DEPTH:
        raise TypeError(f"{path} is nested more than {_MAX_JSON_DEPTH} levels deep")
    if isinstance(value, (list, tuple)):
        for i, item in enumerate(value):
            find_unsendable(item, f"{path}[{i}]", depth + 1)
        return
    if isinstance(value, dict):
        for key, item in value.items():
            if not isinstance(key, str):
                raise TypeError(f"{path} has the non-string key {key!r}; use str keys")
            find_unsendable(item, _json_path(path, key), depth + 1)
        return
    hint = ""
    if isinstance(value, (np.generic, np.ndarray)) or type(value).__module__.startswith("torch"):
        hint = " (convert numpy/torch values with float(), int() or .tolist())"
    raise TypeError(
        f"{path} is a {type(value).__name__}, which cannot be sent; "
        f"use None, bool, int, float, str, lists and dicts with str keys{hint}"
    )


_ENCODER = JSON_ENCODER  # one encoding for the wire and the sender's size check


def _dumps(value: Any) -> bytes:
    return _ENCODER.encode(value).encode("utf-8")


def _loads(data: bytes | bytearray, what: str) -> Any:
    try:
        return json.loads(data)
    except (ValueError, RecursionError) as exc:  # UnicodeDecodeError is a ValueError
        raise ProtocolError(f"{what}: invalid JSON ({exc})") from None


def _read_frame(data: bytes | bytearray | memoryview, magic: bytes, what: str) -> tuple[Any, memoryview]:
    """Split a ``magic | version | header length | header | body`` frame."""
    view = memoryview(data)
    if view.ndim != 1 or view.itemsize != 1:
        view = view.cast("B")
    if len(view) < _FRAME.size:
        raise ProtocolError(f"{what}: truncated ({len(view)} bytes, need at least {_FRAME.size})")
    got_magic, version, header_len = _FRAME.unpack_from(view)
    if got_magic != magic:
        # the bytes found are not echoed: a file read by mistake says nothing of its content
        raise ProtocolError(f"{what}: bad magic (not {magic.decode(errors='replace')!r} data)")
    if version != VERSION:
        raise ProtocolError(
            f"{what}: unsupported format version {version} (this side reads {VERSION})"
        )
    if header_len > MAX_HEADER_BYTES:
        raise ProtocolError(
            f"{what}: header of {header_len} bytes exceeds the {MAX_HEADER_BYTES}-byte limit"
        )
    end = _FRAME.size + header_len
    if len(view) < end:
        raise ProtocolError(
            f"{what}: truncated header ({len(view) - _FRAME.size} of {header_len} bytes)"
        )
    header = _loads(bytes(view[_FRAME.size : end]), what)
    if not isinstance(header, dict):
        raise ProtocolError(f"{what}: header is a JSON {type(header).__name__}, expected an object")
    return header, view[end:]


# --------------------------------------------------------------------------- models


def _param_array(name: str, value: Any) -> tuple[str, tuple[int, ...], np.ndarray]:
    """(safetensors dtype name, shape, contiguous little-endian bytes-holder) of one parameter."""
    where = f"params[{name!r}]"
    if is_torch_tensor(value):
        tensor = value.detach().cpu().resolve_conj().resolve_neg().contiguous()
        dtype_name = str(tensor.dtype).removeprefix("torch.")
        if dtype_name in _TORCH_ONLY:
            raw = tensor.reshape(-1).view(dtype=_torch().uint8).numpy()
            return dtype_name, tuple(tensor.shape), raw
        if tensor.layout != _torch().strided:
            raise TypeError(
                f"{where} is a {tensor.layout} tensor; send dense tensors (.to_dense())"
            )
        value = tensor.numpy()
    elif isinstance(value, np.generic):
        value = np.asarray(value)
    if not isinstance(value, np.ndarray):
        raise TypeError(
            f"{where} is a {type(value).__name__}; params must be numpy arrays or torch tensors"
        )
    if value.dtype.name not in _NUMPY_SPEC_NAMES:
        raise TypeError(f"{where} has dtype {value.dtype}, which safetensors cannot carry")
    arr = value if value.flags.c_contiguous else value.copy(order="C")
    if arr.dtype.byteorder == ">" or (arr.dtype.byteorder == "=" and not np.little_endian):
        arr = arr.astype(arr.dtype.newbyteorder("<"))
    return value.dtype.name, arr.shape, arr


def _torch() -> Any:
    import torch  # only models with torch tensors need it

    return torch


def _as_tensor(array: Any) -> Any:
    """A decoded array that was sent as a torch tensor, as one again (sharing its memory); an
    array stays one where torch is not installed, as nothing here could hold a tensor."""
    if not isinstance(array, np.ndarray):
        return array  # bf16/fp8: already a tensor
    try:
        torch = _torch()
    except ImportError:
        return array
    return torch.from_numpy(array)


#: Prefix of the blob names of arrays that live in a model's meta.
META_ARRAY_PREFIX = "__meta__/"
_ARRAY_REF = "__array__"


def _is_array(value: Any) -> bool:
    return isinstance(value, np.ndarray) or is_torch_tensor(value)


def _lift_arrays(value: Any, arrays: dict[str, Any], depth: int = 0) -> Any:
    """``value`` with its arrays (in dicts and lists) replaced by references into ``arrays``."""
    if _is_array(value):
        name = f"{META_ARRAY_PREFIX}{len(arrays)}"
        arrays[name] = value
        return {_ARRAY_REF: name}
    if depth > _MAX_JSON_DEPTH:
        return value
    if isinstance(value, dict):
        return {k: _lift_arrays(v, arrays, depth + 1) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_lift_arrays(v, arrays, depth + 1) for v in value]
    return value


def _drop_arrays(value: Any, arrays: dict[str, Any], used: set[str], depth: int = 0) -> Any:
    """The inverse of :func:`_lift_arrays`; every reference must name an array, once."""
    if isinstance(value, dict):
        if set(value) == {_ARRAY_REF}:
            name = value[_ARRAY_REF]
            if not isinstance(name, str) or name not in arrays or name in used:
                raise ProtocolError(f"model: meta refers to array {name!r}, which the data does not hold once")
            used.add(name)
            return arrays[name]
        return {k: _drop_arrays(v, arrays, used, depth + 1) for k, v in value.items()}
    if isinstance(value, list):
        return [_drop_arrays(v, arrays, used, depth + 1) for v in value]
    return value


def encode_model(model: FLModel) -> bytes:
    """Serialize an :class:`FLModel`: JSON header plus the params as safetensors.

    Torch tensors are moved to the CPU; dtypes are kept (bf16/fp8 included).
    Raises ``TypeError`` naming the key of anything that cannot be sent.
    """
    meta_arrays: dict[str, Any] = {}
    meta = _lift_arrays(model.meta, meta_arrays) if isinstance(model.meta, dict) else model.meta
    tensors: list[str] = []  # the blob names of torch tensors numpy can hold (bf16/fp8 say so themselves)
    header: dict[str, Any] = {
        "meta": meta,
        "metrics": model.metrics,
        "rc": model.rc,
        "params_type": model.params_type,
    }
    for key, value in header.items():
        if key in ("meta", "metrics"):
            if not isinstance(value, dict):
                raise TypeError(f"{key} is a {type(value).__name__}, expected a dict")
            find_unsendable(value, key)
        elif not isinstance(value, str):
            raise TypeError(f"{key} is a {type(value).__name__}, expected a str")
    if not isinstance(model.params, Mapping):
        raise TypeError(f"params is a {type(model.params).__name__}, expected a dict")
    keys = list(model.params)
    specs: dict[str, TensorSpec] = {}
    plain: dict[str, Any] = {}
    keep_alive: list[np.ndarray] = []  # serialize() reads raw pointers into these
    for name in keys:
        if not isinstance(name, str) or not name or name == "__metadata__":
            raise TypeError(
                f"params has the key {name!r}; names must be non-empty str other than '__metadata__'"
            )
        value = model.params[name]
        if value is None or isinstance(value, (bool, int, float, str, list, tuple, dict)):
            find_unsendable(value, f"params[{name!r}]")
            plain[name] = value
            continue
        dtype_name, shape, arr = _param_array(name, value)
        keep_alive.append(arr)
        if is_torch_tensor(value) and dtype_name not in _TORCH_ONLY:
            tensors.append(name)
        specs[name] = TensorSpec(
            dtype=dtype_name, shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes
        )
    for name, value in meta_arrays.items():
        dtype_name, shape, arr = _param_array(name, value)
        keep_alive.append(arr)
        if is_torch_tensor(value) and dtype_name not in _TORCH_ONLY:
            tensors.append(name)
        specs[name] = TensorSpec(dtype=dtype_name, shape=list(shape), data_ptr=arr.ctypes.data, data_len=arr.nbytes)
    header["keys"] = keys
    if plain:
        header["plain"] = plain
    if meta_arrays:
        header["meta_arrays"] = list(meta_arrays)
    if tensors:
        header["torch"] = tensors
    blob = serialize(specs)
    del keep_alive
    head = _dumps(header)
    return b"".join((_FRAME.pack(MODEL_MAGIC, VERSION, len(head)), head, blob))


def _param_from_view(name: str, info: Mapping[str, Any]) -> Any:
    dtype_code, shape, data = info.get("dtype"), info.get("shape"), info.get("data")
    if not isinstance(shape, list) or not all(isinstance(d, int) and d >= 0 for d in shape):
        raise ProtocolError(f"model: params[{name!r}] has a bad shape {shape!r}")
    if not isinstance(data, (bytes, bytearray)):
        raise ProtocolError(f"model: params[{name!r}] has no data")
    count = math.prod(shape)
    if dtype_code in _NUMPY_DTYPES:
        dtype = _NUMPY_DTYPES[dtype_code]
        if count * dtype.itemsize != len(data):
            raise ProtocolError(
                f"model: params[{name!r}] holds {len(data)} bytes, shape {shape} needs {count * dtype.itemsize}"
            )
        # safetensors hands out a fresh bytearray per tensor, so the array is writable.
        return np.frombuffer(data, dtype=dtype).reshape(shape)
    if dtype_code in _TORCH_ONLY_BY_CODE:
        torch = _torch()
        tdtype = getattr(torch, _TORCH_ONLY_BY_CODE[dtype_code])
        itemsize = torch.empty((), dtype=tdtype).element_size()
        if count * itemsize != len(data):
            raise ProtocolError(
                f"model: params[{name!r}] holds {len(data)} bytes, shape {shape} needs {count * itemsize}"
            )
        if count == 0:
            return torch.empty(shape, dtype=tdtype)
        return torch.frombuffer(data, dtype=tdtype).reshape(shape)
    raise ProtocolError(f"model: params[{name!r}] has unsupported dtype {dtype_code!r}")


def decode_model(data: bytes | bytearray | memoryview) -> FLModel:
    """Parse bytes from :func:`encode_model`; raise :class:`ProtocolError` for anything else.

    Params come back as writable numpy arrays, except those sent as torch tensors
    (and bf16/fp8 ones, which numpy cannot hold), which come back as CPU torch tensors.
    """
    header, blob = _read_frame(data, MODEL_MAGIC, "model")
    meta, metrics = header.get("meta"), header.get("metrics")
    rc, params_type, keys = header.get("rc"), header.get("params_type"), header.get("keys")
    if not isinstance(meta, dict) or not isinstance(metrics, dict):
        raise ProtocolError("model: header needs 'meta' and 'metrics' objects")
    if not isinstance(rc, str) or not isinstance(params_type, str):
        raise ProtocolError("model: header needs 'rc' and 'params_type' strings")
    if (
        not isinstance(keys, list)
        or not all(isinstance(k, str) for k in keys)
        or len(set(keys)) != len(keys)
    ):
        raise ProtocolError("model: header needs 'keys', a list of distinct parameter names")
    plain = header.get("plain", {})
    if not isinstance(plain, dict) or not set(plain) <= set(keys):
        raise ProtocolError("model: header 'plain' must be an object of some of the parameters")
    meta_names = header.get("meta_arrays", [])
    if (not isinstance(meta_names, list) or not all(isinstance(n, str) and n.startswith(META_ARRAY_PREFIX)
                                                    for n in meta_names)
            or len(set(meta_names)) != len(meta_names) or set(meta_names) & set(keys)):
        raise ProtocolError("model: header 'meta_arrays' must list distinct names of meta arrays")
    try:
        views = deserialize(bytes(blob))
    except SafetensorError as exc:
        raise ProtocolError(f"model: bad safetensors data: {exc}") from None
    except Exception as exc:  # the parser is native code; whatever it raises is the peer's fault
        raise ProtocolError(
            f"model: unreadable safetensors data ({type(exc).__name__}: {exc})"
        ) from None
    tensors = {name: info for name, info in views}
    arrays = [k for k in keys if k not in plain]
    if set(tensors) != set(arrays) | set(meta_names) or len(views) != len(arrays) + len(meta_names):
        raise ProtocolError(
            f"model: header names {len(arrays) + len(meta_names)} arrays but the data holds {len(views)}, "
            "or other names"
        )
    as_torch = header.get("torch", [])
    if (not isinstance(as_torch, list) or not all(isinstance(n, str) for n in as_torch)
            or not set(as_torch) <= set(tensors)):
        raise ProtocolError("model: header 'torch' must list some of the arrays")

    def array(name: str) -> Any:
        value = _param_from_view(name, tensors[name])
        return _as_tensor(value) if name in as_torch else value

    params = {name: plain[name] if name in plain else array(name) for name in keys}
    if meta_names:
        used: set[str] = set()
        meta = _drop_arrays(meta, {n: array(n) for n in meta_names}, used)
        if used != set(meta_names):
            raise ProtocolError("model: header lists meta arrays its meta does not refer to")
    return FLModel(params=params, meta=meta, metrics=metrics, params_type=params_type, rc=rc)


# --------------------------------------------------------------------------- event records


def encode_record(record: Mapping[str, Any]) -> bytes:
    """One record as compact JSON; batch several with :func:`join_records`.

    Raises ``TypeError`` naming the key of a value JSON cannot carry.
    """
    try:
        return _dumps(record)
    except (TypeError, ValueError, RecursionError):
        find_unsendable(record, "record")
        raise TypeError("record cannot be sent as JSON (circular or too deep)") from None


def join_records(encoded: Iterable[bytes]) -> bytes:
    """A record batch from records already passed through :func:`encode_record`."""
    return b"".join((_RECORDS_PREFIX.pack(RECORDS_MAGIC, VERSION), b"[", b",".join(encoded), b"]"))


def encode_records(records: Sequence[Mapping[str, Any]]) -> bytes:
    """A batch of small JSON-safe records (dicts) as one message."""
    try:
        body = _dumps(list(records))
    except (TypeError, ValueError, RecursionError):
        find_unsendable(list(records), "records")
        raise TypeError("records cannot be sent as JSON (circular or too deep)") from None
    return _RECORDS_PREFIX.pack(RECORDS_MAGIC, VERSION) + body


def decode_records(data: bytes | memoryview) -> list[dict[str, Any]]:
    """Parse a record batch; raise :class:`ProtocolError` unless it is a list of objects."""
    view = memoryview(data)
    if len(view) < _RECORDS_PREFIX.size:
        raise ProtocolError(f"records: truncated ({len(view)} bytes)")
    magic, version = _RECORDS_PREFIX.unpack_from(view)
    if magic != RECORDS_MAGIC:
        raise ProtocolError(f"records: bad magic (not {RECORDS_MAGIC.decode(errors='replace')!r} data)")
    if version != VERSION:
        raise ProtocolError(
            f"records: unsupported format version {version} (this side reads {VERSION})"
        )
    records = _loads(bytes(view[_RECORDS_PREFIX.size :]), "records")
    if not isinstance(records, list) or not all(type(r) is dict for r in records):
        raise ProtocolError("records: expected a JSON array of objects")
    return records
