"""FLARE's ModelQuantizer and ModelDequantizer: models sent as float16 and restored.

A ``ModelQuantizer`` in one side's filters (a site's ``task_result_filters``, the server's
``task_data_filters``) sends float32 parameters as float16, clipped to float16's range, and
records what it did in the model's meta as FLARE does (``PROCESSED_ALGORITHM``,
``quant_state``, ``source_datatype``, ``quantized_flag``); a ``ModelDequantizer`` on the
other side turns them back into their source dtype and removes those keys. float16 and
bfloat16 parameters pass unchanged; a model already quantized is not quantized again.
"""

from __future__ import annotations

import logging
from typing import Any, ClassVar

import numpy as np

from ..errors import JobError
from ..types import FLModel, ReturnCode, RunContext, is_torch_tensor
from .base import Filter

log = logging.getLogger(__name__)

#: The meta keys a quantized model carries (FLARE's names).
ALGORITHM_KEY = "PROCESSED_ALGORITHM"
STATE_KEY, SOURCE_KEY, FLAG_KEY = "quant_state", "source_datatype", "quantized_flag"
#: The dtypes that may be quantized (FLARE's list); 16-bit ones pass as they are.
SOURCE_DTYPES = ("float32", "float16", "bfloat16")
_FP16 = np.finfo(np.float16)


def _dtype_name(value: Any) -> str:
    return str(value.dtype).split(".")[-1] if is_torch_tensor(value) else np.asarray(value).dtype.name


class ModelQuantizer(Filter):
    """Sends a model's float32 parameters as float16 (FLARE's ``ModelQuantizer``, float16).

    Raises JobError for a parameter of another dtype than float32, float16 or bfloat16 (as
    FLARE does). FLARE's ``blockwise8``, ``float4`` and ``normfloat4`` (bitsandbytes) and
    ``adaquant`` are not supported yet (``validate`` says so at the line).
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "quantization_type": {"type": "string",
                              "pattern": "^(?i:float16|blockwise8|float4|normfloat4|adaquant)$",
                              "patternErrorMessage": "one of float16, blockwise8, float4, normfloat4, adaquant"},
    }
    NOT_SUPPORTED_YET: ClassVar[dict[str, Any]] = {
        "quantization_type": {
            "blockwise8": "flconfig quantizes to float16 only (FLARE's 8- and 4-bit formats need bitsandbytes)",
            "float4": "flconfig quantizes to float16 only (FLARE's 8- and 4-bit formats need bitsandbytes)",
            "normfloat4": "flconfig quantizes to float16 only (FLARE's 8- and 4-bit formats need bitsandbytes)",
            "adaquant": "flconfig quantizes to float16 only",
        },
    }

    def __init__(self, quantization_type: str = "float16") -> None:
        """
        Args:
            quantization_type: ``float16`` (FLARE's other types are not supported yet).
        """
        self.quantization_type = quantization_type
        if quantization_type.lower() != "float16":
            raise ValueError(f"ModelQuantizer: quantization_type {quantization_type!r} is not supported yet; "
                             "flconfig quantizes to float16")

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        """``data`` with its float32 parameters as float16 and the quantization in its meta."""
        if data.rc != ReturnCode.OK or not data.params or data.meta.get(FLAG_KEY):
            return data
        params: dict[str, Any] = {}
        state: dict[str, Any] = {}
        source: dict[str, str] = {}
        before = after = 0
        for name, value in data.params.items():
            dtype = _dtype_name(value)
            if dtype not in SOURCE_DTYPES and dtype != "bool":
                raise JobError(f"ModelQuantizer: parameter {name!r} is {dtype}; it quantizes "
                               f"{', '.join(SOURCE_DTYPES)} parameters")
            state[name], source[name] = {}, dtype
            if dtype == "float32":
                if is_torch_tensor(value):
                    import torch

                    value = torch.clamp(value, float(_FP16.min), float(_FP16.max)).to(torch.float16)
                    before, after = before + value.numel() * 4, after + value.numel() * 2
                else:
                    value = np.clip(value, _FP16.min, _FP16.max).astype(np.float16)
                    before, after = before + value.size * 4, after + value.size * 2
            params[name] = value
        log.info("ModelQuantizer: %d bytes of float32 parameters sent as %d bytes of float16", before, after)
        meta = {**data.meta, ALGORITHM_KEY: "float16", STATE_KEY: state, SOURCE_KEY: source, FLAG_KEY: True}
        return FLModel(params=params, meta=meta, metrics=data.metrics, params_type=data.params_type, rc=data.rc)


class ModelDequantizer(Filter):
    """Restores what a ModelQuantizer sent (FLARE's ``ModelDequantizer``): each parameter back
    in its ``source_datatype``; the quantization's meta keys removed. A model that was not
    quantized passes unchanged."""

    def __init__(self) -> None:
        pass

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        """``data`` with its parameters in their source dtypes."""
        if data.rc != ReturnCode.OK or not data.meta.get(FLAG_KEY):
            return data
        algorithm = data.meta.get(ALGORITHM_KEY)
        source = data.meta.get(SOURCE_KEY)
        if algorithm != "float16" or not isinstance(source, dict):
            raise JobError(f"ModelDequantizer: cannot restore a model quantized as {algorithm!r}; "
                           "flconfig dequantizes float16")
        params: dict[str, Any] = {}
        for name, value in data.params.items():
            dtype = source.get(name)
            if dtype == "float32" and _dtype_name(value) == "float16":
                if is_torch_tensor(value):
                    import torch

                    value = value.to(torch.float32)
                else:
                    value = np.asarray(value).astype(np.float32)
            params[name] = value
        meta = {k: v for k, v in data.meta.items() if k not in (ALGORITHM_KEY, STATE_KEY, SOURCE_KEY, FLAG_KEY)}
        return FLModel(params=params, meta=meta, metrics=data.metrics, params_type=data.params_type, rc=data.rc)
