"""The Client API's exchange format: flconfig's task data as the FLModel a training script
gets (params as torch tensors, numpy arrays, or as they came), the script's result back as
flconfig's, and a DIFF result (trained minus received params).

Standard library only at import time (numpy and torch are imported by the functions that
convert; the registry reads this file).
"""

from __future__ import annotations

from typing import Any

from ..compat.client_session import plain_number, plain_value
from ..compat.nvflare.app_common.abstract.fl_model import FLModel as FlareModel
from ..types import FLModel, RunContext, is_torch_tensor


def to_script(data: FLModel, ctx: RunContext, exchange_format: str) -> Any:
    """flconfig's task data as FLARE's FLModel, its params in ``exchange_format``
    (``pytorch``, ``numpy`` or ``raw``)."""

    params: Any = dict(data.params) if data.params else None
    if params is not None and exchange_format == "pytorch":
        params = to_torch(params)
    elif params is not None and exchange_format == "numpy":
        params = to_numpy(params)
    meta = {k: v for k, v in data.meta.items() if k not in ("current_round", "num_rounds")}
    meta.update({"job_id": ctx.job_id, "site_name": ctx.site_name})
    if "_validate_type" in data.meta:
        meta["validate_type"] = data.meta["_validate_type"]
    current = data.meta.get("current_round")
    total = data.meta.get("num_rounds")
    return FlareModel(
        params_type=data.params_type if params is not None else None,
        params=params,
        metrics=dict(data.metrics) or None,
        current_round=current if isinstance(current, int) and current >= 0 else None,
        total_rounds=total if isinstance(total, int) and total >= 0 else None,
        meta=meta,
    )


def from_script(result: Any, data: FLModel, exchange_format: str, server_format: str) -> FLModel:
    """FLARE's FLModel the script sent for the task ``data``, as flconfig's result; params
    converted to ``server_format`` unless either format is ``raw`` or both are the same.

    Raises ``TypeError``/``ValueError`` for a result that cannot be sent."""

    metrics = {str(k): plain_number(v) for k, v in (result.metrics or {}).items()}
    meta = {k: v for k, v in plain_value(result.meta or {}, keep_arrays=True).items()
            if k not in ("job_id", "site_name")}
    if "current_round" in data.meta:
        meta["current_round"] = data.meta["current_round"]
    params = dict(result.params) if result.params is not None else {}
    if params and exchange_format != server_format and "raw" not in (exchange_format, server_format):
        params = to_torch(params) if server_format == "pytorch" else to_numpy(params)
    if params and metrics:
        meta["initial_metrics"] = metrics  # the received model's validation, as FLARE sends it
    params_type = result.params_type.value if result.params_type is not None else "FULL"
    return FLModel(params=params, meta=meta, metrics=metrics, params_type=params_type)


def to_torch(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with their numpy arrays as torch tensors (sharing memory where they may)."""
    import numpy as np
    import torch

    out: dict[str, Any] = {}
    for name, value in params.items():
        if isinstance(value, np.ndarray):
            value = torch.from_numpy(value if value.flags.writeable else value.copy())
        out[name] = value
    return out


def to_numpy(params: dict[str, Any]) -> dict[str, Any]:
    """``params`` with their torch tensors as numpy arrays (on the CPU); dtypes numpy lacks
    (bf16, fp8) stay tensors."""
    out: dict[str, Any] = {}
    for name, value in params.items():
        if is_torch_tensor(value):
            tensor = value.detach().cpu()
            try:
                value = tensor.numpy()
            except TypeError:  # no numpy dtype for it
                value = tensor
        out[name] = value
    return out


def params_diff(received: Any, trained: Any) -> dict[str, Any]:
    """Trained minus received, for the names both hold (FLARE's ``numerical_params_diff``)."""
    diff: dict[str, Any] = {}
    for name, old in received.items():
        if name not in trained:
            continue
        new = trained[name]
        if hasattr(new, "detach"):  # a torch tensor, maybe on a GPU
            new = new.detach().cpu()
            if not hasattr(old, "detach"):
                import torch

                old = torch.as_tensor(old)
        elif hasattr(old, "detach"):
            old = old.detach().cpu().numpy()
        diff[name] = new - old
    if not diff:
        raise ValueError("the trained params share no name with the received ones: no DIFF to send")
    return diff
