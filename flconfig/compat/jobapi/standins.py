"""FLARE's component classes while a job is authored in Python.

``from nvflare.app_common.workflows.fedavg import FedAvg`` in a ``job.py`` gets a
stand-in: a class named like FLARE's whose instances only record the arguments they
were given, and the line of the job script that made them. Exporting the job writes
``{"path": <FLARE's class path>, "args": <the arguments that differ from defaults>}``;
flconfig then runs the class the path stands for (:mod:`flconfig.registry.aliases`).
Nothing of the runtime is built or imported while the job is authored.

A stand-in exists for every FLARE class path flconfig runs. The defaults and the order of
positional arguments are read from the source of the flconfig class behind it, as
validation reads them; an argument the class does not take is still recorded (and then
reported at the job script's line by the check of the exported job).
"""

from __future__ import annotations

import enum
import functools
import inspect
import os
import sysconfig
from collections.abc import Mapping
from pathlib import Path
from typing import Any, ClassVar

from ...registry import MISSING, Registry, ResolveError
from ...registry.aliases import FLARE_ALIASES
from ...registry.flare_modules import component_modules

#: The flconfig package folder and the standard library's: frames inside them are not the
#: job script's (a recipe built inside a ``with`` block runs through contextlib).
_FLCONFIG_DIR = str(Path(__file__).resolve().parents[2]) + os.sep
_NOT_THE_SCRIPTS = (_FLCONFIG_DIR, *{os.path.abspath(sysconfig.get_paths()[k]) + os.sep
                                     for k in ("stdlib", "platstdlib")})


def authored_at(skip: int = 1) -> tuple[str, int] | None:
    """``(file, line)`` of the job script's code now running: the innermost frame outside
    flconfig (a recipe built by flconfig on the script's behalf points at the script's
    call of the recipe)."""
    frame = inspect.currentframe()
    for _ in range(skip):
        frame = frame.f_back if frame is not None else None
    while frame is not None:
        file = frame.f_code.co_filename
        if not os.path.abspath(file).startswith(_NOT_THE_SCRIPTS) and not file.startswith("<"):
            return os.path.abspath(file), frame.f_lineno
        frame = frame.f_back
    return None


class Standin:
    """Base of the stand-ins (see the module docstring)."""

    #: FLARE's class path the stand-in has the name of, and what flconfig runs for it.
    FLARE_PATH: ClassVar[str] = ""
    FLCONFIG_PATH: ClassVar[str] = ""
    #: The component's kind as the registry reads it (``workflow``, ``executor`` ...).
    KIND: ClassVar[str] = "unknown"
    KINDS: ClassVar[frozenset[str]] = frozenset()
    #: The constructor's parameters in order, and the literal defaults (name -> default).
    PARAMS: ClassVar[tuple[str, ...]] = ()
    DEFAULTS: ClassVar[Mapping[str, Any]] = {}
    VAR_KWARGS: ClassVar[bool] = True

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        named = [p for p in self.PARAMS if p not in kwargs]
        if len(args) > len(named):
            raise TypeError(f"{type(self).__name__}() takes at most {len(named)} positional "
                            f"argument(s) besides those named ({len(args)} given)")
        given: dict[str, Any] = dict(zip(named, args, strict=False))
        given.update(kwargs)
        #: The arguments as given, in the constructor's order (then any others).
        self._flconfig_args: dict[str, Any] = {p: given[p] for p in self.PARAMS if p in given}
        self._flconfig_args.update({k: v for k, v in given.items() if k not in self._flconfig_args})
        #: Where the job script made it.
        self._flconfig_site = authored_at(2)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        if "FLARE_PATH" not in cls.__dict__:  # a user's subclass, not one made below
            base = cls.__mro__[1]
            raise TypeError(
                f"{cls.__name__} subclasses {base.__name__}, which flconfig serves to job "
                f"scripts as a stand-in for {getattr(base, 'FLARE_PATH', '')}: it runs flconfig's own "
                "class, so a subclass of it cannot run. Subclass FLARE's API classes instead "
                "(ModelController, Executor, Filter, ...: docs/flare-support.md lists them)")

    def __getattr__(self, name: str) -> Any:
        args = self.__dict__.get("_flconfig_args", {})
        if name in args:
            return args[name]
        if name in self.DEFAULTS:
            return self.DEFAULTS[name]
        raise AttributeError(f"{type(self).__name__!r} object has no attribute {name!r}")

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self._flconfig_args.items())
        return f"{type(self).__name__}({args})"

    def exported_args(self) -> dict[str, Any]:
        """The arguments to write: those given, less those equal to their defaults."""
        return {k: v for k, v in self._flconfig_args.items()
                if k not in self.DEFAULTS or not _same(self.DEFAULTS[k], v)}


