"""FLARE's ``nvflare.fuel.utils.log_utils``: the logger names FLARE's classes and job code use.

Loggers follow the module hierarchy, as in FLARE; where flconfig runs a job, they go to
the participant's log like every other logger.
"""

from __future__ import annotations

import inspect
import logging
import os


def get_module_logger(module: str | None = None, name: str | None = None) -> logging.Logger:
    """The logger of ``module`` (the caller's module when None), ``.name`` appended if given."""
    if module is None:
        frame = inspect.currentframe()
        caller = frame.f_back if frame is not None else None
        module = caller.f_globals.get("__name__", "") if caller is not None else ""
    return logging.getLogger(f"{module}.{name}" if name else module)


def get_obj_logger(obj: object) -> logging.Logger | None:
    """The logger of an object (``module.Class``) or of a class; None for a falsy ``obj``."""
    if isinstance(obj, type):
        return logging.getLogger(f"{obj.__module__}.{obj.__name__}")
    if obj:
        return logging.getLogger(f"{type(obj).__module__}.{type(obj).__qualname__}")
    return None


def get_script_logger() -> logging.Logger:
    """The logger of the calling script: ``package.file`` (``custom.file`` outside a package)."""
    frame = inspect.currentframe()
    caller = frame.f_back if frame is not None else None
    scope = caller.f_globals if caller is not None else {}
    package = scope.get("__package__") or "custom"
    file = scope.get("__file__") or ""
    return logging.getLogger(package + ("." + os.path.splitext(os.path.basename(file))[0] if file else ""))


def custom_logger(logger: logging.Logger) -> logging.Logger:
    """The logger named ``custom.<logger's name>``: FLARE's name for job code's own loggers."""
    return logging.getLogger(f"custom.{logger.name}")
