"""Describe a class from its source code, without importing it.

``flconfig validate`` must know each component's kind and arguments while
importing nothing the job names: not torch, not the job's ``custom/`` code,
not a module a config merely mentions. This module reads Python source with
:mod:`ast` and answers from it: the class's bases (followed through
``import`` statements into other parseable modules), its kind, its
``__init__`` signature (inherited ones included), and its literal class
attributes.

A subclass states only the parameters that differ: an ``__init__`` that passes its
``**kwargs`` on (``super().__init__(..., **kwargs)``, ``super(Cls, self).__init__``,
``Base.__init__(self, ..., **kwargs)``, through any number of levels) accepts its base's
parameters too, less those the call sets itself. With ``*args`` forwarded as well, the
base's order is kept and a restated parameter (a changed default) keeps its place.

Anything it cannot see (a compiled module, a base built at run time) gives
``None`` fields, never an exception.
"""

from __future__ import annotations

import ast
import importlib.util
import os
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any

from .aliases import FLARE_ALIASES

__all__ = [
    "BASE_KINDS",
    "NOT_LITERAL",
    "NO_DEFAULT",
    "ClassDescription",
    "Introspector",
    "Param",
    "clear_cache",
    "describe_class",
    "kind_closure",
    "parse_error",
    "parse_module",
]


class _Sentinel:
    def __init__(self, name: str) -> None:
        self._name = name

    def __repr__(self) -> str:
        return self._name

    def __reduce__(self) -> str:
        return self._name


#: A default that is not a literal (a call, an expression): it exists, but
#: its value is not known without running the code.
NOT_LITERAL: Any = _Sentinel("NOT_LITERAL")
#: The default of a parameter that has none.
NO_DEFAULT: Any = _Sentinel("NO_DEFAULT")

#: Base-class names that fix a component's kind when the base itself cannot
#: be read (FLARE is not installed, or is not followed): flconfig's base
#: classes, FLARE's classes of the same role, and torch's ``Module``.
BASE_KINDS: Mapping[str, str] = MappingProxyType(
    {
        "FLComponent": "component",
        "Learner": "learner",
        "ModelLearner": "learner",
        "Executor": "executor",
        "Controller": "workflow",
        "ModelController": "workflow",
        "Responder": "workflow",
        "Aggregator": "aggregator",
        "ModelAggregator": "aggregator",
        "ShareableGenerator": "shareable_generator",
        "ModelPersistor": "persistor",
        "LearnablePersistor": "persistor",
        "ModelLocator": "model_locator",
        "Filter": "filter",
        "DXOFilter": "filter",
        "Widget": "widget",
        "AnalyticsSender": "analytics_sender",
        "LogWriter": "analytics_sender",
        "AnalyticsReceiver": "receiver",
        "Module": "model",
    }
)

_WIDGET_KINDS = frozenset({"analytics_sender", "receiver"})


def kind_closure(kind: str) -> frozenset[str]:
    """A kind with the kinds it implies: every kind but ``model`` is a
    ``component``; senders and receivers are widgets."""
    kinds = {kind}
    if kind in _WIDGET_KINDS:
        kinds.add("widget")
    if kind != "model":
        kinds.add("component")
    return frozenset(kinds)


_FLCONFIG_DIR = Path(__file__).resolve().parent.parent  # the flconfig package
_COMPONENT_ROOT = "flconfig.interfaces.Component"
_MAX_DEPTH = 40


@dataclass(frozen=True)
class Param:
    """One ``__init__`` parameter, as written in the source."""

    name: str
    #: ``positional_only``, ``positional_or_keyword`` or ``keyword_only``.
    kind: str
    #: The annotation's source text (``"list[str] | None"``), or None.
    annotation: str | None
    #: The literal default, :data:`NOT_LITERAL`, or :data:`NO_DEFAULT`.
    default: Any = NO_DEFAULT

    @property
    def required(self) -> bool:
        return self.default is NO_DEFAULT


# Bases known without reading them: dotted path -> (kind, __init__ params).
# Params ``()`` means "takes no arguments"; ``None`` means unknown. torch's
# Module is here so that describing a model never parses torch.
_TERMINALS: Mapping[str, tuple[str | None, tuple[Param, ...] | None]] = {
    "builtins.object": (None, ()),
    "abc.ABC": (None, ()),
    "typing.Generic": (None, ()),
    "typing.Protocol": (None, ()),
    "torch.nn.Module": ("model", ()),
    "torch.nn.modules.module.Module": ("model", ()),
}


@dataclass(frozen=True)
class ClassDescription:
    """What the source says about a class."""

    #: ``module.qualname`` of the class where it is defined.
    path: str
    module: str
    qualname: str
    file: str | None
    line: int
    #: Dotted paths of the class's ancestors in method-resolution order
    #: (the class itself left out); unreadable ones by their best-known path.
    bases: tuple[str, ...]
    #: The kind from the nearest known base, or None.
    kind: str | None
    #: The kind and every kind it inherits.
    kinds: frozenset[str]
    #: Every base was followed to a known end (so ``kind is None`` means the
    #: class really is no component, not that a base could not be read).
    complete: bool
    #: The ``__init__`` parameters after ``self``; None when not known.
    params: tuple[Param, ...] | None
    var_args: bool
    var_kwargs: bool
    #: Dotted path of the class whose ``__init__`` is used, or None.
    init_owner: str | None
    #: Literal UPPER_CASE class attributes, inherited ones included
    #: (``REFERENCES``, ``ARGS_SCHEMA``, ``EMITS_ARG`` ...); ``ARGS_SCHEMA`` entries
    #: of the bases are kept unless the class refines the same argument.
    attributes: Mapping[str, Any]
    docstring: str | None = None
    #: Argument descriptions from the ``Args:`` section of the docstrings.
    arg_docs: Mapping[str, str] = field(default_factory=dict)


