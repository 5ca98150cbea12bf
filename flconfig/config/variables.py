"""Resolve FLARE variables in a parsed config, keeping every value's source position.

A config may refer to its own top-level keys, to system variables and to
environment variables from its string values (FLARE's ``_EnvUpdater``):

``"{name}"``
    the whole string is replaced by the variable's value, native type kept
    (an int stays an int, a dict stays a dict);
``"{@def:n1=v1:n2=v2}"``
    a copy of the dict ``@def``, resolved with ``n1`` and ``n2`` as extra
    variables (values read as int, float, ``true``/``false``, else text);
``"text {name} and {lr:.3f}"``
    any other string: each ``{name}`` (optionally with a format spec) is
    replaced by the text of a primitive value; ``{{`` and ``}}`` are literal
    braces; braces that are no such reference (``"a{2,3}"``, ``"{0}"``,
    ``"{}"``, JSON text) are left as they are.

Unlike FLARE, an undefined variable is an error (FLARE leaves the reference as
written); with ``FLCONFIG_KEEP_UNDEFINED=1`` in the ``environ`` given (``--keep-undefined``)
it is a warning and the text stays as written, as in FLARE. A cycle is reported with
the variables in it; and every problem points at the string that holds the reference.

``{$NAME}`` reads only the ``environ`` mapping given, never the process environment:
a submitted job is resolved with none. Every value a reference produced is named in the
document's ``sources`` by the string that produced it (``{WORKSPACE}/x``), and messages
show that string, never the value. The expanded document counts against the one limit
of :mod:`.limits`: past it, one problem at the string that expands.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from ..errors import JsonPath, Problem, closest
from .documents import Document, type_name
from .limits import Budget, TooLarge, size_of

#: Set (to anything but "" or "0") to leave undefined variables as written, as FLARE does.
KEEP_UNDEFINED_ENV = "FLCONFIG_KEEP_UNDEFINED"

#: The deepest chain of references followed (FLARE gives up after 20 rounds).
MAX_DEPTH = 20

#: System variables whose values are this machine's paths: no message may show them.
MACHINE_VARIABLES = ("WORKSPACE", "JOB_CUSTOM_DIR", "JOB_CONFIG_DIR", "PYTHONPATH")

#: How an undefined ``{$NAME}``'s hint says to pass it.
ENV_HINT = ("pass it from your environment with --env {name} (flconfig validate and launch; "
            "a submitted job never reads the environment of the server or a site)")

_IDENT = r"[A-Za-z_][A-Za-z0-9_-]*"
_NAME = r"[@$]?" + _IDENT
_IDENT_RE = re.compile(_IDENT)
_NAME_RE = re.compile(_NAME)
_WHOLE_REF = re.compile(r"\{(" + _NAME + r")\}")
_REF = re.compile(r"\{(" + _NAME + r")(?::([^{}]*))?\}")
_PARAM = r"(?:[^:{}]*|[^:{}=]*=\{" + _NAME + r"\})"
_CALL = re.compile(r"\{(@" + _IDENT + r")((?::" + _PARAM + r")+)\}")
_FIELD_LIKE = re.compile(r"\{(" + _NAME + r")[.\[!]")
_BRACE = re.compile(r"[{}]")
_HUGE_WIDTH = re.compile(r"\d{4,}")

_FAILED: Any = object()


@dataclass(frozen=True)
class _Scope:
    """Where a value is being resolved.

    At file level ``call_path`` is None. Inside an ``{@def:...}`` expansion it
    is the path of the (outermost) string that asked for it: the expansion is
    inserted there, so its problems are reported there too.
    """

    local: Mapping[str, Any] = field(default_factory=dict)
    call_path: JsonPath | None = None
    template: str | None = None


_FILE_LEVEL = _Scope()


def resolve(
    doc: Document,
    system: Mapping[str, Any],
    environ: Mapping[str, str] | None = None,
) -> tuple[Document, list[Problem]]:
    """Resolve the variable references in ``doc``.

    ``system`` holds the variables flconfig sets (``SITE_NAME``, ``WORKSPACE``,
    ``JOB_ID``, ``SECURE_MODE``, ``JOB_CUSTOM_DIR`` ...); they win over
    top-level keys of the same name. ``environ`` (default: empty; never the
    process environment) provides ``{$NAME}``. Returns a new Document for the same file — top-level
    ``@`` definitions removed — whose positions still point into that file: a
    substituted value, and every part of an inserted dict or list, has the
    position of the string that referred to it. The parse warnings of ``doc``
    are carried over; the returned list holds only the problems found here.
    ``doc`` is not changed, and bad input gives problems, never an exception.
    """
    resolver = _Resolver(doc, system, {} if environ is None else environ)
    try:
        data = resolver.run()
    except (RecursionError, _TooLarge) as exc:
        problem = exc.problem if isinstance(exc, _TooLarge) else Problem(
            "error", "syntax", "the config nests too deeply to resolve its variables", doc.position(()), ())
        same = Document(doc.file, doc.data, dict(doc.values), dict(doc.keys), dict(doc.notes),
                        list(doc.problems), dict(doc.sources), dict(doc.secrets))
        return same, [problem]
    return resolver.document(data), resolver.problems


class _TooLarge(Exception):
    """The document expands past the limit: resolving stops, with this one problem."""

    def __init__(self, problem: Problem) -> None:
        super().__init__(problem.message)
        self.problem = problem


def _coerce(text: str) -> Any:
    """A parameter value as FLARE's ``parse_vars`` reads it: int, float, bool word, text."""
    try:
        return int(text)
    except ValueError:
        pass
    try:
        return float(text)
    except ValueError:
        pass
    word = text.strip().lower()
    if word in ("true", "false"):
        return word == "true"
    return text


