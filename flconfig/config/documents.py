"""Parse config files into plain data that remembers where every value came from.

A :class:`Document` holds the parsed value (dicts, lists, str, int, float,
bool, None — the same for JSON, YAML and HOCON) plus a map from each JSON path to
the line and column of the value and of its key, so that any later check can
say ``file:line:column``, and the expression that produced each value a substitution
or an include gave, so that messages show that expression instead of the value.
Every format has one limit on how far a document may expand (:mod:`.limits`).
"""

from __future__ import annotations

import bisect
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from json.decoder import scanstring  # type: ignore[attr-defined]
from pathlib import Path
from typing import Any, NoReturn

from ..errors import ConfigError, JsonPath, Position, Problem
from .limits import MAX_VALUES, Budget, TooLarge

JSON_SUFFIXES = (".json",)
YAML_SUFFIXES = (".yaml", ".yml")
HOCON_SUFFIXES = (".conf",)
CONFIG_SUFFIXES = JSON_SUFFIXES + HOCON_SUFFIXES + YAML_SUFFIXES
#: A config file's default, read when the file itself is absent (``config_fed_client.conf.default``).
DEFAULT_SUFFIX = ".default"


@dataclass
class Document:
    """A parsed config file with the source position of every value and key."""

    file: str
    data: Any
    values: dict[JsonPath, Position] = field(default_factory=dict)
    keys: dict[JsonPath, Position] = field(default_factory=dict)
    #: Hints about a value's spelling (YAML 1.1 traps), by path.
    notes: dict[JsonPath, str] = field(default_factory=dict)
    #: Problems that do not stop parsing (warnings).
    problems: list[Problem] = field(default_factory=list)
    #: How messages name a value that a substitution, a variable or an include produced,
    #: by path: the expression as written (``${DATA_ROOT}``, ``{$HOME}``, ``{WORKSPACE}/x``)
    #: or the include (``a value from include "common.conf"``). Never the value itself.
    sources: dict[JsonPath, str] = field(default_factory=dict)
    #: Text that came from the environment or the machine (a variable's value), and the
    #: expression that brought it in: no message may show it.
    secrets: dict[str, str] = field(default_factory=dict)
    _inner: set[JsonPath] | None = field(default=None, init=False, repr=False, compare=False)

    def position(self, path: JsonPath) -> Position:
        """Where the value at ``path`` starts, or its nearest known ancestor."""
        for end in range(len(path), -1, -1):
            pos = self.values.get(tuple(path[:end]))
            if pos is not None:
                return pos
        return Position(self.file, 1, 1)

    def data_at(self, path: JsonPath, default: Any = None) -> Any:
        """The value at ``path``, or ``default`` when the path does not exist."""
        node = self.data
        for part in path:
            try:
                node = node[part]
            except (KeyError, IndexError, TypeError):
                return default
        return node

    def source(self, path: JsonPath) -> str | None:
        """The expression that produced the value at ``path`` (or a value holding it), or
        None when it is written as it is."""
        if not self.sources:
            return None
        for end in range(len(path), -1, -1):
            found = self.sources.get(tuple(path[:end]))
            if found is not None:
                return found
        return None

    def hides(self, path: JsonPath) -> bool:
        """Whether the value at ``path`` is, or holds, a value that an expression produced."""
        if not self.sources:
            return False
        if self._inner is None:
            self._inner = set()
            for sourced in self.sources:
                self._inner.update(sourced[:end] for end in range(len(sourced)))
        return tuple(path) in self._inner or self.source(path) is not None

    def shown(self, path: JsonPath, value: Any, describe: Callable[[Any], str] = repr) -> str:
        """How a message shows the value at ``path``: ``describe(value)``; the expression
        that produced it when there is one; its type when it holds such values."""
        found = self.source(path)
        if found is not None:
            return found
        return type_name(value) if self.hides(path) else describe(value)

    def key_position(self, path: JsonPath) -> Position:
        """Where the key naming ``path`` is written (falls back to the value)."""
        pos = self.keys.get(tuple(path))
        return pos if pos is not None else self.position(path)

    def problem(
        self,
        code: str,
        message: str,
        path: JsonPath,
        hint: str | None = None,
        *,
        severity: str = "error",
        at_key: bool = False,
    ) -> Problem:
        """A :class:`Problem` located at ``path`` in this document.

        A value that a substitution, a variable or an include produced is never shown:
        where the message or hint spells the value at ``path``, or any text that came
        from the environment or the machine, it shows the expression instead."""
        where = self.key_position(path) if at_key else self.position(path)
        note = self.notes.get(tuple(path))
        if note and not hint:
            hint = note
        if self.sources or self.secrets:
            message = self.conceal(message, () if at_key else path)
            hint = self.conceal(hint, () if at_key else path) if hint else hint
        return Problem(severity, code, message, where, tuple(path), hint)  # type: ignore[arg-type]

    def conceal(self, text: str, path: JsonPath = ()) -> str:
        """``text`` with the value at ``path`` (when an expression produced it) and every
        text from the environment or the machine replaced by the expression that brought it."""
        swaps: dict[str, str] = {}
        expr = self.source(path) if path else None
        value = self.data_at(path) if expr is not None else None
        if expr is not None and isinstance(value, str) and value:
            for form in (repr(value), json.dumps(value, ensure_ascii=False), f"'{value}'",
                         repr(value[:37] + "...")):
                swaps[form] = expr
            if len(value) >= _MIN_SECRET:
                swaps[value] = expr
        for secret, secret_expr in self.secrets.items():
            if len(secret) >= _MIN_SECRET:
                swaps.setdefault(secret, secret_expr)
        for form in sorted(swaps, key=len, reverse=True):
            if form in text:
                text = text.replace(form, swaps[form])
        return text