# --------------------------------------------------------------------------
# Parsing, cached by file and modification time


@dataclass
class _ParsedFile:
    stamp: tuple[int, int]
    tree: ast.Module | None
    error: str | None = None


_PARSE_CACHE: dict[str, _ParsedFile] = {}


def parse_module(path: str | os.PathLike[str]) -> ast.Module | None:
    """The syntax tree of a Python file, or None if it cannot be read or parsed.

    Trees are cached by path, modification time and size.
    """
    key = os.fspath(path)
    try:
        st = os.stat(key)
    except OSError:
        return None
    stamp = (st.st_mtime_ns, st.st_size)
    cached = _PARSE_CACHE.get(key)
    if cached is not None and cached.stamp == stamp:
        return cached.tree
    error = None
    try:
        with open(key, "rb") as fh:
            source = fh.read()
        tree: ast.Module | None = ast.parse(source, filename=key)
    except SyntaxError as exc:
        tree, error = None, f"syntax error at line {exc.lineno}: {exc.msg}"
    except (OSError, ValueError, RecursionError) as exc:
        tree, error = None, f"cannot be read: {exc}"
    _PARSE_CACHE[key] = _ParsedFile(stamp, tree, error)
    return tree


def parse_error(path: str | os.PathLike[str]) -> str | None:
    """Why :func:`parse_module` gave None for a file (``"syntax error at line 3: ..."``)."""
    parse_module(path)
    cached = _PARSE_CACHE.get(os.fspath(path))
    return cached.error if cached is not None else "cannot be read"


# --------------------------------------------------------------------------
# One module's top-level names


@dataclass
class _ModuleIndex:
    name: str
    file: str
    is_package: bool
    classes: dict[str, ast.ClassDef]
    #: local name -> dotted module (``import a.b as c``; ``import a`` binds ``a``)
    module_imports: dict[str, str]
    #: local name -> (absolute module, name) for ``from m import n as local``
    from_imports: dict[str, tuple[str, str]]
    star_imports: list[str]
    #: local name -> literal value of module-level ``NAME = literal``
    constants: dict[str, Any]
    #: local name -> expression of module-level ``Name = other.Name``
    aliases: dict[str, ast.expr]
    #: module-level ``def`` statements: factories a config may name by ``path`` (FLARE
    #: calls whatever the path names, ``networks.vgg.vgg11`` included)
    functions: dict[str, ast.FunctionDef] = field(default_factory=dict)


def _top_level_statements(body: Iterable[ast.stmt]) -> Iterable[ast.stmt]:
    # Imports inside ``if TYPE_CHECKING:`` / ``try: ... except ImportError:``
    # at module level still bind names; functions and classes do not count.
    for stmt in body:
        if isinstance(stmt, ast.If):
            yield from _top_level_statements(stmt.body)
            yield from _top_level_statements(stmt.orelse)
        elif isinstance(stmt, ast.Try):
            yield from _top_level_statements(stmt.body)
            for handler in stmt.handlers:
                yield from _top_level_statements(handler.body)
            yield from _top_level_statements(stmt.orelse)
            yield from _top_level_statements(stmt.finalbody)
        else:
            yield stmt


def _absolute_module(
    index_name: str, is_package: bool, module: str | None, level: int
) -> str | None:
    if level == 0:
        return module
    package = index_name if is_package else index_name.rpartition(".")[0]
    parts = package.split(".") if package else []
    if level - 1 > len(parts) or (level - 1 == len(parts) and not module):
        return None
    base = parts[: len(parts) - (level - 1)]
    if module:
        base.append(module)
    return ".".join(base) or None


def _literal(node: ast.expr | None) -> Any:
    if node is None:
        return NOT_LITERAL
    try:
        return ast.literal_eval(node)
    except (ValueError, TypeError, SyntaxError, MemoryError, RecursionError):
        return NOT_LITERAL


def _build_index(name: str, file: str, tree: ast.Module) -> _ModuleIndex:
    is_package = os.path.basename(file) == "__init__.py"
    index = _ModuleIndex(name, file, is_package, {}, {}, {}, [], {}, {})
    for stmt in _top_level_statements(tree.body):
        if isinstance(stmt, ast.ClassDef):
            index.classes[stmt.name] = stmt
        elif isinstance(stmt, ast.FunctionDef):
            index.functions[stmt.name] = stmt
        elif isinstance(stmt, ast.Import):
            for alias in stmt.names:
                if alias.asname:
                    index.module_imports[alias.asname] = alias.name
                else:
                    top = alias.name.partition(".")[0]
                    index.module_imports[top] = top
        elif isinstance(stmt, ast.ImportFrom):
            source = _absolute_module(name, is_package, stmt.module, stmt.level)
            if source is None:
                continue
            for alias in stmt.names:
                if alias.name == "*":
                    index.star_imports.append(source)
                else:
                    index.from_imports[alias.asname or alias.name] = (source, alias.name)
        elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
            targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
            value = stmt.value
            for target in targets:
                if not isinstance(target, ast.Name) or value is None:
                    continue
                literal = _literal(value)
                if literal is not NOT_LITERAL:
                    index.constants[target.id] = literal
                elif isinstance(value, (ast.Name, ast.Attribute)):
                    index.aliases[target.id] = value
    return index


