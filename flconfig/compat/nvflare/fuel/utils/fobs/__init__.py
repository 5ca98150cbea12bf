"""FLARE's ``nvflare.fuel.utils.fobs``: ``register``, ``dumps``/``loads``, ``dumpf``/``loadf``.

Job code uses FOBS to keep an ``FLModel``'s meta (or any plain result) in a file beside a
checkpoint and read it back (FLARE's tutorials' FedAvg controllers do). flconfig serves the
same calls with a format of its own that never unpickles: a JSON document in which arrays
(numpy, torch) are raw bytes with their dtype and shape, and ``FLModel``, tuples, sets,
bytes and enums of FLARE's API are tagged. Another type is written by the
:class:`Decomposer` registered for it (:func:`register`), and read back only through a
decomposer registered in the reading process: a file never names code to import.

The files are flconfig's, not FLARE's FOBS (msgpack): a job writes and reads its own.
``register`` of FLARE's own decomposers (``TensorDecomposer``, ``NumpyArrayDecomposer``)
is accepted and changes nothing: arrays are handled already.
"""

from __future__ import annotations

import base64
import json
import threading
from enum import Enum
from pathlib import Path
from typing import Any, BinaryIO

from flconfig.files import write_atomic
from flconfig.types import is_torch_tensor

from ....app_common.abstract.fl_model import FLModel, ParamsType
from .decomposer import Decomposer

__all__ = ["Decomposer", "dump", "dumpf", "dumps", "load", "loadf", "loads", "register",
           "register_data_classes", "register_enum_types", "register_folder", "reset"]

_TAG = "__fobs__"
_lock = threading.Lock()
_decomposers: dict[str, Decomposer] = {}


def _type_name(cls: type) -> str:
    return f"{cls.__module__}.{cls.__qualname__}"


def register(decomposer: Decomposer | type[Decomposer]) -> None:
    """Use ``decomposer`` (an instance or its class) for objects of its supported type.
    FLARE's own decomposers for arrays and tensors are accepted and change nothing."""
    instance = decomposer() if isinstance(decomposer, type) else decomposer
    if getattr(instance, "FLCONFIG_BUILTIN", False):
        return
    if not isinstance(instance, Decomposer) and not all(
            callable(getattr(instance, m, None)) for m in ("supported_type", "decompose", "recompose")):
        raise TypeError(f"register: {instance!r} is not a Decomposer")
    with _lock:
        _decomposers[_type_name(instance.supported_type())] = instance


def register_data_classes(*classes: type) -> None:
    """Accepted (FLARE's dataclass decomposers): flconfig writes no dataclass; use a
    :class:`Decomposer` for one."""


def register_enum_types(*types: type) -> None:
    """Accepted: an enum is written by its value and read back as that value."""


def register_folder(folder: str, package: str) -> None:
    """Accepted (FLARE loads every decomposer of a folder); register the ones you need."""


def reset() -> None:
    """Forget every registered decomposer."""
    with _lock:
        _decomposers.clear()


def _encode(value: Any) -> Any:
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else \
            {_TAG: "float", "v": repr(value)}
    if isinstance(value, Enum):
        return _encode(value.value)
    if isinstance(value, dict):
        if all(isinstance(k, str) for k in value) and _TAG not in value:
            return {k: _encode(v) for k, v in value.items()}
        return {_TAG: "dict", "items": [[_encode(k), _encode(v)] for k, v in value.items()]}
    if isinstance(value, list):
        return [_encode(v) for v in value]
    if isinstance(value, (tuple, set, frozenset)):
        return {_TAG: type(value).__name__ if not isinstance(value, frozenset) else "set",
                "items": [_encode(v) for v in value]}
    if isinstance(value, (bytes, bytearray)):
        return {_TAG: "bytes", "b64": base64.b64encode(bytes(value)).decode()}
    if isinstance(value, FLModel):
        return {_TAG: "FLModel", "fields": {k: _encode(getattr(value, k)) for k in (
            "params_type", "params", "optimizer_params", "metrics", "start_round", "current_round",
            "total_rounds", "meta")}}
    array = _as_array(value)
    if array is not None:
        kind, data, dtype = array
        if data.dtype.hasobject:
            raise TypeError("fobs: cannot write an array of Python objects (dtype object): "
                            "nothing is pickled; convert it to numbers or strings first")
        return {_TAG: kind, "dtype": dtype, "shape": list(data.shape),
                "b64": base64.b64encode(data.tobytes()).decode()}
    with _lock:
        decomposer = _decomposers.get(_type_name(type(value)))
    if decomposer is not None:
        return {_TAG: "custom", "type": _type_name(type(value)), "data": _encode(decomposer.decompose(value))}
    if hasattr(value, "item") and callable(value.item) and not hasattr(value, "shape"):
        return _encode(value.item())
    raise TypeError(f"fobs: cannot write a {_type_name(type(value))}: flconfig writes plain values, "
                    "arrays, tensors and FLModel; register a Decomposer for this type")