def type_name(value: Any) -> str:
    """How messages name a parsed value's type: ``a string``, ``an integer``, ``an object``..."""
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int):
        return "an integer"
    if isinstance(value, float):
        return "a number"
    if isinstance(value, str):
        return "a string"
    if isinstance(value, list):
        return "a list"
    if value is None:
        return "null"
    return "an object"


#: Shortest text replaced wherever it appears in a message (shorter is too likely elsewhere).
_MIN_SECRET = 4


class _Lines:
    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1


class _SyntaxFailure(Exception):
    def __init__(self, offset: int, message: str, hint: str | None = None):
        self.offset = offset
        self.message = message
        self.hint = hint


_WS = re.compile(r"[ \t\n\r]*")
#: Longest integer a config may spell (Python refuses to convert beyond 4300 digits).
_MAX_INT_DIGITS = 1000
#: Most values one YAML file may expand to (aliases repeat what they name): the limit of
#: every format (:data:`flconfig.config.limits.MAX_VALUES`).
MAX_YAML_VALUES = MAX_VALUES
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _JsonParser:
    """A small JSON parser that records positions and rejects duplicate keys."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.lines = _Lines(text)
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        #: Offsets of the '{' and '[' not closed yet, for a hint when the file ends early.
        self.open: list[int] = []

    def pos(self, offset: int) -> Position:
        line, col = self.lines.at(offset)
        return Position(self.file, line, col)

    def skip(self, i: int) -> int:
        return _WS.match(self.text, i).end()  # type: ignore[union-attr]

    def parse(self) -> Any:
        i = self.skip(0)
        if i >= len(self.text):
            raise _SyntaxFailure(i, "the file is empty", "a config file holds one JSON object")
        value, i = self.value(i, ())
        i = self.skip(i)
        if i < len(self.text):
            raise _SyntaxFailure(i, "unexpected text after the end of the JSON value",
                                 "a config file holds exactly one JSON object")
        return value

    def value(self, i: int, path: JsonPath) -> tuple[Any, int]:
        self.values[path] = self.pos(i)
        ch = self.text[i : i + 1]
        if ch == "{":
            return self.obj(i + 1, path)
        if ch == "[":
            return self.arr(i + 1, path)
        if ch == '"':
            return self.string(i)
        m = _NUMBER.match(self.text, i)
        if m and m.end() > i:
            num = m.group(0)
            if not (m.group(1) or m.group(2)):
                if len(num) > _MAX_INT_DIGITS:
                    self._fail(i, f"a number of {len(num.lstrip('-'))} digits is too long",
                               f"integers here have at most {_MAX_INT_DIGITS} digits")
                return int(num), m.end()
            value = float(num)
            if math.isinf(value):
                self._fail(i, f"{num[:40]} is too large for a number (it would be infinity)",
                           "write a finite number")
            return value, m.end()
        for word, val in _LITERALS.items():
            if self.text.startswith(word, i):
                return val, i + len(word)
        if not ch:
            self._fail(i, "unexpected end of file: a value is missing")
        word = re.match(r"[^\s,:\]\}]*", self.text[i:]).group(0)  # type: ignore[union-attr]
        hint = None
        if word in ("True", "False", "None"):
            hint = f"JSON spells it {json.dumps({'True': True, 'False': False, 'None': None}[word])}"
        elif ch == "'":
            hint = "JSON strings use double quotes"
        self._fail(i, f"expected a value, found {word or ch!r}", hint)

    def _fail(self, i: int, message: str, hint: str | None = None) -> NoReturn:
        if i >= len(self.text) and hint is None and self.open:
            where = self.pos(self.open[-1])
            hint = (f"the '{self.text[self.open[-1]]}' at line {where.line}, column {where.column} "
                    "is never closed: is the file cut short?")
        raise _SyntaxFailure(i, message, hint)

    def string(self, i: int) -> tuple[str, int]:
        try:
            text, end = scanstring(self.text, i + 1, True)
        except json.JSONDecodeError as exc:
            raise _SyntaxFailure(exc.pos, exc.msg) from None
        return str(text), int(end)

    def obj(self, i: int, path: JsonPath) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        self.open.append(i - 1)
        i = self.skip(i)
        if self.text[i : i + 1] == "}":
            self.open.pop()
            return out, i + 1
        comma = -1
        while True:
            if self.text[i : i + 1] == "}" and comma >= 0:
                self._fail(comma, "a comma before '}' (JSON allows none after the last entry)",
                           "remove this comma")
            if self.text[i : i + 1] != '"':
                self._fail(i, "expected a quoted key",
                           "JSON keys use double quotes" if self.text[i : i + 1] else None)
            key_at = i
            key, i = self.string(i)
            child = (*path, key)
            if key in out:
                first = self.keys[child]
                self._fail(key_at, f"duplicate key {key!r} (first defined at line {first.line})",
                           "keep one of the two entries")
            self.keys[child] = self.pos(key_at)
            i = self.skip(i)
            if self.text[i : i + 1] != ":":
                self._fail(i, f"expected ':' after key {key!r}")
            i = self.skip(i + 1)
            out[key], end = self.value(i, child)
            i = self.skip(end)
            ch = self.text[i : i + 1]
            if ch == ",":
                comma = i
                i = self.skip(i + 1)
                continue
            if ch == "}":
                self.open.pop()
                return out, i + 1
            if ch == '"':  # the next key: the comma belongs right after this value
                self._fail(end, "expected ',' or '}' after this value",
                           "a ',' is missing between two entries")
            self._fail(i, "expected ',' or '}' in object" if ch else "unexpected end of file inside an object")

    def arr(self, i: int, path: JsonPath) -> tuple[list[Any], int]:
        out: list[Any] = []
        self.open.append(i - 1)
        i = self.skip(i)
        if self.text[i : i + 1] == "]":
            self.open.pop()
            return out, i + 1
        comma = -1
        while True:
            if self.text[i : i + 1] == "]" and comma >= 0:
                self._fail(comma, "a comma before ']' (JSON allows none after the last item)",
                           "remove this comma")
            item, end = self.value(i, (*path, len(out)))
            out.append(item)
            i = self.skip(end)
            ch = self.text[i : i + 1]
            if ch == ",":
                comma = i
                i = self.skip(i + 1)
                continue
            if ch == "]":
                self.open.pop()
                return out, i + 1
            if ch and ch in "\"{[0123456789-tfn":  # another item: the comma belongs after this one
                self._fail(end, "expected ',' or ']' after this item", "a ',' is missing between two items")
            self._fail(i, "expected ',' or ']' in list" if ch else "unexpected end of file inside a list")


def parse_json(text: str, file: str) -> Document:
    """Parse JSON text; raises :class:`ConfigError` with the exact position on bad syntax."""
    parser = _JsonParser(text, file)
    try:
        data = parser.parse()
    except RecursionError:
        raise ConfigError.single("syntax", "the JSON nests too deeply", Position(file, 1, 1)) from None
    except _SyntaxFailure as exc:
        raise ConfigError.single("syntax", f"invalid JSON: {exc.message}", parser.pos(exc.offset),
                                 hint=exc.hint) from None
    return Document(file, data, parser.values, parser.keys)


# --- YAML ---------------------------------------------------------------------------------

_YAML_CONTEXTS = (("flow sequence", "the [...] list"), ("flow mapping", "the {...} mapping"),
                  ("quoted scalar", "the quoted string"), ("block mapping", "the mapping"),
                  ("block", "the list"))
_YAML11_FLOAT_AS_STR = re.compile(r"^[-+]?(?:\d+\.?|\d*\.\d+)[eE][-+]?\d+$")
_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document safely; duplicate keys and YAML 1.1 traps are reported."""
    import yaml

    lines = _Lines(text)
    doc = Document(file, None)

    def pos(mark: Any) -> Position:
        return Position(file, mark.line + 1, mark.column + 1)

    try:
        loader = yaml.SafeLoader(text)
        try:
            root = loader.get_single_node()
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = pos(mark) if mark else Position(file, 1, 1)
        message = exc.problem or exc.context or "syntax error"
        hint = None
        if "another document" in message:
            message, mark = "the file holds more than one YAML document", exc.problem_mark
            where = pos(mark)
            hint = "a config file holds one document: remove the '---' line or move what follows to its own file"
        elif "found character '\\t'" in str(exc):
            hint = "YAML indents with spaces, not tabs"
        elif message.startswith("expected <block end>"):
            start = f" (the block starting at line {exc.context_mark.line + 1})" if exc.context_mark else ""
            hint = f"this line is indented differently from the lines above it{start}: line up keys of one mapping"
        elif "mapping values are not allowed here" in message:
            hint = ("a ':' where YAML expects none: check this line's indentation, "
                    "or quote a value that holds ': '")
        elif exc.context_mark is not None and exc.problem_mark is not None \
                and exc.context_mark.line != exc.problem_mark.line:
            what = next((name for word, name in _YAML_CONTEXTS if word in (exc.context or "")), "the value")
            hint = f"{what} that starts at line {exc.context_mark.line + 1} does not end where it should"
        raise ConfigError.single("syntax", f"invalid YAML: {message}", where, hint=hint) from None
    except yaml.YAMLError as exc:
        raise ConfigError.single("syntax", f"invalid YAML: {exc}", Position(file, 1, 1)) from None
    except RecursionError:  # PyYAML's composer recurses once per level of nesting
        raise ConfigError.single("syntax", "the YAML nests too deeply", Position(file, 1, 1)) from None
    del lines
    if root is None:
        raise ConfigError.single("syntax", "the file is empty", Position(file, 1, 1),
                                 hint="a config file holds one mapping")

    constructor = yaml.SafeLoader("")
    budget = Budget()

    def build(node: Any, path: JsonPath, depth: int) -> Any:
        text = node.value if isinstance(node, yaml.ScalarNode) else ""
        try:
            budget.take(1, len(text) + (len(path[-1]) if path and isinstance(path[-1], str) else 0))
        except TooLarge as exc:
            raise ConfigError.single(
                "too-large", exc.message("YAML"), pos(node.start_mark), path[:8],
                hint="aliases (*name) repeat what they refer to; aliases of aliases multiply: "
                     "write the values out, or use fewer nested aliases") from None
        if depth > 200:
            raise ConfigError.single("syntax", "the YAML nests too deeply (or an alias refers to itself)",
                                     pos(node.start_mark))
        doc.values[path] = pos(node.start_mark)
        if isinstance(node, yaml.MappingNode):
            _flatten_merges(node, budget, pos, path)
            out: dict[str, Any] = {}
            for key_node, value_node in node.value:
                if not isinstance(key_node, yaml.ScalarNode):
                    raise ConfigError.single("syntax", "a mapping key must be a plain value",
                                             pos(key_node.start_mark), path)
                key = constructor.construct_object(key_node)
                if not isinstance(key, str):
                    key = str(key).lower() if isinstance(key, bool) else str(key)
                child = (*path, key)
                if key in out:
                    first = doc.keys[child]
                    raise ConfigError.single(
                        "syntax", f"duplicate key {key!r} (first defined at line {first.line})",
                        pos(key_node.start_mark), child, hint="keep one of the two entries")
                doc.keys[child] = pos(key_node.start_mark)
                out[key] = build(value_node, child, depth + 1)
            return out
        if isinstance(node, yaml.SequenceNode):
            return [build(item, (*path, i), depth + 1) for i, item in enumerate(node.value)]
        try:
            value = constructor.construct_object(node)
        except ValueError as exc:  # an integer of thousands of digits
            raise ConfigError.single("syntax", f"invalid value: {str(exc)[:200]}",
                                     pos(node.start_mark), path) from None
        if isinstance(value, float) and math.isinf(value) and "inf" not in node.value.lower():
            raise ConfigError.single("syntax", f"{node.value[:40]} is too large for a number "
                                     "(it would be infinity)", pos(node.start_mark), path,
                                     hint="write a finite number")
        if node.style is None and isinstance(node.value, str):
            raw = node.value
            if isinstance(value, str) and _YAML11_FLOAT_AS_STR.match(raw):
                note = (f"YAML 1.1 reads {raw} as the string {raw!r}, not a number: "
                        f"write it with a dot, e.g. {_float_spelling(raw)}")
                doc.notes[path] = note
                doc.problems.append(Problem("warning", "yaml-1.1", f"{raw} is a string, not a number",
                                            pos(node.start_mark), path, note))
            elif isinstance(value, bool) and raw.lower() in _YAML11_BOOL_WORDS:
                note = (f"YAML 1.1 reads {raw} as the boolean {str(value).lower()}: write "
                        f"{str(value).lower()} if you mean it, or quote it ('{raw}') for the string")
                doc.notes[path] = note
                doc.problems.append(Problem("warning", "yaml-1.1", f"{raw} is the boolean {str(value).lower()}",
                                            pos(node.start_mark), path, note))
        if hasattr(value, "isoformat"):  # timestamps: keep the text, JSON has no dates
            value = node.value
        return value

    try:
        doc.data = build(root, (), 0)
    except RecursionError:
        raise ConfigError.single("syntax", "the YAML nests too deeply", Position(file, 1, 1)) from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError.single("syntax", f"invalid YAML: {getattr(exc, 'problem', None) or exc}",
                                 pos(mark) if mark else Position(file, 1, 1)) from None
    return doc