# --------------------------------------------------------------------------
# Resolution results


@dataclass(frozen=True)
class _ClassRef:
    module: str
    qualname: str
    node: ast.ClassDef
    index: _ModuleIndex

    @property
    def path(self) -> str:
        return f"{self.module}.{self.qualname}"


@dataclass(frozen=True)
class _FunctionRef:
    """A module-level function (a factory such as ``vgg11``)."""

    module: str
    name: str
    node: ast.FunctionDef
    index: _ModuleIndex

    @property
    def path(self) -> str:
        return f"{self.module}.{self.name}"


@dataclass(frozen=True)
class _ModuleRef:
    module: str


@dataclass(frozen=True)
class _Unresolved:
    #: The best-known dotted path of what could not be read.
    dotted: str


_Target = _ClassRef | _FunctionRef | _ModuleRef | _Unresolved


@dataclass
class _Terminal:
    """A base that is not followed further."""

    path: str
    kind: str | None
    params: tuple[Param, ...] | None
    known: bool


@dataclass
class _Node:
    """A parsed class in a base chain."""

    ref: _ClassRef
    bases: list[_Node | _Terminal]
    attributes: dict[str, Any]
    init: ast.FunctionDef | None
    is_dataclass: bool

    @property
    def path(self) -> str:
        return self.ref.path


