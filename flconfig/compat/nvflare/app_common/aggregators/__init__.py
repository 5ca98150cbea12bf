"""FLARE's ``nvflare.app_common.aggregators``: the part job code subclasses, and (for a job
script) the aggregators FLARE exports from this package, as stand-ins."""

from __future__ import annotations

from typing import Any


def __getattr__(name: str) -> Any:
    from .... import serving_standins
    from ....jobapi.standins import lookup, runtime_class

    found = lookup("nvflare.app_common.aggregators", name) if serving_standins() else runtime_class("nvflare.app_common.aggregators", name)
    if found is None:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    return found