def _same(default: Any, value: Any) -> bool:
    if isinstance(value, enum.Enum) and not isinstance(default, enum.Enum):
        value = value.value  # ExchangeFormat.NUMPY is written "numpy", the default
    try:
        return bool(type(default) is type(value) and default == value)
    except Exception:  # a comparison that does not give a bool
        return False


@functools.lru_cache(maxsize=1)
def _registry() -> Any:
    return Registry.create(environ={})


@functools.cache
def standin_class(flare_path: str) -> type[Standin] | None:
    """The stand-in for the FLARE class at ``flare_path``, or None if flconfig runs none."""

    if flare_path not in FLARE_ALIASES:
        return None
    try:
        info = _registry().resolve("path", flare_path)
    except ResolveError:
        return None
    module, _, name = flare_path.rpartition(".")
    defaults = {n: spec.default for n, spec in info.args.items() if spec.default is not MISSING}
    namespace = {
        "FLARE_PATH": flare_path, "FLCONFIG_PATH": info.path, "KIND": info.kind,
        "KINDS": frozenset(info.kinds), "PARAMS": tuple(info.args), "DEFAULTS": defaults,
        "VAR_KWARGS": info.var_kwargs, "__module__": module,
        "__doc__": f"FLARE's {name}, while a job is authored: flconfig runs {info.path}.",
    }
    return type(name, (Standin,), namespace)


def lookup(module: str, name: str) -> type[Standin] | None:
    """The stand-in ``name`` of ``module``, if it has one (for a compat package's
    ``__getattr__``: ``from nvflare.app_opt.pt import PTFileModelPersistor``)."""
    path = component_modules().get(module, {}).get(name)
    return standin_class(path) if path else None


def populate(module: Any, *, authoring: bool) -> None:
    """Fill the synthesized module ``module`` (named like a FLARE module) with its classes,
    found on first use: while a job is authored, stand-ins (:func:`lookup`); where a job
    runs, the classes flconfig runs for FLARE's (:func:`runtime_class`)."""
    name_of = module.__name__
    find = lookup if authoring else runtime_class

    def __getattr__(name: str) -> Any:  # noqa: N807 - a module's __getattr__
        found = find(name_of, name)
        if found is None:
            raise AttributeError(f"module {name_of!r} has no attribute {name!r}")
        setattr(module, name, found)
        return found

    module.__getattr__ = __getattr__
    module.__all__ = sorted(component_modules().get(name_of, {}))
    module.__doc__ = (f"FLARE's {name_of}, served by flconfig: its classes are "
                      + ("stand-ins for the ones flconfig runs (a job is authored here)." if authoring
                         else "the ones flconfig runs for FLARE's."))
    module.FLCONFIG_STANDINS = authoring


def runtime_class(module: str, name: str) -> type | None:
    """The class flconfig runs for FLARE's ``module.name`` (``FedAvg`` of
    ``nvflare.app_common.workflows.fedavg``), imported; None if it runs none. What job code
    gets where a job runs: ``from nvflare.app_common.workflows.fedavg import FedAvg`` in a
    module of ``custom/`` is flconfig's FedAvg."""
    import importlib


    path = component_modules().get(module, {}).get(name)
    target = FLARE_ALIASES.get(path) if path else None
    if not target:
        return None
    owner, _, attr = target.rpartition(".")
    found = getattr(importlib.import_module(owner), attr, None)
    return found if isinstance(found, type) else None


@functools.cache
def _unknown_class(flare_path: str, kind: str) -> type[Standin]:
    module, _, name = flare_path.rpartition(".")
    namespace = {"FLARE_PATH": flare_path, "FLCONFIG_PATH": "", "KIND": kind, "KINDS": frozenset({kind}),
                 "__module__": module,
                 "__doc__": f"FLARE's {name}: flconfig runs no class for it (validation says so)."}
    return type(name, (Standin,), namespace)


def make(flare_path: str, *args: Any, kind: str = "component", **kwargs: Any) -> Standin:
    """An instance of the stand-in for ``flare_path`` made with these arguments (what FLARE's
    recipes build); for a FLARE class flconfig does not run, one of kind ``kind`` that only
    records them (checking the job then says the class is not supported yet)."""
    cls = standin_class(flare_path) or _unknown_class(flare_path, kind)
    obj = cls(*args, **kwargs)
    obj._flconfig_site = authored_at(2)
    return obj