_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class Introspector:
    """Reads classes from source, following imports between modules.

    ``search_path`` folders (a job's ``custom/`` folders) are searched for
    modules before the installed packages. Modules under ``flconfig`` are
    always read from this package. Results are cached per instance; parsed
    files are cached for the whole process.
    """

    def __init__(self, search_path: Sequence[str | os.PathLike[str]] = ()) -> None:
        self.search_path: tuple[Path, ...] = tuple(Path(p) for p in search_path)
        self._files: dict[str, str | None] = {}
        self._indexes: dict[str, _ModuleIndex | None] = {}
        self._nodes: dict[str, _Node | None] = {}
        self._descriptions: dict[str, ClassDescription | None] = {}
        self._alias_targets: Mapping[str, str] | None = None

    # -- modules -----------------------------------------------------------

    def module_file(self, module: str) -> str | None:
        """The ``.py`` file of a module (a package's ``__init__.py``), or None.

        Found without importing anything: in the search path, in this
        package for ``flconfig.*``, else through ``importlib.util.find_spec``
        on the top-level package and a walk of its folders.
        """
        if module in self._files:
            return self._files[module]
        found = self._find_module_file(module)
        self._files[module] = found
        return found

    def _find_module_file(self, module: str) -> str | None:
        parts = module.split(".")
        if not all(_IDENT.match(p) for p in parts):
            return None
        if parts[0] == "flconfig":
            return _file_in(_FLCONFIG_DIR, parts[1:], package_ok=True)
        for folder in self.search_path:
            found = _file_in(folder, parts, package_ok=True)
            if found is not None:
                return found
        return find_installed_module_file(module)

    def module_in_search_path(self, module: str) -> str | None:
        """The file of ``module`` if it lies in one of the search-path folders."""
        parts = module.split(".")
        if not all(_IDENT.match(p) for p in parts):
            return None
        for folder in self.search_path:
            found = _file_in(folder, parts, package_ok=True)
            if found is not None:
                return found
        return None

    def _index(self, module: str) -> _ModuleIndex | None:
        if module in self._indexes:
            return self._indexes[module]
        index = None
        file = self.module_file(module)
        if file is not None:
            tree = parse_module(file)
            if tree is not None:
                index = _build_index(module, file, tree)
        self._indexes[module] = index
        return index

    def class_names(self, module: str) -> list[str] | None:
        """Names of the public classes defined (not imported) at the top of a
        module, in source order; None if the module cannot be read."""
        index = self._index(module)
        if index is None:
            return None
        return [name for name in index.classes if not name.startswith("_")]

    # -- name lookup ---------------------------------------------------------

    def _lookup(self, module: str, name: str, seen: set[tuple[str, str]]) -> _Target:
        key = (module, name)
        if key in seen or len(seen) > 200:
            return _Unresolved(f"{module}.{name}")
        seen.add(key)
        index = self._index(module)
        if index is None:
            if self.module_file(f"{module}.{name}") is not None:
                return _ModuleRef(f"{module}.{name}")
            return _Unresolved(f"{module}.{name}")
        if name in index.classes:
            return _ClassRef(module, name, index.classes[name], index)
        if name in index.functions:
            return _FunctionRef(module, name, index.functions[name], index)
        if name in index.from_imports:
            source, imported = index.from_imports[name]
            target = self._lookup(source, imported, seen)
            if (
                isinstance(target, _Unresolved)
                and self.module_file(f"{source}.{imported}") is not None
            ):
                return _ModuleRef(f"{source}.{imported}")
            return target
        if name in index.module_imports:
            return _ModuleRef(index.module_imports[name])
        if name in index.aliases:
            return self._resolve_expr(index, index.aliases[name], seen)
        for source in index.star_imports:
            target = self._lookup(source, name, seen)
            if not isinstance(target, _Unresolved):
                return target
        if index.is_package and self.module_file(f"{module}.{name}") is not None:
            return _ModuleRef(f"{module}.{name}")
        return _Unresolved(f"{module}.{name}")

    def _resolve_expr(
        self, index: _ModuleIndex, expr: ast.expr, seen: set[tuple[str, str]]
    ) -> _Target:
        """Resolve a Name or dotted Attribute expression in a module's namespace."""
        dotted = _dotted(expr)
        if dotted is None:
            return _Unresolved(ast.unparse(expr))
        head, chain = dotted
        if head in index.classes or head in index.from_imports or head in index.module_imports:
            target: _Target = self._lookup(index.name, head, seen)
        elif head in index.aliases:
            key = (index.name, f"={head}")
            if key in seen:
                return _Unresolved(f"{index.name}.{head}")
            seen.add(key)
            target = self._resolve_expr(index, index.aliases[head], seen)
        else:
            target = self._lookup(index.name, head, seen)
            if isinstance(target, _Unresolved):
                # Not bound in the module: a builtin such as ``object``.
                target = _Unresolved(f"builtins.{head}")
        for attr in chain:
            target = self._attribute(target, attr, seen)
        return target

    def _attribute(self, target: _Target, attr: str, seen: set[tuple[str, str]]) -> _Target:
        if isinstance(target, _ModuleRef):
            return self._lookup(target.module, attr, seen)
        if isinstance(target, _ClassRef):
            for stmt in target.node.body:
                if isinstance(stmt, ast.ClassDef) and stmt.name == attr:
                    return _ClassRef(target.module, f"{target.qualname}.{attr}", stmt, target.index)
            return _Unresolved(f"{target.path}.{attr}")
        if isinstance(target, _FunctionRef):
            return _Unresolved(f"{target.path}.{attr}")
        return _Unresolved(f"{target.dotted}.{attr}")

    def _lookup_dotted(self, dotted: str) -> _Target:
        parts = dotted.split(".")
        if len(parts) < 2 or not all(_IDENT.match(p) for p in parts):
            return _Unresolved(dotted)
        for cut in range(len(parts) - 1, 0, -1):
            module = ".".join(parts[:cut])
            if self.module_file(module) is None:
                continue
            target: _Target = _ModuleRef(module)
            seen: set[tuple[str, str]] = set()
            for attr in parts[cut:]:
                target = self._attribute(target, attr, seen)
            return target
        return _Unresolved(dotted)

    # -- base chains ---------------------------------------------------------

    def _aliases(self) -> Mapping[str, str]:
        if self._alias_targets is None:
            self._alias_targets = FLARE_ALIASES
        return self._alias_targets

    def _base_entry(self, owner: _ClassRef, expr: ast.expr, depth: int) -> _Node | _Terminal:
        while isinstance(expr, ast.Subscript):  # Generic[T], Base[int]
            expr = expr.value
        # The path as the imports spell it, checked before reading any other
        # module: ``nn.Module`` after ``from torch import nn`` must not parse torch.
        spelled = _spelled_path(owner.index, expr)
        if spelled is not None and (spelled in _TERMINALS or spelled in self._aliases()):
            return self._terminal_for(spelled, depth)
        target = self._resolve_expr(owner.index, expr, set())
        if isinstance(target, _ClassRef):
            if target.path in _TERMINALS:
                kind, params = _TERMINALS[target.path]
                return _Terminal(target.path, kind, params, True)
            node = self._node(target, depth + 1)
            if node is not None:
                return node
            return _Terminal(target.path, None, None, False)
        dotted = target.dotted if isinstance(target, _Unresolved) else target.module
        return self._terminal_for(dotted, depth)

    def _terminal_for(self, dotted: str, depth: int) -> _Node | _Terminal:
        if dotted in _TERMINALS:
            kind, params = _TERMINALS[dotted]
            return _Terminal(dotted, kind, params, True)
        alias = self._aliases().get(dotted)
        if alias is not None:
            # A class deriving from a FLARE class flconfig stands in for.
            target = self._lookup_dotted(alias)
            if isinstance(target, _ClassRef):
                node = self._node(target, depth + 1)
                if node is not None:
                    return node
        name = dotted.rpartition(".")[2]
        if dotted.startswith("builtins."):
            return _Terminal(dotted, None, None, True)
        if name in BASE_KINDS:
            return _Terminal(dotted, BASE_KINDS[name], None, True)
        return _Terminal(dotted, None, None, False)

    def _node(self, ref: _ClassRef, depth: int = 0) -> _Node | None:
        key = ref.path
        if key in self._nodes:
            return self._nodes[key]
        if depth > _MAX_DEPTH:
            return None
        self._nodes[key] = None  # cycle guard
        bases: list[_Node | _Terminal] = []
        for expr in ref.node.bases:
            bases.append(self._base_entry(ref, expr, depth))
        if not bases:
            bases.append(_Terminal("builtins.object", None, (), True))
        attributes: dict[str, Any] = {}
        init: ast.FunctionDef | None = None
        for stmt in ref.node.body:
            if isinstance(stmt, ast.FunctionDef) and stmt.name == "__init__":
                init = stmt
            elif isinstance(stmt, (ast.Assign, ast.AnnAssign)):
                targets = stmt.targets if isinstance(stmt, ast.Assign) else [stmt.target]
                for target in targets:
                    if isinstance(target, ast.Name) and stmt.value is not None:
                        if target.id == "__init__":
                            init = None
                        value = _literal(stmt.value)
                        if value is not NOT_LITERAL:
                            attributes[target.id] = value
        node = _Node(ref, bases, attributes, init, _is_dataclass(ref.node))
        self._nodes[key] = node
        return node

    # -- descriptions --------------------------------------------------------

    def describe(self, module: str, qualname: str) -> ClassDescription | None:
        """Describe ``module.qualname`` (following re-exports), or None if the
        class cannot be found in readable source."""
        return self.describe_path(f"{module}.{qualname}")

    def describe_path(self, dotted: str) -> ClassDescription | None:
        """Describe the class at a dotted path, or None if it cannot be found."""
        if dotted in self._descriptions:
            return self._descriptions[dotted]
        description = None
        try:
            target = self._lookup_dotted(dotted)
            if isinstance(target, _ClassRef):
                description = self._describe_ref(target)
            elif isinstance(target, _FunctionRef):
                description = self._describe_function(target)
        except RecursionError:  # pathological sources; never an exception
            description = None
        self._descriptions[dotted] = description
        return description

    def _describe_function(self, ref: _FunctionRef) -> ClassDescription:
        """A factory function as a component: its parameters, and the kind of the class its
        return annotation names (unknown without one)."""
        returned: ClassDescription | None = None
        if ref.node.returns is not None:
            target = self._resolve_expr(ref.index, ref.node.returns, set())
            if isinstance(target, _ClassRef):
                returned = self._describe_ref(target)
        params, var_args, kwargs_name = _params_of(ref.node, ref.index, method=False)
        return ClassDescription(
            path=ref.path,
            module=ref.module,
            qualname=ref.name,
            file=ref.index.file,
            line=ref.node.lineno,
            bases=(returned.path, *returned.bases) if returned is not None else (),
            kind=returned.kind if returned is not None else None,
            kinds=returned.kinds if returned is not None else frozenset(),
            complete=returned.complete if returned is not None else False,
            params=params,
            var_args=var_args,
            var_kwargs=kwargs_name is not None,
            init_owner=ref.path,
            attributes=MappingProxyType({}),
            docstring=ast.get_docstring(ref.node),
            arg_docs=MappingProxyType(_arg_docs(ast.get_docstring(ref.node))),
        )

    def _describe_ref(self, ref: _ClassRef) -> ClassDescription | None:
        node = self._node(ref)
        if node is None:
            return None
        mro = _linearize(node)
        is_component = any(entry.path == _COMPONENT_ROOT for entry in mro)
        complete = all(entry.known for entry in mro if isinstance(entry, _Terminal))

        kind: str | None = None
        kinds: set[str] = set()
        for position, entry in enumerate(mro):
            found: str | None = None
            if isinstance(entry, _Node):
                if is_component and isinstance(entry.attributes.get("kind"), str):
                    found = entry.attributes["kind"]
                elif position > 0 and entry.ref.qualname in BASE_KINDS:
                    found = BASE_KINDS[entry.ref.qualname]
            elif entry.kind is not None:
                found = entry.kind
            if found is not None:
                if kind is None:
                    kind = found
                kinds |= kind_closure(found) if not is_component else {found}
        if is_component and kind is not None:
            kinds |= kind_closure(kind)

        attributes: dict[str, Any] = {}
        for entry in reversed(mro):
            if isinstance(entry, _Node):
                for k, v in entry.attributes.items():
                    if not k.isupper() or k.startswith("_"):
                        continue
                    if k == "ARGS_SCHEMA" and isinstance(v, dict) and isinstance(attributes.get(k), dict):
                        v = {**attributes[k], **v}  # a subclass refines more args, keeps its bases'
                    attributes[k] = v

        params, var_args, var_kwargs, owner = self._signature(mro, 0)
        arg_docs: dict[str, str] = {}
        for entry in reversed(mro):
            if isinstance(entry, _Node):
                arg_docs.update(_arg_docs(ast.get_docstring(entry.ref.node)))
                if entry.init is not None:
                    arg_docs.update(_arg_docs(ast.get_docstring(entry.init)))
        return ClassDescription(
            path=ref.path,
            module=ref.module,
            qualname=ref.qualname,
            file=ref.index.file,
            line=ref.node.lineno,
            bases=tuple(entry.path for entry in mro[1:]),
            kind=kind,
            kinds=frozenset(kinds),
            complete=complete,
            params=params,
            var_args=var_args,
            var_kwargs=var_kwargs,
            init_owner=owner,
            attributes=MappingProxyType(attributes),
            docstring=ast.get_docstring(ref.node),
            arg_docs=MappingProxyType(arg_docs),
        )

    def _signature(
        self, mro: list[_Node | _Terminal], start: int
    ) -> tuple[tuple[Param, ...] | None, bool, bool, str | None]:
        """The ``__init__`` used by ``mro[start]``: (params, *args, **kwargs, owner)."""
        for position in range(start, len(mro)):
            entry = mro[position]
            if isinstance(entry, _Terminal):
                if entry.params is None:
                    return None, True, True, entry.path
                return entry.params, False, False, entry.path
            if entry.init is not None:
                params, var_args, kwargs_name = _params_of(entry.init, entry.ref.index)
                var_kwargs = kwargs_name is not None
                if kwargs_name is not None:
                    forwarded, target = self._forward(mro, position, entry.init, kwargs_name)
                    if forwarded is not None and target is not None:
                        # ``super().__init__(..., **kwargs)`` (or ``Base.__init__(self, ...,
                        # **kwargs)``): the parent's parameters are accepted too.
                        parent, parent_args, parent_kwargs, _ = self._signature(mro, target)
                        if parent is not None:
                            params = _merged_params(params, parent, forwarded)
                            var_kwargs = parent_kwargs
                            if forwarded.var_args:
                                var_args = parent_args
                return params, var_args, var_kwargs, entry.path
            if entry.is_dataclass:
                return _dataclass_params(mro[position:]), False, False, entry.path
        return (), False, False, None


    def _forward(
        self, mro: list[_Node | _Terminal], position: int, init: ast.FunctionDef, kwargs_name: str
    ) -> tuple[_Forward | None, int | None]:
        """The call by which ``mro[position]``'s ``__init__`` forwards its ``**kwargs`` to a
        base's, and where in ``mro`` that base's ``__init__`` is looked up: the next entry
        for ``super()``, the named base's entry for ``Base.__init__(self, ...)``. (None,
        None) when it forwards to no base (a call of a class that is no base says nothing)."""
        entry = mro[position]
        assert isinstance(entry, _Node)
        for forwarded in _forwarded_init_calls(init, kwargs_name, _vararg_name(init)):
            if forwarded.explicit is None:
                return forwarded, position + 1
            target = self._resolve_expr(entry.ref.index, forwarded.explicit, set())
            if isinstance(target, _ClassRef):
                path = target.path
            elif isinstance(target, _Unresolved):
                path = target.dotted
            else:
                continue
            for later in range(position + 1, len(mro)):
                if mro[later].path == path:
                    return forwarded, later
        return None, None

