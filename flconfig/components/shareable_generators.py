"""FullModelShareableGenerator: sends and receives whole models."""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import JobError
from ..interfaces import GLOBAL_MODEL_PROP
from ..types import FLModel, ReturnCode, RunContext, is_torch_tensor
from .base import ShareableGenerator


class FullModelShareableGenerator(ShareableGenerator):
    """Turns the global model into task data holding all of its weights, and an
    aggregated result (full weights or a weight difference) back into the next
    global model (FLARE's ``FullModelShareableGenerator``). Takes no arguments.

    The next global model starts from the current one
    (``ctx.props["global_model"]``): a ``FULL`` aggregate replaces the
    parameters it holds, a ``DIFF`` aggregate is added to them. Parameters the
    aggregate leaves out (``exclude_vars``) keep their current values.
    """

    def __init__(self) -> None:
        pass

    def learnable_to_shareable(self, model: FLModel, ctx: RunContext) -> FLModel:
        """Task data with every parameter of the global ``model`` (``params_type`` FULL).

        The arrays are shared, not copied: task data is encoded once before
        it is sent and never changed. The model's own meta stays on the
        server; the workflow adds the task's headers.
        """
        return FLModel(params=dict(model.params), params_type="FULL")

    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        """The next global model: the current one updated with ``aggregated``.

        Raises JobError for a failed aggregate, an unknown ``params_type``, or
        a difference that does not fit the current model.
        """
        if aggregated.rc != ReturnCode.OK:
            raise JobError(
                f"shareable generator: the aggregate has return code {aggregated.rc}"
                f" ({aggregated.meta.get('error', 'no message')})"
            )
        current = getattr(ctx, "props", {}).get(GLOBAL_MODEL_PROP)
        base: dict[str, Any] = dict(current.params) if isinstance(current, FLModel) else {}
        meta = dict(current.meta) if isinstance(current, FLModel) else {}
        if aggregated.params_type == "FULL":
            base.update(aggregated.params)
        elif aggregated.params_type == "DIFF":
            for name, diff in aggregated.params.items():
                if name not in base:
                    raise JobError(
                        f"shareable generator: the aggregated difference has parameter {name!r}, "
                        "which the global model lacks"
                        + ("" if base else " (the global model is empty: use FULL weights)")
                    )
                base[name] = add_difference(name, base[name], diff)
        else:
            raise JobError(
                f"shareable generator: cannot build a model from params_type "
                f"{aggregated.params_type!r}; expected 'FULL' or 'DIFF'"
            )
        return FLModel(params=base, meta=meta, metrics=dict(aggregated.metrics), params_type="FULL")


def add_difference(name: str, value: Any, diff: Any) -> Any:
    """``value + diff`` in ``value``'s type and dtype (computed in float64)."""
    if is_torch_tensor(value) or is_torch_tensor(diff):
        import torch

        v = value if is_torch_tensor(value) else torch.from_numpy(np.array(value))
        d = diff if is_torch_tensor(diff) else torch.from_numpy(np.array(diff))
        if tuple(v.shape) != tuple(d.shape):
            raise JobError(
                f"shareable generator: the difference for {name!r} has shape "
                f"{tuple(d.shape)}, the global model's is {tuple(v.shape)}"
            )
        total = v.detach().cpu().to(torch.float64) + d.detach().cpu().to(torch.float64)
        if is_torch_tensor(value):
            return total.to(value.dtype)
        return total.numpy().astype(np.asarray(value).dtype)
    v, d = np.asarray(value), np.asarray(diff)
    if v.shape != d.shape:
        raise JobError(
            f"shareable generator: the difference for {name!r} has shape {d.shape}, "
            f"the global model's is {v.shape}"
        )
    total = v.astype(np.float64) + d.astype(np.float64)
    if v.dtype.kind in "iu":
        total = np.rint(total)
    return total.astype(v.dtype)