_MERGE_TAG = "tag:yaml.org,2002:merge"


def _flatten_merges(node: Any, budget: Budget, pos: Callable[[Any], Position], path: JsonPath,
                    depth: int = 0) -> None:
    """Resolve the mapping ``node``'s merge keys (``<<: *base``) in place, as PyYAML's
    ``flatten_mapping`` does, counting every entry a merge copies against ``budget`` before
    it is copied: a chain of merges of merges, each holding the one before, grows with the
    square of its length."""
    import yaml

    if depth > 200:
        raise ConfigError.single("syntax", "the YAML's merge keys nest too deeply (or one refers to itself)",
                                 pos(node.start_mark), path[:8])
    merged: list[Any] = []
    kept: list[Any] = []
    for key_node, value_node in node.value:
        if key_node.tag != _MERGE_TAG:
            if key_node.tag == "tag:yaml.org,2002:value":
                key_node.tag = "tag:yaml.org,2002:str"
            kept.append((key_node, value_node))
            continue
        sources = value_node.value if isinstance(value_node, yaml.SequenceNode) else [value_node]
        parts = []
        for source in sources:
            if not isinstance(source, yaml.MappingNode):
                raise ConfigError.single("syntax", "a merge key (<<) takes a mapping or a list of mappings",
                                         pos(source.start_mark), path[:8])
            _flatten_merges(source, budget, pos, path, depth + 1)
            parts.append(source.value)
        for part in reversed(parts):  # the first mapping named wins, as in PyYAML
            try:
                budget.take(len(part))
            except TooLarge as exc:
                raise ConfigError.single(
                    "too-large", exc.message("YAML"), pos(value_node.start_mark), path[:8],
                    hint="merge keys (<<: *name) copy what they name, and merges of merges multiply: "
                         "write the values out, or merge fewer levels") from None
            merged.extend(part)
    if merged:
        # A key written in the mapping wins over a merged one, and an earlier mapping of
        # the merge over a later one (YAML's merge rule): no duplicate is left to report.
        written = {k.value for k, _ in kept if isinstance(k, yaml.ScalarNode)}
        latest: dict[Any, Any] = {}
        for key_node, value_node in merged:  # the first-named mapping's entries come last
            name = key_node.value if isinstance(key_node, yaml.ScalarNode) else id(key_node)
            if name not in written:
                latest.pop(name, None)
                latest[name] = (key_node, value_node)
        node.value = [*latest.values(), *kept]
    elif len(kept) != len(node.value):
        node.value = kept