def describe_class(
    module: str, qualname: str, search_path: Sequence[str | os.PathLike[str]] = ()
) -> ClassDescription | None:
    """Describe ``module.qualname`` from source without importing it (see :class:`Introspector`)."""
    return Introspector(search_path).describe(module, qualname)


def installed_location(top: str) -> str | None:
    """Where an installed top-level module lives (its file or package folder), found with
    ``importlib.util.find_spec`` without importing it; ``"built-in"`` for built-in
    modules; None if it is not installed."""
    try:
        spec = importlib.util.find_spec(top)
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    return spec.origin or next(iter(spec.submodule_search_locations or []), None)


def find_installed_module_file(module: str) -> str | None:
    """The ``.py`` file of an installed module, found without importing it.

    Only the top-level package is looked up (``importlib.util.find_spec`` on
    a top-level name imports nothing); sub-modules are found by walking the
    package's folders, so no package ``__init__`` runs.
    """
    parts = module.split(".")
    try:
        spec = importlib.util.find_spec(parts[0])
    except (ImportError, ValueError, AttributeError):
        return None
    if spec is None:
        return None
    locations = list(spec.submodule_search_locations or [])
    if len(parts) == 1:
        origin = spec.origin
        if origin and origin.endswith(".py") and os.path.isfile(origin):
            return origin
        return None
    for location in locations:
        found = _file_in(Path(location), parts[1:], package_ok=True)
        if found is not None:
            return found
    return None