def _children(value: Any, prefix: JsonPath = ()) -> Iterator[tuple[JsonPath, bool]]:
    """Every sub-path of ``value`` and whether it is a dict entry (it has a key)."""
    stack: list[tuple[Any, JsonPath]] = [(value, prefix)]
    while stack:
        node, path = stack.pop()
        if isinstance(node, dict):
            for key, child in node.items():
                stack.append((child, (*path, key)))
                yield (*path, key), True
        elif isinstance(node, list):
            for index, child in enumerate(node):
                stack.append((child, (*path, index)))
                yield (*path, index), False


def _copy(value: Any) -> Any:
    if isinstance(value, (dict, list)):
        return copy.deepcopy(value)
    return value


class _Resolver:
    def __init__(self, doc: Document, system: Mapping[str, Any], environ: Mapping[str, str]):
        self.doc = doc
        self.config: dict[Any, Any] = doc.data if isinstance(doc.data, dict) else {}
        self.system = {k: v for k, v in system.items() if isinstance(k, str)}
        self.environ = {k: v for k, v in environ.items() if isinstance(k, str)}
        self.keep_undefined = self.environ.get(KEEP_UNDEFINED_ENV, "") not in ("", "0")
        self.yaml = doc.file.lower().endswith((".yaml", ".yml"))
        self.memo: dict[Any, Any] = {}
        self.stack: list[Any] = []
        self.problems: list[Problem] = []
        self._seen: set[tuple[Any, ...]] = set()
        self._cycles: set[frozenset[Any]] = set()
        self._too_deep = False
        self.values = dict(doc.values)
        self.keys = dict(doc.keys)
        self.notes = dict(doc.notes)
        self.sources = dict(doc.sources)
        self.secrets = dict(doc.secrets)
        self.budget = Budget()
        self.sizes: dict[Any, tuple[int, int]] = {}  # top-level name -> size of its value

    # --- the document ------------------------------------------------------------------

    def run(self) -> Any:
        data = self.doc.data
        if not isinstance(data, dict):
            return self.walk(data, (), _FILE_LEVEL)
        for name in data:
            if isinstance(name, str) and name in self.system and not name.startswith("@"):
                self.report(
                    "variable-shadowed",
                    f"the top-level key '{name}' is hidden by the system variable {name}",
                    (name,), f"rename the key: {{{name}}} always gives the value flconfig sets",
                    _FILE_LEVEL, severity="warning", at_key=True)
        out: dict[Any, Any] = {}
        for name in data:
            if isinstance(name, str) and name.startswith("@"):
                continue  # definitions, expanded where they are used
            value = self.variable(name, (name,), _FILE_LEVEL)
            out[name] = _copy(data[name]) if value is _FAILED else value
        return out

    def document(self, data: Any) -> Document:
        def kept(path: JsonPath) -> bool:
            return not (isinstance(self.doc.data, dict) and path and isinstance(path[0], str)
                        and path[0].startswith("@"))

        def exists(path: JsonPath) -> bool:
            node = data
            for part in path:
                try:
                    node = node[part]
                except (KeyError, IndexError, TypeError):
                    return False
            return True

        return Document(
            self.doc.file, data,
            {p: pos for p, pos in self.values.items() if kept(p)},
            {p: pos for p, pos in self.keys.items() if kept(p)},
            {p: note for p, note in self.notes.items() if kept(p)},
            list(self.doc.problems),
            {p: expr for p, expr in self.sources.items() if kept(p) and exists(p)},
            self.secrets,
        )

    def take(self, values: int, chars: int, path: JsonPath, scope: _Scope) -> None:
        """Count what is about to be built; past the limit, stop with one problem here."""
        try:
            self.budget.take(values, chars)
        except TooLarge as exc:
            if scope.call_path is not None:
                path = scope.call_path
            raise _TooLarge(self.doc.problem(
                "too-large", exc.message("config"), path,
                "each {name} and {@name:k=v} copies what it names, and nested ones multiply: "
                "write the values out, or nest fewer references")) from None

    def walk(self, value: Any, path: JsonPath, scope: _Scope) -> Any:
        key = path[-1] if path and isinstance(path[-1], str) else ""
        self.take(1, len(key) + (len(value) if isinstance(value, str) else 0), path, scope)
        if isinstance(value, str):
            return self.string(value, path, scope)
        if isinstance(value, dict):
            if self.yaml and scope.call_path is None:
                self.check_yaml_mapping(value, path, scope)
            return {key: self.walk(item, (*path, key), scope) for key, item in value.items()}
        if isinstance(value, list):
            return [self.walk(item, (*path, i), scope) for i, item in enumerate(value)]
        return _copy(value)

    def check_yaml_mapping(self, value: dict[Any, Any], path: JsonPath, scope: _Scope) -> None:
        # Unquoted {lr} in YAML is the mapping {"lr": null}, not a reference.
        if len(value) != 1:
            return
        ((key, item),) = value.items()
        if item is None and isinstance(key, str) and _NAME_RE.fullmatch(key) \
                and self.defined(key, scope):
            hint = f"YAML reads {{{key}}} as a mapping: quote it to refer to the variable: \"{{{key}}}\""
            self.notes.setdefault(path, hint)
            self.report("variable-syntax", f"{{{key}}} is a YAML mapping, not a reference to the variable '{key}'",
                        path, hint, scope, severity="warning")

    # --- one string ----------------------------------------------------------------------

    def string(self, text: str, path: JsonPath, scope: _Scope) -> Any:
        if "{" not in text and "}" not in text:
            return text
        stripped = text.strip()
        match = _WHOLE_REF.fullmatch(stripped)
        if match:
            value, origin = self.lookup(match.group(1), path, scope, in_text=False)
            if value is _FAILED:
                return text
            return self.insert(value, origin, path, scope, stripped)
        match = _CALL.fullmatch(stripped)
        if match:
            value = self.call(match.group(1), match.group(2)[1:].split(":"), stripped, path, scope)
            if value is _FAILED:
                return text
            return self.insert(value, None, path, scope, stripped, fresh=True)
        result = self.format(text, path, scope)
        if result != text and scope.call_path is None:
            self.mark(path, text)
        return result

    def format(self, text: str, path: JsonPath, scope: _Scope) -> str:
        """Substitute ``{name}`` refs in a longer string; ``{{``/``}}`` are literal braces.

        A string holding braces that belong to no reference (JSON text, a regex)
        is not a template: its other characters, doubled braces included, stay
        exactly as written.
        """
        cooked: list[str] = []
        raw: list[str] = []
        foreign = False
        refs = 0
        i = 0
        while i < len(text):
            brace = _BRACE.search(text, i)
            j = brace.start() if brace else len(text)
            if j > i:
                cooked.append(text[i:j])
                raw.append(text[i:j])
                i = j
                continue
            char = text[i]
            if text.startswith(char * 2, i):
                cooked.append(char)
                raw.append(char * 2)
                i += 2
                continue
            if char == "{":
                match = _REF.match(text, i)
                if match:
                    refs += 1
                    piece = self.substitute(match, text, path, scope)
                    piece = match.group(0) if piece is None else piece
                    cooked.append(piece)
                    raw.append(piece)
                    i = match.end()
                    continue
                field_like = _FIELD_LIKE.match(text, i)
                if field_like and self.defined(field_like.group(1), scope):
                    name = field_like.group(1)
                    self.report(
                        "variable-syntax",
                        f"'{text[i:i + 40]}' is not substituted: only {{name}} and {{name:format}} are",
                        path, f"use the whole variable, e.g. \"{{{name}}}\", or define a variable "
                        "for the part you need", scope, severity="warning")
            foreign = True
            cooked.append(char)
            raw.append(char)
            i += 1
        if foreign and not refs:
            return text
        pieces = raw if foreign else cooked
        self.take(0, sum(map(len, pieces)), path, scope)
        return "".join(pieces)

    def substitute(self, match: re.Match[str], text: str, path: JsonPath,
                   scope: _Scope) -> str | None:
        """The text of one ``{name}`` / ``{name:spec}`` inside a string, or None on error."""
        name, spec = match.group(1), match.group(2)
        value, _ = self.lookup(name, path, scope, in_text=True)
        if value is _FAILED:
            return None
        if isinstance(value, (dict, list)):
            kind = "dict" if isinstance(value, dict) else "list"
            if text.strip() == match.group(0):
                message = f"variable '{name}' is a {kind} and cannot be formatted with ':{spec}'"
            else:
                message = f"variable '{name}' is a {kind} and cannot be part of a longer string"
            hint = f"use \"{{{name}}}\" alone as the whole value to insert the {kind}"
            if spec and "=" in spec:
                hint += "; parameters ({@name:k=v}) work only on definitions whose name starts with @"
            self.report("variable-type", message, path, hint, scope)
            return None
        if spec and _HUGE_WIDTH.search(spec):
            self.report("variable-syntax", f"the format ':{spec}' of variable '{name}' is too wide",
                        path, "use a width below 1000", scope)
            return None
        try:
            text = format(value, spec or "")
        except Exception as exc:  # any __format__ may fail; bad specs raise ValueError
            self.report(
                "variable-syntax", f"cannot format variable '{name}' ({type_name(value)}) with ':{spec}': {exc}",
                path, "use a Python format spec that fits the value, e.g. {lr:.3f} for a number",
                scope)
            return None
        if spec and name in MACHINE_VARIABLES and len(text) >= 4:
            # A part of this machine's path ({WORKSPACE:.25}): as secret as the whole.
            self.secrets.setdefault(text, f"{{{name}:{spec}}}")
        return text

    def insert(self, value: Any, origin: Any, path: JsonPath, scope: _Scope, expr: str,
               *, fresh: bool = False) -> Any:
        """A copy of ``value`` (what ``expr`` refers to) for ``path``, counted before it is made."""
        if not fresh and isinstance(value, (dict, list)):
            size = self.sizes.get(origin) if origin is not None else None
            if size is None:
                size = size_of(value)
                if origin is not None:
                    self.sizes[origin] = size
            self.take(*size, path, scope)
            value = copy.deepcopy(value)
        elif not fresh and isinstance(value, str):
            # Shared, not copied, here; but every place it lands is written out later
            # (a plan, a message): each counts.
            self.take(1, len(value), path, scope)
        if scope.call_path is None:
            self.record(path, value, origin, expr)
        return value

    def mark(self, path: JsonPath, expr: str) -> None:
        """Name ``expr`` as what produced the value at ``path`` (and its parts)."""
        self.sources[tuple(path)] = self.doc.source(path) or expr

    def record(self, path: JsonPath, value: Any, origin: Any, expr: str) -> None:
        """Give an inserted value's parts the position of the string it replaced, and name
        that string as what produced them."""
        self.mark(path, expr)
        if isinstance(value, (dict, list)):
            where = self.doc.position(path)
            for sub, has_key in _children(value, path):
                self.values[sub] = where
                self.sources[sub] = expr
                if has_key:
                    self.keys[sub] = where
        if origin is None:
            return
        # Spelling notes (YAML 1.1 traps) on the definition also explain the inserted copy:
        # where to look, not the value (a message never shows what a reference gave).
        for note_path, note in list(self.notes.items()):
            if note_path[:1] == (origin,):
                if "(from the variable " not in note:
                    line = self.doc.position(note_path).line
                    note = (f"YAML 1.1 reads the value of this reference differently from how it looks "
                            f"where it is written: see line {line} (from the variable '{origin}')")
                self.notes.setdefault((*path, *note_path[1:]), note)

    # --- variables -----------------------------------------------------------------------

    def defined(self, name: str, scope: _Scope) -> bool:
        return (name in scope.local or name in self.system or name in self.config
                or (name.startswith("$") and name[1:] in self.environ))

    def lookup(self, name: str, path: JsonPath, scope: _Scope, *, in_text: bool) -> tuple[Any, Any]:
        """A variable's resolved value and the top-level key it came from (if any)."""
        if name in scope.local:
            return scope.local[name], None
        if name in self.system:
            value = self.system[name]
            if name in MACHINE_VARIABLES and isinstance(value, str) and value:
                self.secrets[value] = f"{{{name}}}"
            return value, None
        if name in self.config:
            value = self.variable(name, path, scope)
            return value, (None if value is _FAILED else name)
        if name.startswith("$") and name[1:] in self.environ:
            value = self.environ[name[1:]]
            if value:
                self.secrets[value] = f"{{{name}}}"
            return value, None
        self.undefined(name, path, scope, in_text)
        return _FAILED, None

    def variable(self, name: Any, path: JsonPath, scope: _Scope) -> Any:
        """The resolved value of the top-level key ``name`` (resolved once)."""
        if name in self.memo:
            return self.memo[name]
        if not self.enter(name, path, scope):
            return _FAILED
        try:
            value = self.walk(self.config[name], (name,), _FILE_LEVEL)
        finally:
            self.stack.pop()
        self.memo[name] = value
        return value

    def call(self, name: str, params: list[str], text: str, path: JsonPath, scope: _Scope) -> Any:
        """Expand ``{@name:k=v:...}``: a copy of the dict ``name`` resolved with k, v added."""
        if name in scope.local or name in self.system or name not in self.config:
            value, _ = self.lookup(name, path, scope, in_text=False)
            if value is _FAILED:
                return _FAILED
            if not isinstance(value, dict):
                self.report("variable-type", f"'{name}' must be a dict to take parameters, "
                            f"but it is {type_name(value)}", path,
                            f"remove the parameters to use its value as it is: \"{{{name}}}\"", scope)
                return _FAILED
            return value
        definition = self.config[name]
        if not isinstance(definition, dict):
            self.report("variable-type", f"'{name}' must be a dict to take parameters, "
                        f"but it is {type_name(definition)}", path,
                        f"remove the parameters to use its value as it is: \"{{{name}}}\"", scope)
            return _FAILED
        local = dict(scope.local)
        ok = True
        for param in params:
            key, eq, raw = param.partition("=")
            key = key.strip()
            if not eq or not _IDENT_RE.fullmatch(key):
                self.report("variable-syntax", f"bad parameter '{param}' in '{text}'", path,
                            f"write parameters as name=value, e.g. {{{name}:lr=0.1:epochs=2}}", scope)
                ok = False
                continue
            ref = _WHOLE_REF.fullmatch(raw.strip())
            if ref:
                value, origin = self.lookup(ref.group(1), path, scope, in_text=False)
                if value is _FAILED:
                    ok = False
                    continue
                inner = _Scope(call_path=path if scope.call_path is None else scope.call_path)
                local[key] = self.insert(value, origin, path, inner, ref.group(0))
            else:
                local[key] = _coerce(raw)
        if not ok or not self.enter(name, path, scope):
            return _FAILED
        inner = _Scope(local, path if scope.call_path is None else scope.call_path, name)
        try:
            return self.walk(definition, (name,), inner)
        finally:
            self.stack.pop()

    def enter(self, name: Any, path: JsonPath, scope: _Scope) -> bool:
        """Start resolving ``name``; False (and a problem) on a cycle or a too deep chain."""
        if name in self.stack:
            cycle = [*self.stack[self.stack.index(name):], name]
            if frozenset(cycle) not in self._cycles:
                self._cycles.add(frozenset(cycle))
                if len(cycle) == 2:
                    message = f"variable '{name}' refers to itself"
                    hint = f"give '{name}' a value that does not use {{{name}}}"
                else:
                    chain = " -> ".join(str(n) for n in cycle)
                    message = f"variables refer to each other in a cycle: {chain}"
                    names = ", ".join(f"'{n}'" for n in cycle[:-1])
                    hint = f"one of {names} must have a value that does not refer back"
                self.report("variable-cycle", message, path, hint, scope)
            return False
        if len(self.stack) >= MAX_DEPTH:
            if not self._too_deep:
                self._too_deep = True
                chain = " -> ".join(str(n) for n in [*self.stack, name])
                self.report("variable-cycle",
                            f"variable references nest more than {MAX_DEPTH} levels deep: {chain}",
                            path, "refer to the final value more directly", scope)
            return False
        self.stack.append(name)
        return True

    def undefined(self, name: str, path: JsonPath, scope: _Scope, in_text: bool) -> None:
        names = [n for n in (*scope.local, *self.system, *self.config)
                 if isinstance(n, str) and n != name and _NAME_RE.fullmatch(n)]
        if name.startswith("$"):
            names += [f"${n}" for n in self.environ]
        match = closest(name, names)
        if name.startswith("$"):
            message = f"undefined variable '{name}': no environment variable {name[1:]} was given"
            hint = ENV_HINT.format(name=name[1:])
            if match:
                hint += f"; or did you mean '{match}'?"
        else:
            message = f"undefined variable '{name}'"
            if match:
                hint = f"did you mean '{match}'?"
            elif scope.template is not None:
                hint = (f"pass it as a parameter, e.g. {{{scope.template}:{name}=...}}, "
                        f"or define it as a top-level key")
            else:
                hint = f'define it as a top-level key, e.g. "{name}": ...'
        if in_text:
            hint += f"; to keep the braces as text, write {{{{{name}}}}}"
        if self.keep_undefined:  # FLARE's behaviour, asked for: the text stays as written
            self.report("undefined-variable", f"{message}; left as written ({KEEP_UNDEFINED_ENV})", path,
                        hint, scope, severity="warning")
            return
        self.report("undefined-variable", message, path, hint, scope)

    # --- problems ------------------------------------------------------------------------

    def report(self, code: str, message: str, path: JsonPath, hint: str | None, scope: _Scope,
               *, severity: str = "error", at_key: bool = False) -> None:
        if scope.call_path is not None:
            if self.doc.values:
                where = self.doc.position(path)
                message += f" (in '{scope.template}' at line {where.line}, used here)"
            else:
                message += f" (in '{scope.template}', used here)"
            path, at_key = scope.call_path, False
        problem = self.doc.problem(code, message, path, hint, severity=severity, at_key=at_key)
        key = (problem.code, problem.message, problem.position, problem.json_path)
        if key not in self._seen:
            self._seen.add(key)
            self.problems.append(problem)