def _float_spelling(raw: str) -> str:
    mantissa, _, exp = raw.lower().partition("e")
    if "." not in mantissa:
        mantissa += ".0"
    return f"{mantissa}e{exp}"


def parse_hocon(text: str, file: str, *, folder: str | Path | None = None,
                root: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Document:
    """Parse HOCON (``.conf``) with the position of every key and value.

    flconfig's own reader (:mod:`flconfig.config.hocon`) gives the data pyhocon gives
    (FLARE reads ``.conf`` with pyhocon) and resolves includes and substitutions itself:
    an include reads only a file inside ``root`` (the job folder; default ``folder``,
    the file's own folder), and a ``${X}`` the file does not define reads only
    ``environ`` (default: nothing). The values a substitution or an include produced are
    named in :attr:`Document.sources`.
    """
    from . import hocon

    try:
        parsed = hocon.parse(text, file, folder=folder, root=root, environ=environ)
    except hocon.HoconError as exc:
        message = exc.message if exc.code != "syntax" else f"invalid HOCON: {exc.message}"
        raise ConfigError.single(exc.code, message, exc.position, hint=exc.hint) from None
    except RecursionError:
        raise ConfigError.single("syntax", "the HOCON nests too deeply", Position(file, 1, 1)) from None
    return Document(file, parsed.data, parsed.values, parsed.keys, sources=parsed.sources,
                    secrets=parsed.secrets)


def parse_text(text: str, file: str, *, folder: str | Path | None = None, root: str | Path | None = None,
               environ: Mapping[str, str] | None = None) -> Document:
    """Parse ``text`` by the suffix of ``file`` (``x.conf.default`` is HOCON); ``folder``,
    ``root`` and ``environ`` are :func:`parse_hocon`'s."""
    name = Path(file).name.lower()
    suffix = Path(name.removesuffix(DEFAULT_SUFFIX)).suffix
    if suffix in YAML_SUFFIXES:
        return parse_yaml(text, file)
    if suffix in HOCON_SUFFIXES:
        return parse_hocon(text, file, folder=folder, root=root, environ=environ)
    return parse_json(text, file)


def load_document(path: str | Path, display: str | None = None, *, root: str | Path | None = None,
                  environ: Mapping[str, str] | None = None) -> Document:
    """Read and parse a config file. ``display`` is the name used in positions; ``root``
    is the job folder a HOCON include must stay inside (default: the file's folder), and
    ``environ`` what a HOCON ``${X}`` the file does not define may read (default: nothing).
    """
    file = display or str(path)
    try:
        raw = Path(path).read_bytes()
    except OSError as exc:
        raise ConfigError.single("io", f"cannot read the file: {exc.strerror}", Position(file)) from None
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = raw[: exc.start].count(b"\n") + 1
        line_start = raw.rfind(b"\n", 0, exc.start) + 1
        column = len(raw[line_start : exc.start].decode("utf-8-sig", "replace")) + 1
        raise ConfigError.single("syntax", f"the file is not UTF-8 text (byte 0x{raw[exc.start]:02x})",
                                 Position(file, line, column), hint="save the file as UTF-8") from None
    folder = Path(path).parent
    return parse_text(text, file, folder=folder, root=root if root is not None else folder, environ=environ)