# --------------------------------------------------------------------------
# Helpers


def _file_in(folder: Path, parts: Sequence[str], package_ok: bool) -> str | None:
    if not parts:
        init = folder / "__init__.py"
        return str(init) if package_ok and init.is_file() else None
    *dirs, last = parts
    base = folder.joinpath(*dirs)
    module_file = base / f"{last}.py"
    if module_file.is_file():
        return str(module_file)
    init = base / last / "__init__.py"
    if package_ok and init.is_file():
        return str(init)
    return None


def _dotted(expr: ast.expr) -> tuple[str, list[str]] | None:
    """``a.b.C`` as its head name and the attributes after it; None for anything else."""
    chain: list[str] = []
    node = expr
    while isinstance(node, ast.Attribute):
        chain.append(node.attr)
        node = node.value
    if not isinstance(node, ast.Name):
        return None
    chain.reverse()
    return node.id, chain


def _spelled_path(index: _ModuleIndex, expr: ast.expr) -> str | None:
    """``a.b.C`` as written, with its head replaced by what the module imported."""
    dotted = _dotted(expr)
    if dotted is None:
        return None
    head, chain = dotted
    if head in index.from_imports:
        source, name = index.from_imports[head]
        prefix = f"{source}.{name}"
    elif head in index.module_imports:
        prefix = index.module_imports[head]
    else:
        return None
    return ".".join([prefix, *chain])


