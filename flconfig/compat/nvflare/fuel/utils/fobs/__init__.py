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
    from ....app_common.abstract.fl_model import FLModel

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
        kind, data = array
        return {_TAG: kind, "dtype": data.dtype.str, "shape": list(data.shape),
                "b64": base64.b64encode(data.tobytes()).decode()}
    with _lock:
        decomposer = _decomposers.get(_type_name(type(value)))
    if decomposer is not None:
        return {_TAG: "custom", "type": _type_name(type(value)), "data": _encode(decomposer.decompose(value))}
    if hasattr(value, "item") and callable(value.item) and not hasattr(value, "shape"):
        return _encode(value.item())
    raise TypeError(f"fobs: cannot write a {_type_name(type(value))}: flconfig writes plain values, "
                    "arrays, tensors and FLModel; register a Decomposer for this type")


def _as_array(value: Any) -> tuple[str, Any] | None:
    """("ndarray"|"tensor", a numpy array) for a numpy array or scalar, or a torch tensor."""
    module = type(value).__module__
    if module == "numpy" or module.startswith("numpy."):
        import numpy as np

        return "ndarray", np.ascontiguousarray(value)
    if module == "torch" and type(value).__name__ in ("Tensor", "Parameter") or \
            module.startswith("torch.") and hasattr(value, "detach"):
        return "tensor", value.detach().cpu().contiguous().numpy()
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
        from ....app_common.abstract.fl_model import FLModel

        fields = {k: _decode(v) for k, v in value["fields"].items()}
        model = FLModel(meta=fields.get("meta"), metrics=fields.get("metrics"))
        for key, field in fields.items():
            setattr(model, key, field)
        if model.params_type is not None:
            from ....app_common.abstract.fl_model import ParamsType

            model.params_type = ParamsType(model.params_type)
        return model
    if tag in ("ndarray", "tensor"):
        import numpy as np

        array = np.frombuffer(base64.b64decode(value["b64"]), dtype=np.dtype(value["dtype"]))
        array = array.reshape(value["shape"]).copy()
        if tag == "tensor":
            import torch

            return torch.from_numpy(array)
        return array
    if tag == "custom":
        with _lock:
            decomposer = _decomposers.get(value["type"])
        if decomposer is None:
            raise TypeError(f"fobs: the data holds a {value['type']}, and no Decomposer for it is registered "
                            "in this process: register it before loading")
        return decomposer.recompose(_decode(value["data"]))
    raise ValueError(f"fobs: unknown tag {tag!r}: not data fobs.dumps wrote")


def dumps(obj: Any, max_value_size: int | None = None) -> bytes:
    """``obj`` serialized (flconfig's format: JSON, arrays as raw bytes, nothing pickled)."""
    return json.dumps({_TAG: 1, "value": _encode(obj)}, separators=(",", ":")).encode()


def loads(data: bytes) -> Any:
    """The object :func:`dumps` wrote; ValueError for anything else."""
    try:
        document = json.loads(data)
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError(f"fobs: not data fobs.dumps wrote ({exc})") from None
    if not isinstance(document, dict) or document.get(_TAG) != 1 or "value" not in document:
        raise ValueError("fobs: not data fobs.dumps wrote")
    return _decode(document["value"])


def dump(obj: Any, stream: BinaryIO) -> None:
    """Write ``obj`` to a binary stream."""
    stream.write(dumps(obj))


def load(stream: BinaryIO) -> Any:
    """Read the object :func:`dump` wrote to a binary stream."""
    return loads(stream.read())


def dumpf(obj: Any, file_path: str) -> None:
    """Write ``obj`` to the file ``file_path`` (whole, or not at all: a temporary file renamed)."""
    path = Path(file_path)
    temporary = path.with_name(f".{path.name}.tmp")
    temporary.write_bytes(dumps(obj))
    temporary.replace(path)


def loadf(file_path: str) -> Any:
    """Read the object :func:`dumpf` wrote to ``file_path``."""
    return loads(Path(file_path).read_bytes())
