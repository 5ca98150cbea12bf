"""FLARE's ``nvflare.app_opt.pt``: what PyTorch job code imports from it, and (for a job
script) the components FLARE exports from this package, as stand-ins.

Loaded lazily, so that importing the package does not import torch.
"""

from __future__ import annotations

from typing import Any

_LAZY = {"PTFedProxLoss": "fedproxloss"}


def __getattr__(name: str) -> Any:
    module = _LAZY.get(name)
    if module is None:
        from .... import serving_standins
        from ....jobapi.standins import lookup, runtime_class

        found = lookup("nvflare.app_opt.pt", name) if serving_standins() else runtime_class("nvflare.app_opt.pt", name)
        if found is not None:
            return found
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    import importlib

    return getattr(importlib.import_module(f"{__name__}.{module}"), name)