def _is_dataclass(node: ast.ClassDef) -> bool:
    for decorator in node.decorator_list:
        expr = decorator.func if isinstance(decorator, ast.Call) else decorator
        name = expr.attr if isinstance(expr, ast.Attribute) else getattr(expr, "id", None)
        if name == "dataclass":
            return True
    return False


def _annotation(node: ast.expr | None) -> str | None:
    if node is None:
        return None
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return node.value
    return ast.unparse(node)


def _default(node: ast.expr, index: _ModuleIndex) -> Any:
    value = _literal(node)
    if value is not NOT_LITERAL:
        return value
    # ``event=EVENT`` or ``name=Constants.NAME`` with a literal in this module.
    if isinstance(node, ast.Name) and node.id in index.constants:
        return index.constants[node.id]
    if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
        holder = index.classes.get(node.value.id)
        if holder is not None:
            for stmt in holder.body:
                if isinstance(stmt, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == node.attr for t in stmt.targets
                ):
                    return _literal(stmt.value)
    return NOT_LITERAL


def _params_of(
    func: ast.FunctionDef, index: _ModuleIndex, method: bool = True
) -> tuple[tuple[Param, ...], bool, str | None]:
    """(params, *args, **kwargs name) of a method (``self`` left out) or of a function."""
    args = func.args
    positional = [(a, "positional_only") for a in args.posonlyargs] + [
        (a, "positional_or_keyword") for a in args.args
    ]
    defaults: list[ast.expr | None] = [None] * (len(positional) - len(args.defaults)) + list(
        args.defaults
    )
    params: list[Param] = []
    for number, ((arg, kind), default) in enumerate(zip(positional, defaults, strict=True)):
        if number == 0 and method:
            continue  # self
        value = NO_DEFAULT if default is None else _default(default, index)
        params.append(Param(arg.arg, kind, _annotation(arg.annotation), value))
    for arg, default in zip(args.kwonlyargs, args.kw_defaults, strict=True):
        value = NO_DEFAULT if default is None else _default(default, index)
        params.append(Param(arg.arg, "keyword_only", _annotation(arg.annotation), value))
    kwargs_name = args.kwarg.arg if args.kwarg is not None else None
    return tuple(params), args.vararg is not None, kwargs_name


@dataclass(frozen=True)
class _Forward:
    """A call in ``__init__`` that passes its ``**kwargs`` on to a parent's ``__init__``."""

    #: The class whose ``__init__`` is called, as written (``Base`` of ``Base.__init__``);
    #: None for ``super().__init__``.
    explicit: ast.expr | None
    #: Positional arguments the call fills itself (a ``*args`` it forwards left out).
    positional: int
    #: Keyword names the call passes explicitly.
    keywords: frozenset[str]
    #: The call forwards the ``__init__``'s own ``*args`` too.
    var_args: bool


def _forwarded_init_calls(
    func: ast.FunctionDef, kwargs_name: str, vararg_name: str | None = None
) -> Iterable[_Forward]:
    """The calls by which ``__init__`` may pass ``**kwargs`` on to a parent's ``__init__``:
    ``super().__init__(...)``, ``super(Cls, self).__init__(...)`` or
    ``Base.__init__(self, ...)``, in the order :func:`ast.walk` meets them."""
    for node in ast.walk(func):
        if not isinstance(node, ast.Call):
            continue
        callee = node.func
        if not (isinstance(callee, ast.Attribute) and callee.attr == "__init__"):
            continue
        if not any(
            kw.arg is None and isinstance(kw.value, ast.Name) and kw.value.id == kwargs_name
            for kw in node.keywords
        ):
            continue
        inner = callee.value
        args = list(node.args)
        explicit: ast.expr | None = None
        if isinstance(inner, ast.Call) and getattr(inner.func, "id", None) == "super":
            pass
        elif isinstance(inner, (ast.Name, ast.Attribute)) and args and _is_self(args[0], func):
            explicit, args = inner, args[1:]
        else:
            continue
        var_args = any(
            isinstance(a, ast.Starred) and isinstance(a.value, ast.Name) and a.value.id == vararg_name
            for a in args
        )
        yield _Forward(
            explicit,
            sum(1 for a in args if not isinstance(a, ast.Starred)),
            frozenset(kw.arg for kw in node.keywords if kw.arg is not None),
            var_args,
        )


def _merged_params(own: tuple[Param, ...], parent: tuple[Param, ...], forwarded: _Forward) -> tuple[Param, ...]:
    """What an ``__init__`` that forwards ``**kwargs`` to ``parent``'s accepts: its own
    parameters, then the parent's, less those the call sets itself (the first
    ``forwarded.positional`` slots, the keywords it passes).

    Where the call forwards ``*args`` too, positional arguments reach the parent in the
    parent's order, and so a parameter the subclass restates (a changed default) keeps the
    parent's place, with the subclass's default and hint: a FLARE stand-in matches a job
    script's positional arguments in that order."""
    mine = {p.name: p for p in own}
    rest = [p for p in parent if p.kind != "positional_only"]
    positional = [p for p in rest if p.kind == "positional_or_keyword"]
    filled = {p.name for p in positional[: forwarded.positional]} | forwarded.keywords
    if not forwarded.var_args:
        return own + tuple(p for p in rest if p.name not in mine and p.name not in filled)
    inherited = [mine.get(p.name, p) for p in rest if p.name in mine or p.name not in filled]
    placed = {p.name for p in inherited}
    return tuple(p for p in own if p.name not in placed) + tuple(inherited)


