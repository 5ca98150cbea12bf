"""Python objects of a job script to config entries, ``custom/`` files and a job folder.

A component becomes ``{"path": ..., "args": ...}`` as FLARE exports it:

- a stand-in (:mod:`.standins`) gives FLARE's class path and the arguments it was given
  that differ from their defaults;
- any other object (a model instance, a class of the job's own) gives its class path
  (``module.Class``; a class of the job script itself is ``<script name>.Class``) and the
  arguments FLARE recovers: each ``__init__`` parameter kept on the instance as ``name``
  or ``_name``, when it differs from its default. A parameter that is not kept cannot be
  recovered — FLARE drops it silently; here it is a problem at the job script's line
  (an error when it has no default: the exported job could not build the object).

The module of a job's own class is copied into the app's ``custom/`` folder, with the
modules of the job folder it imports; installed packages are not copied (a site must
have them, as it must have torch).
"""

from __future__ import annotations

import ast
import enum
import inspect
import json
import math
import os
import shutil
import sys
import sysconfig
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import JsonPath, Position, Problem, display_path
from .standins import Standin

#: The stand-ins' modules are served as ``nvflare.*`` from this package.
_COMPAT_PREFIX = "flconfig.compat.nvflare."
#: Folders that hold installed code, never copied into a job.
_INSTALLED = tuple(
    os.path.realpath(p) + os.sep
    for p in {sysconfig.get_paths().get(k, "") for k in ("stdlib", "platstdlib", "purelib", "platlib")} if p
)
_BUILTIN_TYPES = (type(None), bool, int, float, str)


@dataclass
class Authored:
    """Where the job script made something: ``file`` and ``line`` (None: not known)."""

    file: str | None = None
    line: int | None = None

    @classmethod
    def of(cls, obj: Any, fallback: tuple[str, int] | None = None) -> Authored:
        site = getattr(obj, "_flconfig_site", None) if isinstance(obj, Standin) else None
        site = site or fallback
        return cls(*site) if site else cls()

    def position(self) -> Position | None:
        return Position(display_path(self.file), self.line or 0, 1) if self.file else None


@dataclass
class Resources:
    """What one app's ``custom/`` (and ``config/``) folders get: destination -> source."""

    custom: dict[str, Path] = field(default_factory=dict)
    config: dict[str, Path] = field(default_factory=dict)
    folders: list[tuple[Path, str, str]] = field(default_factory=list)  # (source dir, kind, dest)

    def add(self, dest: str, source: Path, kind: str = "custom") -> None:
        table = self.custom if kind == "custom" else self.config
        known = table.get(dest)
        if known is not None and os.path.realpath(known) != os.path.realpath(source):
            raise ValueError(f"two files would be {kind}/{dest}: {known} and {source}")
        table[dest] = source


