"""Importing a component's class: the one place flconfig imports code a config names.

Only classes the registry resolved reach here: through
:meth:`flconfig.registry.Registry.load_class` while validating and building in
one process, or through a :class:`~flconfig.runtime.plan.RunPlan` the launcher made
(from the registry) for the server and worker processes. A class from the
job's ``custom/`` folders must be imported from the very file the registry
read; anything else is refused.
"""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from ..errors import ImportFailure
from ..files import is_within


def import_class(path: str, module_name: str, qualname: str, origin: str, file: str | None,
                 custom_dirs: Sequence[str | Path] = (), *, job_root: str | Path | None = None,
                 allow_job_code: bool = True,
                 prepare_job_code: Callable[[], object] | None = None) -> type:
    """Import ``module_name`` and return its class ``qualname``; raises :class:`ImportFailure`.

    For a ``custom`` class the participant's ``custom_dirs`` are appended to ``sys.path``
    first, as FLARE does, and the module must be the ``file`` the registry read. With
    ``allow_job_code`` False (a participant that runs no custom code) nothing of the job
    folder ``job_root`` is imported: a ``custom`` class is refused, and so is a module
    that Python would find inside the job folder (the working folder or ``PYTHONPATH``
    leading there), before any of its code runs. ``prepare_job_code`` runs once before a
    ``custom`` class is imported: the runtime passes the installer of flconfig's FLARE API,
    so job code that imports ``nvflare`` gets the API that talks to this site.
    """
    if not allow_job_code:
        _refuse_job_code(path, module_name, origin, file, job_root)
    if origin == "custom":
        if prepare_job_code is not None:
            prepare_job_code()
        for folder in custom_dirs:
            if str(folder) not in sys.path:
                sys.path.append(str(folder))
        importlib.invalidate_caches()
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        missing = exc.name or str(exc)
        where = f" ({short_path(file)})" if file else ""
        raise ImportFailure(
            f"module {module_name!r}{where} imports {missing!r}, which is not installed here",
            f"pip install the package that provides {missing.split('.')[0]!r} on this site",
        ) from exc
    except Exception as exc:
        raise ImportFailure(
            f"cannot import module {module_name!r} for {path!r}: {type(exc).__name__}: {exc}",
            "fix the error in that module, or install the package it needs",
        ) from exc
    if origin == "custom" and file is not None:
        loaded = getattr(module, "__file__", None)
        if loaded is None or not _same_file(loaded, file):
            raise ImportFailure(
                f"module {module_name!r} was imported from {loaded or 'elsewhere'},"
                f" not from the job's custom/ folder ({file})",
                "rename the module in custom/ so that it does not clash with an installed one",
            )
    obj: Any = module
    try:
        for part in qualname.split("."):
            obj = getattr(obj, part)
    except AttributeError as exc:
        raise ImportFailure(
            f"module {module_name!r} has no attribute {qualname!r} once imported",
            "the class may be created at import time under another name; check the module",
        ) from exc
    if not isinstance(obj, type) and not inspect.isfunction(obj):
        raise ImportFailure(
            f"{path!r} is not a class or a function (got {type(obj).__name__})",
            "a component path must name a class, or a factory function that returns one",
        )
    return obj  # type: ignore[return-value]  # a factory function builds like a class


def _refuse_job_code(path: str, module_name: str, origin: str, file: str | None,
                     job_root: str | Path | None) -> None:
    """Raise :class:`ImportFailure` if importing ``module_name`` would run code of the job
    folder ``job_root`` (found without importing anything: the top-level package's spec)."""
    why = "this participant does not run custom code"
    hint = ("its operator can allow the job's code with \"allow_custom_code\": true in its kit; "
            "or use built-in components, FLARE classes flconfig provides and installed plugins")
    if origin == "custom":
        raise ImportFailure(f"{path!r} is the job's own code, and {why}", hint)
    if job_root is None:
        return
    top = module_name.split(".", 1)[0]
    module = sys.modules.get(top)
    locations: list[str] = []
    if module is not None:
        locations = [getattr(module, "__file__", None) or "", *list(getattr(module, "__path__", []) or [])]
    else:
        try:
            spec = importlib.util.find_spec(top)
        except (ImportError, ValueError):
            spec = None
        if spec is not None:
            locations = [spec.origin or "", *list(spec.submodule_search_locations or [])]
    for location in (loc for loc in locations if loc):
        if is_within(location, job_root):
            raise ImportFailure(f"module {module_name!r} for {path!r} would be imported from the job "
                                f"folder ({short_path(location)}), and {why}", hint)
    if file is not None and is_within(file, job_root):
        raise ImportFailure(f"{path!r} is the job's own code ({short_path(file)}), and {why}", hint)


def short_path(file: str) -> str:
    """The last three parts of ``file``, as messages show it."""
    path = Path(file)
    return str(Path(*path.parts[-3:])) if len(path.parts) > 3 else file


def _same_file(a: str, b: str) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:
        return os.path.realpath(a) == os.path.realpath(b)
