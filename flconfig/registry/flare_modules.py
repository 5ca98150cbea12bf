"""Which FLARE modules flconfig serves to job code, told without importing anything.

Two kinds: the modules of flconfig's FLARE API (``flconfig/compat/nvflare/``, served as
``nvflare.*``: :func:`provides`), and the modules that hold FLARE components flconfig
runs (``nvflare.app_common.workflows.fedavg`` ...: :func:`component_modules`, from the
alias table). Validation asks both of a job's imports; the import hook of
:mod:`flconfig.compat` serves them.
"""

from __future__ import annotations

import functools
from pathlib import Path

from .aliases import FLARE_ALIASES

#: Where the modules served as ``nvflare.*`` live (read as files, never imported here).
COMPAT_ROOT = Path(__file__).resolve().parents[1] / "compat" / "nvflare"


def provides(module: str) -> bool:
    """Whether flconfig's FLARE API has the module ``module`` (``nvflare.client`` ...)."""
    parts = module.split(".")
    if parts[0] != "nvflare":
        return False
    path = COMPAT_ROOT.joinpath(*parts[1:])
    return path.with_suffix(".py").is_file() or (path / "__init__.py").is_file()


@functools.cache
def component_modules() -> dict[str, dict[str, str]]:
    """Every FLARE module (and package above one) that holds a FLARE class flconfig runs:
    module -> {class name: FLARE path}."""
    out: dict[str, dict[str, str]] = {}
    for path in FLARE_ALIASES:
        module, _, name = path.rpartition(".")
        out.setdefault(module, {})[name] = path
        parts = module.split(".")
        for cut in range(1, len(parts)):
            out.setdefault(".".join(parts[:cut]), {})
    return out


def is_component_module(name: str) -> bool:
    """Whether ``name`` is a FLARE module of components flconfig runs."""
    return name in component_modules()


def is_component_package(name: str) -> bool:
    """Whether the FLARE module of components ``name`` has modules below it."""
    prefix = name + "."
    return any(other.startswith(prefix) for other in component_modules())


def served(module: str) -> bool:
    """Whether job code can import the FLARE module ``module`` where flconfig runs it."""
    return provides(module) or is_component_module(module)