def _vararg_name(func: ast.FunctionDef) -> str | None:
    return func.args.vararg.arg if func.args.vararg is not None else None


def _is_self(node: ast.expr, func: ast.FunctionDef) -> bool:
    """``node`` is the method's first parameter (``self``)."""
    first = (func.args.posonlyargs + func.args.args)[:1]
    return bool(first) and isinstance(node, ast.Name) and node.id == first[0].arg


def _dataclass_params(mro: Sequence[_Node | _Terminal]) -> tuple[Param, ...]:
    fields: dict[str, Param] = {}
    for entry in reversed(mro):
        if not isinstance(entry, _Node) or not entry.is_dataclass:
            continue
        for stmt in entry.ref.node.body:
            if not (isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name)):
                continue
            annotation = _annotation(stmt.annotation)
            if annotation and annotation.startswith(("ClassVar", "typing.ClassVar", "InitVar")):
                continue
            name = stmt.target.id
            value: Any = NO_DEFAULT
            in_init = True
            call = stmt.value
            if isinstance(call, ast.Call) and _callee_name(call) == "field":
                for kw in call.keywords:
                    if kw.arg == "init" and _literal(kw.value) is False:
                        in_init = False
                    elif kw.arg == "default":
                        value = _default(kw.value, entry.ref.index)
                    elif kw.arg == "default_factory":
                        value = NOT_LITERAL
            elif call is not None:
                value = _default(call, entry.ref.index)
            if in_init:
                fields[name] = Param(name, "positional_or_keyword", annotation, value)
            else:
                fields.pop(name, None)
    return tuple(fields.values())


def _callee_name(call: ast.Call) -> str | None:
    func = call.func
    if isinstance(func, ast.Attribute):
        return func.attr
    if isinstance(func, ast.Name):
        return func.id
    return None


def _linearize(node: _Node) -> list[_Node | _Terminal]:
    """The method-resolution order (C3; depth-first if the bases clash)."""
    memo: dict[str, list[_Node | _Terminal] | None] = {}

    def c3(entry: _Node | _Terminal) -> list[_Node | _Terminal] | None:
        if entry.path in memo:
            return memo[entry.path]
        memo[entry.path] = None
        if isinstance(entry, _Terminal):
            result: list[_Node | _Terminal] | None = [entry]
        else:
            sequences: list[list[_Node | _Terminal]] = []
            for base in entry.bases:
                lin = c3(base)
                if lin is None:
                    return None
                sequences.append(list(lin))
            sequences.append(list(entry.bases))
            result = [entry]
            while True:
                sequences = [s for s in sequences if s]
                if not sequences:
                    break
                for seq in sequences:
                    head = seq[0]
                    if not any(head.path in (e.path for e in s[1:]) for s in sequences):
                        break
                else:
                    return None
                result.append(head)
                for s in sequences:
                    if s and s[0].path == head.path:
                        del s[0]
        memo[entry.path] = result
        return result

    linear = c3(node)
    if linear is not None:
        return linear
    order: list[_Node | _Terminal] = []
    seen: set[str] = set()

    def dfs(entry: _Node | _Terminal) -> None:
        if entry.path in seen:
            return
        seen.add(entry.path)
        order.append(entry)
        if isinstance(entry, _Node):
            for base in entry.bases:
                dfs(base)

    dfs(node)
    return order


_ARGS_HEADER = re.compile(r"^\s*(Args|Arguments|Parameters|Keyword Args):\s*$")
_ARG_LINE = re.compile(r"^(\s*)(\*{0,2}[A-Za-z_][A-Za-z0-9_]*)\s*(\([^)]*\))?\s*:\s*(.*)$")


def _arg_docs(docstring: str | None) -> dict[str, str]:
    """Argument descriptions from a Google-style ``Args:`` section."""
    if not docstring:
        return {}
    docs: dict[str, str] = {}
    lines = docstring.splitlines()
    inside = False
    indent: int | None = None
    current: str | None = None
    for line in lines:
        if _ARGS_HEADER.match(line):
            inside, indent, current = True, None, None
            continue
        if not inside:
            continue
        if not line.strip():
            current = None
            continue
        width = len(line) - len(line.lstrip())
        match = _ARG_LINE.match(line)
        if match and (indent is None or width == indent):
            indent = width
            current = match.group(2).lstrip("*")
            docs[current] = match.group(4).strip()
        elif indent is not None and width > indent and current is not None:
            docs[current] = f"{docs[current]} {line.strip()}".strip()
        elif indent is not None and width <= indent:
            inside = False
            current = None
    return docs


def clear_cache() -> None:
    """Forget every parsed file."""
    _PARSE_CACHE.clear()
