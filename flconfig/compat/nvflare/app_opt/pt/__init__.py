"""FLARE's ``nvflare.app_opt.pt``: what PyTorch job code imports from it.

Loaded lazily, so that importing the package does not import torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"PTFedProxLoss": "fedproxloss"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
