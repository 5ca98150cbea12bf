"""FLARE's API for job code: ``import nvflare...`` served by flconfig in flconfig's processes.

A FLARE job's own code (a Client API training script, a model in ``custom/``)
imports ``nvflare``. :func:`install` puts a finder first on ``sys.meta_path``
that serves every ``nvflare.X`` module from ``flconfig.compat.nvflare.X``: the
two names are one module object, so ``nvflare.client.FLModel`` *is*
``flconfig.compat.nvflare.client.FLModel``. A module flconfig does not provide
yet fails to import with a line that says so (and where the support matrix is).

Where job code runs — a flconfig site's or server's process, the process of an external
Client API script, ``flconfig run job.py`` — the finder is installed even where FLARE is
(``install(force=True)``): that code talks to flconfig's runtime, which FLARE's own
classes know nothing of. Nowhere else is FLARE shadowed: ``python job.py`` and any
other program get FLARE's own package, and :func:`install` without ``force`` does
nothing where FLARE is installed.

Nothing here imports torch, tensorboard or grpc.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import importlib.util
import sys
import threading
from types import ModuleType

from ..registry.flare_modules import (
    is_component_module,
    is_component_package,
    provides,
)

#: Where the modules served as ``nvflare.*`` live.
COMPAT_PACKAGE = "flconfig.compat.nvflare"

_lock = threading.Lock()
_installed: _NvflareFinder | None = None
_flare: bool | None = None
_standins_served = False


def serve_standins(on: bool = True) -> None:
    """Serve FLARE's component modules (``nvflare.app_common.workflows.fedavg`` ...) as
    modules of stand-ins (:mod:`flconfig.compat.jobapi.standins`): on while a job script
    authors a job (``flconfig run job.py``). Off (where a job runs), those modules hold the
    classes flconfig runs for FLARE's, never a stand-in."""
    global _standins_served
    _standins_served = on


def serving_standins() -> bool:
    """Whether :func:`serve_standins` is on."""
    return _standins_served


def flare_installed() -> bool:
    """Whether the real ``nvflare`` package is installed (then it is what job code imports)."""
    global _flare
    if _flare is None:
        if _installed is not None:
            _flare = False
        else:
            try:
                _flare = importlib.util.find_spec("nvflare") is not None
            except (ImportError, ValueError):
                _flare = False
    return _flare


def install(*, force: bool = False) -> bool:
    """Serve ``import nvflare...`` from flconfig's FLARE API, unless FLARE is installed
    (with ``force``, even then: ``flconfig run job.py`` authors the job with flconfig's API
    in its own process, whatever else is installed).

    Returns True when flconfig's modules are (now) what ``nvflare`` means in this
    process. Safe to call any number of times, from any thread.
    """
    global _installed, _flare
    with _lock:
        if _installed is not None:
            return True
        if not force and flare_installed():
            return False
        if any(name == "nvflare" or name.startswith("nvflare.") for name in sys.modules):
            return False  # FLARE's own modules are in use in this process already
        _flare = False
        _installed = _NvflareFinder()
        sys.meta_path.insert(0, _installed)
        return True


class _NvflareFinder(importlib.abc.MetaPathFinder, importlib.abc.Loader):
    """Finds ``nvflare`` and ``nvflare.*`` as flconfig's compat modules (one object, two names)."""

    def find_spec(self, fullname: str, path: object = None, target: object = None
                  ) -> importlib.machinery.ModuleSpec | None:
        if fullname != "nvflare" and not fullname.startswith("nvflare."):
            return None
        if not provides(fullname):
            if is_component_module(fullname):  # a module of FLARE's components
                return importlib.machinery.ModuleSpec(
                    fullname, self, is_package=is_component_package(fullname))
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: flconfig's FLARE API does not provide it yet "
                "(docs/flare-support.md lists what it serves)",
                name=fullname,
            )
        real = importlib.util.find_spec(COMPAT_PACKAGE + fullname[len("nvflare"):])
        is_package = real is not None and real.submodule_search_locations is not None
        spec = importlib.machinery.ModuleSpec(fullname, self, is_package=is_package)
        if real is not None:
            spec.origin = real.origin
            spec.has_location = real.has_location
        return spec

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        if not provides(spec.name):
            module = ModuleType(spec.name)
            if spec.submodule_search_locations is not None:
                module.__path__ = []
            _standins().populate(module, authoring=_standins_served)
            return module
        return importlib.import_module(COMPAT_PACKAGE + spec.name[len("nvflare"):])

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run: :meth:`create_module` returned the imported compat module (or
        the module of stand-ins it made)."""


def _standins() -> ModuleType:
    """:mod:`flconfig.compat.jobapi.standins`, imported when job code first asks for a
    module of FLARE's components flconfig has no file for. Deferred: the stand-ins read
    FLARE's classes with the registry's introspection, which a site's process otherwise
    never imports (tests/runtime/test_plan.py)."""
    from .jobapi import standins

    return standins