def _as_array(value: Any) -> tuple[str, Any, str] | None:
    """``(kind, numpy array, dtype name)`` for a numpy array (``ndarray``), a numpy scalar
    (``scalar``: read back a scalar) or a torch tensor (``tensor``; bfloat16 and float8 kept
    as their raw bytes under torch's dtype name)."""

    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        array = np.asarray(value)
        kind = "ndarray" if isinstance(value, np.ndarray) else "scalar"
        return kind, np.ascontiguousarray(array) if array.ndim else array, array.dtype.str
    if is_torch_tensor(value):
        tensor = value.detach().cpu().contiguous()
        name = str(tensor.dtype).removeprefix("torch.")
        if name == "bfloat16" or name.startswith("float8"):
            import torch

            raw = tensor.view(torch.int16 if name == "bfloat16" else torch.uint8)
            return "tensor", raw.numpy(), name
        return "tensor", tensor.numpy(), tensor.numpy().dtype.str
    return None


def _decode(value: Any) -> Any:
    if isinstance(value, list):
        return [_decode(v) for v in value]
    if not isinstance(value, dict):
        return value
    tag = value.get(_TAG)
    if tag is None:
        return {k: _decode(v) for k, v in value.items()}
    if tag == "float":
        return float(value["v"])
    if tag == "dict":
        return {_decode(k): _decode(v) for k, v in value["items"]}
    if tag in ("tuple", "set"):
        items = [_decode(v) for v in value["items"]]
        return tuple(items) if tag == "tuple" else set(items)
    if tag == "bytes":
        return base64.b64decode(value["b64"])
    if tag == "FLModel":
        fields = {k: _decode(v) for k, v in value["fields"].items()}
        model = FLModel(meta=fields.get("meta"), metrics=fields.get("metrics"))
        for key, field in fields.items():
            setattr(model, key, field)
        if model.params_type is not None:
            model.params_type = ParamsType(model.params_type)
        return model
    if tag in ("ndarray", "scalar", "tensor"):
        import numpy as np

        name = value["dtype"]
        raw = name == "bfloat16" or name.startswith("float8")
        dtype = np.dtype(np.int16 if name == "bfloat16" else np.uint8) if raw else np.dtype(name)
        if dtype.hasobject:
            raise ValueError("fobs: an array of Python objects: not data fobs.dumps wrote")
        array = np.frombuffer(base64.b64decode(value["b64"]), dtype=dtype).reshape(value["shape"]).copy()
        if tag == "scalar":
            return array[()]
        if tag == "tensor":
            import torch

            tensor = torch.from_numpy(array)
            return tensor.view(getattr(torch, name)) if raw else tensor
        return array
    if tag == "custom":
        with _lock:
            decomposer = _decomposers.get(value["type"])
        if decomposer is None:
            raise TypeError(f"fobs: the data holds a {value['type']}, and no Decomposer for it is registered "
                            "in this process: register it before loading")
        return decomposer.recompose(_decode(value["data"]))
    raise ValueError(f"fobs: unknown tag {tag!r}: not data fobs.dumps wrote")


def dumps(obj: Any, buffer_list: bool = False, max_value_size: int | None = None,
          fobs_ctx: dict[str, Any] | None = None) -> bytes:
    """``obj`` serialized (flconfig's format: JSON, arrays as raw bytes, nothing pickled).
    FLARE's ``buffer_list``, ``max_value_size`` and ``fobs_ctx`` are accepted; one bytes
    object is returned."""
    return json.dumps({_TAG: 1, "value": _encode(obj)}, separators=(",", ":")).encode()


def loads(data: bytes, fobs_ctx: dict[str, Any] | None = None) -> Any:
    """The object :func:`dumps` wrote; ValueError for anything else (TypeError for a type
    whose decomposer is not registered here)."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"fobs: not data fobs.dumps wrote ({exc})") from None
    if not isinstance(document, dict) or document.get(_TAG) != 1 or "value" not in document:
        raise ValueError("fobs: not data fobs.dumps wrote")
    try:
        return _decode(document["value"])
    except (KeyError, IndexError, AttributeError) as exc:
        raise ValueError(f"fobs: not data fobs.dumps wrote ({type(exc).__name__}: {exc})") from None
    except TypeError as exc:
        if str(exc).startswith("fobs:"):
            raise
        raise ValueError(f"fobs: not data fobs.dumps wrote ({exc})") from None


def dump(obj: Any, stream: BinaryIO, max_value_size: int | None = None, fobs_ctx: dict[str, Any] | None = None) -> None:
    """Write ``obj`` to a binary stream."""
    stream.write(dumps(obj))


def load(stream: BinaryIO, fobs_ctx: dict[str, Any] | None = None) -> Any:
    """Read the object :func:`dump` wrote to a binary stream."""
    return loads(stream.read())


def dumpf(obj: Any, file_path: str, max_value_size: int | None = None, fobs_ctx: dict[str, Any] | None = None) -> None:
    """Write ``obj`` to the file ``file_path`` (whole, or not at all: written aside, then renamed)."""

    write_atomic(Path(file_path), dumps(obj))


def loadf(file_path: str, fobs_ctx: dict[str, Any] | None = None) -> Any:
    """Read the object :func:`dumpf` wrote to ``file_path``."""
    return loads(Path(file_path).read_bytes())
