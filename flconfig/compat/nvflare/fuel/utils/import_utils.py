"""FLARE's ``optional_import``: import a module if it is there, a stand-in that raises if not."""

from __future__ import annotations

import importlib
from typing import Any


class LazyImportError(ImportError):
    """Raised when a module that could not be imported is used."""


class _Missing:
    """What ``optional_import`` returns for a module that is not installed: any use raises."""

    def __init__(self, message: str) -> None:
        self._message = message

    def __getattr__(self, name: str) -> Any:
        raise LazyImportError(self._message)

    def __call__(self, *args: Any, **kwargs: Any) -> Any:
        raise LazyImportError(self._message)


def optional_import(module: str, op: str = "==", version: str = "", name: str = "",
                    descriptor: str = "{}", allow_namespace_pkg: bool = False) -> tuple[Any, bool]:
    """``(module or its attribute name, True)``, or ``(stand-in, False)`` when it cannot be
    imported (the stand-in raises on use). ``op``/``version`` are accepted, not checked."""
    what = f"{module}.{name}" if name else module
    try:
        found = importlib.import_module(module)
        return (getattr(found, name) if name else found), True
    except (ImportError, AttributeError) as exc:
        return _Missing(f"{descriptor.format(what)}: {exc}" if "{}" in descriptor else f"{what}: {exc}"), False
