"""FLARE's ``nvflare.app_opt.pt.decomposers``: ``TensorDecomposer``, for ``fobs.register``.

flconfig's :mod:`~flconfig.compat.nvflare.fuel.utils.fobs` writes tensors itself and its
wire carries them as safetensors, so registering this decomposer is accepted and changes
nothing.
"""

from __future__ import annotations

from typing import Any, ClassVar


class TensorDecomposer:
    """FLARE's decomposer of ``torch.Tensor``: accepted by ``fobs.register``; tensors are
    written and read by flconfig's FOBS already."""

    #: Tells :func:`fobs.register` that flconfig handles this type itself.
    FLCONFIG_BUILTIN: ClassVar[bool] = True

    def supported_type(self) -> type:
        """``torch.Tensor``."""
        import torch

        return torch.Tensor

    def decompose(self, target: Any, manager: Any = None) -> Any:
        """Not called: flconfig's FOBS writes tensors itself."""
        return target

    def recompose(self, data: Any, manager: Any = None) -> Any:
        """Not called: flconfig's FOBS reads tensors itself."""
        return data