class Exporter:
    """Turns one app's objects into config values, collecting its ``custom/`` files and the
    problems FLARE would have exported silently."""

    def __init__(self, resources: Resources, roots: Iterable[Path], problems: list[Problem]) -> None:
        self.resources = resources
        #: Folders whose modules are the job's own (copied into custom/): the job script's
        #: folder and the working folder.
        self.roots = [Path(os.path.realpath(r)) for r in roots]
        self.problems = problems
        self._copied: set[str] = set()

    # -- components -------------------------------------------------------------------

    def spec(self, obj: Any, where: Authored) -> dict[str, Any]:
        """``{"path", "args"}`` of the component ``obj``."""
        if isinstance(obj, Standin):
            here = Authored.of(obj) if obj._flconfig_site else where
            args = {k: self.value(v, here, f"argument {k!r} of {type(obj).__name__}")
                    for k, v in obj.exported_args().items()}
            if not obj.FLARE_PATH.startswith("nvflare."):
                self.copy_dotted(obj.FLARE_PATH)  # a class of the job's, named by its path
            return {"path": obj.FLARE_PATH, "args": args}
        return self._object(obj, where)

    def copy_dotted(self, path: str) -> None:
        """The job's own module a dotted class path names, into ``custom/`` (if it is one)."""
        parts = path.split(".")
        for cut in range(len(parts) - 1, 0, -1):
            for root in self.roots:
                found = self._local_module(".".join(parts[:cut]), root / "_")
                if found is not None:
                    self.copy_module(*found)
                    return

    def _object(self, obj: Any, where: Authored) -> dict[str, Any]:
        cls = type(obj)
        path = self.class_path(cls, where)
        args: dict[str, Any] = {}
        for name, param in _init_params(cls):
            found, value = _recover(obj, name)
            if not found:
                required = param.default is inspect.Parameter.empty
                self._problem(
                    "error" if required else "warning", "argument-not-recovered",
                    f"{cls.__name__}: argument {name!r} cannot be written into the job: the object "
                    f"does not keep it as self.{name} or self._{name}"
                    + (", and it has no default, so the exported job cannot build it" if required
                       else "; the exported job gives it its default"), where,
                    f"keep it on the object (self.{name} = {name} in {cls.__name__}.__init__), or pass "
                    "the class and its arguments as a dict {\"path\": ..., \"args\": {...}} "
                    "(FLARE drops such an argument without a word)")
                continue
            if param.default is not inspect.Parameter.empty and _same(param.default, value):
                continue
            args[name] = self.value(value, where, f"argument {name!r} of {cls.__name__}")
        return {"path": path, "args": args}

    def value(self, value: Any, where: Authored, what: str) -> Any:
        """``value`` as config data (a component value as a nested spec)."""
        if isinstance(value, bool) or value is None or isinstance(value, (int, str)):
            return value
        if isinstance(value, float):
            if not math.isfinite(value):
                self._problem("error", "not-json", f"{what} is {value}, which a config cannot hold",
                              where, "use a finite number")
            return value
        if isinstance(value, enum.Enum):
            return self.value(value.value, where, what)
        if isinstance(value, Mapping):
            if isinstance(value.get("path"), str) and isinstance(value.get("args", {}), Mapping):
                self.copy_dotted(value["path"])  # {"path": "model.Net", "args": ...}: the job's module
            return {str(k): self.value(v, where, what) for k, v in value.items()}
        if isinstance(value, (list, tuple)):
            return [self.value(v, where, what) for v in value]
        if isinstance(value, (set, frozenset)):
            return [self.value(v, where, what) for v in sorted(value, key=repr)]
        if hasattr(value, "tolist") and type(value).__module__.split(".", 1)[0] == "numpy":
            return value.tolist()  # a NumPy array or scalar
        if isinstance(value, Path):
            return str(value)
        if inspect.isclass(value) or inspect.isroutine(value) or inspect.ismodule(value):
            self._problem("error", "not-json", f"{what} is {_kind(value)}, which a config cannot hold",
                          where, "give an instance, or the dotted path of the class as a string")
            return f"{getattr(value, '__module__', '')}.{getattr(value, '__qualname__', '')}".strip(".")
        return self.spec(value, where)

    def class_path(self, cls: type, where: Authored) -> str:
        """The dotted path a config names ``cls`` by; the job's own modules are copied."""
        module = cls.__module__
        if module.startswith(_COMPAT_PREFIX):
            return "nvflare." + module[len(_COMPAT_PREFIX):] + "." + cls.__name__
        file = _source_file(cls)
        if module == "__main__":
            if file is None:
                self._problem("error", "not-exportable", f"{cls.__name__} is defined where no file "
                              "holds it (an interactive session)", where,
                              "define the class in a module of the job's folder")
                return f"__main__.{cls.__name__}"
            module = Path(file).stem
            self.copy_module(Path(file), Path(file).name)
        elif file is not None and self.is_own(file):
            self.copy_module(Path(file), _module_file_name(module, file))
        return f"{module}.{cls.__name__}"

    # -- files --------------------------------------------------------------------------

    def is_own(self, file: str | os.PathLike[str]) -> bool:
        """Whether ``file`` is the job's own code: under the script's or the working folder,
        not in an installed package or the standard library."""
        real = os.path.realpath(file)
        if real.startswith(_INSTALLED) or real.startswith(str(Path(__file__).resolve().parents[2]) + os.sep):
            return False
        return any(real.startswith(str(root) + os.sep) for root in self.roots)

    def copy_module(self, source: Path, dest: str) -> None:
        """Copy ``source`` into ``custom/dest`` (packages with their ``__init__.py``), and the
        job's own modules it imports."""
        if dest in self._copied:
            return
        self._copied.add(dest)
        self.resources.add(dest, source)
        parts = Path(dest).parts[:-1]
        folder = source.parent
        for depth in range(len(parts), 0, -1):  # the __init__.py of each package it is in
            dest_init = "/".join([*parts[:depth], "__init__.py"])
            init = folder / "__init__.py"
            if init.is_file() and dest_init not in self._copied:
                self._copied.add(dest_init)
                self.resources.add(dest_init, init.resolve())
            folder = folder.parent
        self.copy_imports(source, dest)

    def copy_script(self, script: Path, dest: str) -> None:
        """A script run on the sites (``ScriptRunner``'s): into ``custom/dest``, with its imports."""
        self.copy_module(script, dest)

    def copy_imports(self, source: Path, dest: str) -> None:
        """The job's own modules that ``source`` imports, beside it in ``custom/``."""
        try:
            tree = ast.parse(source.read_text(encoding="utf-8", errors="replace"))
        except (OSError, SyntaxError, ValueError):
            return
        package = list(Path(dest).parts[:-1])
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = package[: len(package) - node.level + 1] if node.level > 1 else package
                    prefix = ".".join(base)
                    module = ".".join(p for p in (prefix, node.module or "") if p)
                    names = [module] + [f"{module}.{a.name}" for a in node.names]
                elif node.module:
                    names = [node.module] + [f"{node.module}.{a.name}" for a in node.names]
            for name in names:
                found = self._local_module(name, source)
                if found is not None:
                    self.copy_module(*found)

    def _local_module(self, name: str, importer: Path) -> tuple[Path, str] | None:
        """The file of the job's own module ``name`` (searched beside ``importer``, in its
        parent and in the job's roots) and its place under ``custom/``."""
        if not name or name.split(".", 1)[0] in sys.stdlib_module_names:
            return None
        parts = name.split(".")
        for folder in dict.fromkeys([importer.parent, importer.parent.parent, *self.roots]):
            base = folder.joinpath(*parts)
            for candidate, dest in ((base.with_suffix(".py"), "/".join(parts) + ".py"),
                                    (base / "__init__.py", "/".join(parts) + "/__init__.py")):
                if candidate.is_file() and self.is_own(candidate):
                    return candidate.resolve(), dest
        return None

    # -- problems -----------------------------------------------------------------------

    def _problem(self, severity: str, code: str, message: str, where: Authored, hint: str | None) -> None:
        self.problems.append(Problem(severity, code, message, where.position(), (), hint))  # type: ignore[arg-type]


def _init_params(cls: type) -> list[tuple[str, inspect.Parameter]]:
    """FLARE's view of a class's constructor parameters: ``__init__``'s, and where it takes
    both ``*args`` and ``**kwargs``, its bases' too (own first); never ``args``/``kwargs``."""
    out: dict[str, inspect.Parameter] = {}
    for klass in cls.__mro__:
        init = klass.__dict__.get("__init__")
        if init is None:
            continue
        try:
            params = list(inspect.signature(init).parameters.values())[1:]
        except (TypeError, ValueError):
            break
        for param in params:
            if param.kind in (param.VAR_POSITIONAL, param.VAR_KEYWORD) or param.name in ("args", "kwargs"):
                continue
            out.setdefault(param.name, param)
        kinds = {p.kind for p in params}
        if not (inspect.Parameter.VAR_POSITIONAL in kinds and inspect.Parameter.VAR_KEYWORD in kinds):
            break
    return list(out.items())


def _recover(obj: Any, name: str) -> tuple[bool, Any]:
    state = getattr(obj, "__dict__", {})
    if name in state:
        return True, state[name]
    if f"_{name}" in state:
        return True, state[f"_{name}"]
    return False, None


def _same(default: Any, value: Any) -> bool:
    if isinstance(value, enum.Enum) and not isinstance(default, enum.Enum):
        value = value.value
    if default is None or value is None:
        return default is value
    try:
        return bool(type(default) is type(value) and default == value) is True
    except Exception:
        return False


def _source_file(cls: type) -> str | None:
    try:
        return inspect.getsourcefile(cls)
    except (TypeError, OSError):
        module = sys.modules.get(cls.__module__)
        return getattr(module, "__file__", None)


def _module_file_name(module: str, file: str) -> str:
    parts = module.split(".")
    if Path(file).name == "__init__.py":
        return "/".join(parts) + "/__init__.py"
    return "/".join(parts) + ".py"


def _kind(value: Any) -> str:
    if inspect.isclass(value):
        return f"the class {value.__qualname__}"
    if inspect.ismodule(value):
        return f"the module {value.__name__}"
    return f"the function {getattr(value, '__qualname__', value)}"


# --- writing ----------------------------------------------------------------------------------


def write_json(path: Path, data: Any) -> None:
    """``data`` as indented JSON at ``path`` (made with its folder)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")


def copy_resources(app_dir: Path, resources: Resources) -> None:
    """Copy one app's files into ``app_dir/custom`` and ``app_dir/config``."""
    for kind, table in (("custom", resources.custom), ("config", resources.config)):
        for dest, source in sorted(table.items()):
            target = app_dir / kind / dest
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
    for source, kind, dest in resources.folders:
        shutil.copytree(source, app_dir / kind / dest, dirs_exist_ok=True,
                        ignore=shutil.ignore_patterns("__pycache__", ".git"))


#: A JSON path inside a config, and where the job script made what is written there.
Provenance = dict[JsonPath, Authored]
