"""HOCON (``.conf``), read by flconfig alone, with the position of every key and value.

FLARE reads ``.conf`` files with pyhocon, which gives data without positions, and which
reads any file, URL and environment variable of the machine that parses the config.
This reader gives pyhocon's data for HOCON as FLARE's job folders write it
(``../shared/FLARE-COMPAT.md``: ``key = value``, ``key: value`` and ``key { ... }``,
unquoted keys and values, dotted keys as paths, quoted keys that stay literal, ``#`` and
``//`` comments, newline- or comma-separated fields and items, trailing commas, ``\"\"\"``
strings, objects merged when a key repeats) and covers the rest of HOCON a config uses:

- ``include "f.conf"``, ``include file("f.conf")``, ``include required(...)``: only a
  file inside the job folder (``root``), by a path relative to the including file, whose
  real path (links followed) stays inside; ``url(...)``, ``classpath(...)``, absolute
  paths and paths leading out are errors at the include, and nothing outside is opened;
- substitutions ``${a.b}`` and ``${?a.b}`` as whole values, in concatenations
  (``path = ${root}"/x"``) and in lists, resolved as HOCON resolves them (the final value
  of the path; a key that refers to itself, ``a = ${a} [3]``, sees its earlier value);
  ``+=``; object merging (``a = ${base} { x = 1 }``) and list concatenation;
- a ``${X}`` the document does not define falls back to the ``environ`` mapping it is
  given, and to nothing else: never the process environment.

Every value keeps its own position; a value copied by a substitution has the position
of the ``${...}`` that copied it, and :attr:`Parsed.sources` names that expression, so
that messages show it instead of the value. Cycles, undefined substitutions and a
document that expands past :mod:`~flconfig.config.limits` are errors at their line.
"""

from __future__ import annotations

import bisect
import json
import os
import posixpath
import re
import stat
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ...errors import ConfigError, JsonPath, Position
from ..documents import Document
from ..limits import MAX_INCLUDE_DEPTH, MAX_VALUES, Budget, TooLarge

__all__ = ["HoconError", "Parsed", "parse", "parse_hocon"]

# A key's unquoted characters (pyhocon: letters, digits, and "._- /").
_KEY_CHARS = re.compile(r"[\w.\- /]+", re.UNICODE)
# An unquoted value's characters: anything but these, or a backslash escape.
_UNQUOTED = re.compile(r'(?:[^^`+?!@*&"\[\]{}\s#,=$\\]|\\.)+', re.UNICODE)
_NUMBER = re.compile(r"[+-]?(\d*\.\d+|\d+(\.\d+)?)([eE][+\-]?\d+)?\Z")
_KEYWORDS = {"true": True, "false": False, "null": None}
# What splits a key into path elements (pyhocon's parse_key).
_KEY_SPLIT = re.compile(r'"(?:[^"\\]|\\.)+"|[^$}\[\]:=+#`^?!@*&.]+')
# The escapes pyhocon (so FLARE) replaces, in quoted and unquoted strings alike; any other
# backslash pair (a Windows path's "\\d", "\\u00e9") stays as written.
_ESCAPES = {"\\\\": "\\", "\\\n": "\n", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\=": "=",
            "\\#": "#", "\\!": "!", '\\"': '"'}
_ESCAPE = re.compile(r"\\.", re.DOTALL)
# `include` starts an include statement when a file name or file(...) etc. follows it.
_INCLUDE = re.compile(r'include[ \t]*(?="|(?:file|url|classpath|required)[ \t]*\()')
_INCLUDE_CALL = re.compile(r"(file|url|classpath|required)[ \t]*\([ \t]*")
#: Most times one key may be set again (each later value may refer to the one before).
MAX_OVERRIDES = 100
# Longest expression a message quotes in place of a value.
_MAX_EXPR = 80
_TOO_LARGE_HINT = ("substitutions (${...}) and includes repeat what they refer to, and nested ones "
                   "multiply: write the values out, or nest fewer of them")
_INSIDE_HINT = ("a job's configs include only files inside its job folder, by a path relative to "
                "the including file: copy the file into the job folder")


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(0), m.group(0)), text)


class HoconError(Exception):
    """Bad HOCON: ``message`` at ``position`` (a problem ``code``), and how to fix it."""

    def __init__(self, message: str, position: Position, hint: str | None = None,
                 code: str = "syntax") -> None:
        super().__init__(message)
        self.message = message
        self.position = position
        self.hint = hint
        self.code = code


@dataclass
class Parsed:
    """A HOCON document: its data and where each value, key and substituted value came from."""

    data: Any
    values: dict[JsonPath, Position] = field(default_factory=dict)
    keys: dict[JsonPath, Position] = field(default_factory=dict)
    #: The expression that produced a value (``${DATA_ROOT}``, ``${root}"/x"``), or the
    #: include it came from, by path: messages show it instead of the value.
    sources: dict[JsonPath, str] = field(default_factory=dict)
    #: Text taken from ``environ``, and the expression that took it: never shown.
    secrets: dict[str, str] = field(default_factory=dict)


def parse_hocon(text: str, file: str, *, folder: str | Path | None = None,
                root: str | Path | None = None, environ: Mapping[str, str] | None = None) -> Document:
    """Parse HOCON (``.conf``) with the position of every key and value.

    flconfig's own reader (:func:`parse`, this module) gives the data pyhocon gives
    (FLARE reads ``.conf`` with pyhocon) and resolves includes and substitutions itself:
    an include reads only a file inside ``root`` (the job folder; default ``folder``,
    the file's own folder), and a ``${X}`` the file does not define reads only
    ``environ`` (default: nothing). The values a substitution or an include produced are
    named in :attr:`Document.sources`.
    """
    try:
        parsed = parse(text, file, folder=folder, root=root, environ=environ)
    except HoconError as exc:
        message = exc.message if exc.code != "syntax" else f"invalid HOCON: {exc.message}"
        raise ConfigError.single(exc.code, message, exc.position, hint=exc.hint) from None
    except RecursionError:
        raise ConfigError.single("syntax", "the HOCON nests too deeply", Position(file, 1, 1)) from None
    return Document(file, parsed.data, parsed.values, parsed.keys, sources=parsed.sources,
                    secrets=parsed.secrets)


def parse(text: str, file: str, *, folder: str | Path | None = None, root: str | Path | None = None,
          environ: Mapping[str, str] | None = None) -> Parsed:
    """Read a HOCON text; ``file`` is how positions name it.

    ``folder`` is the folder of the file (includes are relative to it) and ``root`` the
    job folder that includes must stay inside (default: ``folder``); without a folder,
    an include is an error. ``environ`` is what a ``${X}`` that the document does not
    define may fall back to (default: nothing). Raises :class:`HoconError`.
    """
    real_folder = Path(folder).resolve() if folder is not None else None
    real_root = Path(root).resolve() if root is not None else real_folder
    reader = _Reader(real_root, dict(environ or {}))
    if real_folder is not None:
        reader.main = os.path.realpath(real_folder / Path(file).name)
    try:
        reader.read.take(0, len(text))
    except TooLarge as exc:
        raise HoconError(exc.message("HOCON"), Position(file, 1, 1), _TOO_LARGE_HINT, "too-large") from None
    raw = _Parser(text, file, reader.read, real_folder).document()
    tree = _Scope(reader).place(raw, ())
    reader.tree = tree
    value = reader.build(tree)
    out = Parsed(None, secrets=reader.secrets)
    out.data = _plain(value if value is not None else _V({}, tree.pos), (), out)
    return out


# --- the document as written ------------------------------------------------------------


class _Node:
    __slots__ = ("pos",)

    def __init__(self, pos: Position) -> None:
        self.pos = pos


class _Lit(_Node):
    """A string, number, boolean or null, and its text as written (for concatenations)."""

    __slots__ = ("source", "text", "value")

    def __init__(self, pos: Position, value: Any, text: str, source: str | None) -> None:
        super().__init__(pos)
        self.value = value
        self.text = text
        self.source = source


class _Field:
    __slots__ = ("key_pos", "node", "overrides")

    def __init__(self, node: _Node, key_pos: Position) -> None:
        self.node = node
        self.key_pos = key_pos
        self.overrides = 0  # how many later values stand on this one (each may refer to it)


class _Obj(_Node):
    __slots__ = ("fields",)

    def __init__(self, pos: Position) -> None:
        super().__init__(pos)
        self.fields: dict[str, _Field] = {}


class _Arr(_Node):
    __slots__ = ("items",)

    def __init__(self, pos: Position, items: list[_Node]) -> None:
        super().__init__(pos)
        self.items = items


class _Subst(_Node):
    """``${path}`` / ``${?path}``. ``prefix``: where the file holding it was included (the
    path is looked up there first); ``field``: the key whose value it is part of, and
    ``previous``: that key's earlier value, which a reference to the key itself sees.
    ``append``: the earlier value taken by ``+=``, kept as it is (positions and all)."""

    __slots__ = ("append", "expr", "field", "optional", "path", "prefix", "previous")

    def __init__(self, pos: Position, path: JsonPath, optional: bool, expr: str, prefix: JsonPath,
                 append: bool = False) -> None:
        super().__init__(pos)
        self.path = path
        self.optional = optional
        self.expr = expr
        self.prefix = prefix
        self.field: JsonPath | None = None
        self.previous: _Node | None = None
        self.append = append


class _Concat(_Node):
    """Values written side by side on one line: text joins (with the spaces between),
    lists join, objects merge. ``expr`` is the whole expression as written."""

    __slots__ = ("expr", "parts")

    def __init__(self, pos: Position, parts: list[tuple[str, _Node]], expr: str) -> None:
        super().__init__(pos)
        self.parts = parts
        self.expr = expr


class _Override(_Node):
    """A key set twice: the newer value, merged onto the older one when both are objects."""

    __slots__ = ("newer", "older")

    def __init__(self, older: _Node, newer: _Node) -> None:
        super().__init__(newer.pos)
        self.older = older
        self.newer = newer


def _direct_substs(node: _Node) -> list[_Subst]:
    """The substitutions that are (part of) a value itself, not inside an object or list."""
    if isinstance(node, _Subst):
        return [node]
    if isinstance(node, _Concat):
        return [part for _, part in node.parts if isinstance(part, _Subst)]
    return []


class _Stmt:
    """``key = value``, ``key { ... }`` or ``key += value`` as written in an object."""

    __slots__ = ("append", "elements", "expr", "key_pos", "node")

    def __init__(self, elements: list[str], key_pos: Position, node: _Node, append: bool, expr: str) -> None:
        self.elements = elements
        self.key_pos = key_pos
        self.node = node
        self.append = append
        self.expr = expr


class _Include:
    """``include ...`` as written; ``target``: the file it names, once checked."""

    __slots__ = ("folder", "kind", "name", "pos", "required", "target", "written")

    def __init__(self, pos: Position, written: str, kind: str, name: str, required: bool,
                 folder: Path | None) -> None:
        self.pos = pos
        self.folder = folder
        self.written = written
        self.kind = kind
        self.name = name
        self.required = required
        self.target: tuple[str, str] | None | bool = False  # False: not checked yet


class _RawObj(_Node):
    """An object as written: its fields and includes in order (merged when placed)."""

    __slots__ = ("stmts",)

    def __init__(self, pos: Position) -> None:
        super().__init__(pos)
        self.stmts: list[_Stmt | _Include] = []


class _Parser:
    """One file's text → its nodes as written. A file included many times is parsed once
    (:meth:`_Reader.load`) and placed (:class:`_Scope`) at each include."""

    def __init__(self, text: str, file: str, budget: Budget | None, folder: Path | None) -> None:
        self.text = text
        self.file = file
        self.budget = budget
        self.folder = folder
        self.nodes = 0
        self.includes: list[_Include] = []
        self._lines = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.open: list[int] = []

    def pos(self, offset: int) -> Position:
        line = bisect.bisect_right(self._lines, offset)
        return Position(self.file, line, offset - self._lines[line - 1] + 1)

    def fail(self, offset: int, message: str, hint: str | None = None, code: str = "syntax") -> HoconError:
        return HoconError(message, self.pos(offset), hint, code)

    def made(self, offset: int) -> None:
        """Count one node read; the main file's count against its budget (an included
        file's count is taken, expanded, at its include)."""
        self.nodes += 1
        if self.budget is not None:
            try:
                self.budget.take(1)
            except TooLarge as exc:
                raise self.fail(offset, exc.message("HOCON"), _TOO_LARGE_HINT, "too-large") from None

    # -- the whole text -------------------------------------------------------------

    def document(self) -> _RawObj | _Arr:
        i = self.gap(0, commas=True)
        node: _RawObj | _Arr
        if self.text.startswith("[", i):
            node, i = self.array(i + 1)
        elif self.text.startswith("{", i):
            node, i = self.object(i + 1, "}")
        else:
            node, i = self.object(i, None)
        i = self.gap(i, commas=True)
        if i < len(self.text):
            raise self.fail(i, f"unexpected {self.text[i]!r} after the end of the document")
        return node

    # -- blanks ---------------------------------------------------------------------

    def gap(self, i: int, *, commas: bool = False, newlines: bool = True) -> int:
        """Skip spaces, comments, and (as asked) newlines and commas."""
        text = self.text
        while i < len(text):
            ch = text[i]
            if ch in " \t\ufeff":
                i += 1
            elif ch in "\r\n" and newlines:
                i += 1
            elif ch == "," and commas:
                i += 1
            elif ch == "#" or text.startswith("//", i):
                end = text.find("\n", i)
                i = len(text) if end < 0 else end
            else:
                break
        return i

    # -- objects and arrays ---------------------------------------------------------

    def object(self, i: int, closing: str | None) -> tuple[_RawObj, int]:
        """The fields from ``i`` (after the ``{``) to ``closing``."""
        obj = _RawObj(self.pos(i - 1 if closing else self.gap(i, commas=True)))
        self.made(i)
        if closing:
            self.open.append(i - 1)
        while True:
            i = self.gap(i, commas=True)
            if i >= len(self.text):
                if closing:
                    raise self.fail(i, "unexpected end of file inside an object", self._unclosed_hint())
                return obj, i
            ch = self.text[i]
            if closing and ch == closing:
                self.open.pop()
                return obj, i + 1
            if _INCLUDE.match(self.text, i):
                include, i = self.include(i)
                obj.stmts.append(include)
                label = "include"
            else:
                key_at = i
                elements, key_end = self.key(i)
                i = self.gap(key_end)
                ch = self.text[i : i + 1]
                append = False
                if ch == "{":
                    node, i = self.concat(i, in_array=False)
                elif ch in ("=", ":"):
                    i = self.gap(i + 1)
                    node, i = self.concat(i, in_array=False)
                elif self.text.startswith("+=", i):
                    append = True
                    self.made(i)
                    i = self.gap(i + 2)
                    node, i = self.concat(i, in_array=False)
                else:
                    raise self.fail(key_end, f"expected '=', ':' or '{{' after the key "
                                             f"{'.'.join(elements)!r}",
                                    "a key needs a value: write key = value")
                obj.stmts.append(_Stmt(elements, self.pos(key_at), node, append,
                                       _shorten(self.text[key_at:i])))
                label = f"the value of {'.'.join(elements)!r}"
            i = self.gap(i, newlines=False)
            ch = self.text[i : i + 1]
            if ch and ch not in ",\r\n" and ch != closing:
                raise self.fail(i, f"expected a new line or ',' after {label}, found {ch!r}")

    def array(self, i: int) -> tuple[_Arr, int]:
        arr = _Arr(self.pos(i - 1), [])
        self.made(i)
        self.open.append(i - 1)
        while True:
            i = self.gap(i, commas=True)
            if i >= len(self.text):
                raise self.fail(i, "unexpected end of file inside a list", self._unclosed_hint())
            if self.text[i] == "]":
                self.open.pop()
                return arr, i + 1
            item, i = self.concat(i, in_array=True)
            arr.items.append(item)
            i = self.gap(i, newlines=False)
            ch = self.text[i : i + 1]
            if ch and ch not in ",\r\n]":
                raise self.fail(i, f"expected ',' or ']' after this item, found {ch!r}")

    def _unclosed_hint(self) -> str | None:
        if not self.open:
            return None
        where = self.pos(self.open[-1])
        return (f"the '{self.text[self.open[-1]]}' at line {where.line}, column {where.column} "
                "is never closed: is the file cut short?")

    # -- keys -----------------------------------------------------------------------

    def key(self, i: int) -> tuple[list[str], int]:
        """The path elements of the key at ``i`` (``a.b."c.d"`` -> a, b, c.d)."""
        text = self.text
        start = i
        raw = ""
        while i < len(text):
            if text.startswith('"', i):
                string, end = self.quoted(i)
                raw += json.dumps(string) if string else '""'
                i = end
                continue
            m = _KEY_CHARS.match(text, i)
            if not m:
                break
            raw += m.group(0)
            i = m.end()
        raw = raw.strip()
        if not raw:
            found = text[i : i + 1]
            raise self.fail(i, f"expected a key, found {found!r}" if found else "expected a key")
        elements = _path_elements(raw)
        if not elements:
            raise self.fail(start, f"{raw!r} is not a key")
        # the whitespace after an unquoted key is not part of it
        return elements, start + len(text[start:i].rstrip(" \t"))

    # -- values ---------------------------------------------------------------------

    def concat(self, i: int, *, in_array: bool) -> tuple[_Node, int]:
        """One value: the pieces written side by side up to the end of the line (or a
        ``,``, ``]``, ``}``), e.g. ``foo "bar" ${x}`` or ``${base} { x = 1 }``."""
        text = self.text
        start = i
        parts: list[tuple[str, _Node]] = []  # (whitespace before it, piece)
        space = ""
        end = i
        while i < len(text):
            ch = text[i]
            if ch in " \t":
                j = i
                while j < len(text) and text[j] in " \t":
                    j += 1
                space, i = text[i:j], j
                continue
            if ch in ",\r\n]}#" or text.startswith("//", i):
                break
            at = i
            node: _Node
            if text.startswith('"""', i):
                close = text.find('"""', i + 3)
                if close < 0:
                    raise self.fail(i, 'a """ string that never ends')
                while text.startswith('"', close + 3):  # """a"""" -> a" (extra quotes belong to it)
                    close += 1
                string = text[i + 3 : close]
                node = self.literal(at, string, string)
                i = close + 3
            elif ch == '"':
                string, i = self.quoted(i)
                node = self.literal(at, string, string)
            elif text.startswith("${", i):
                node, i = self.substitution(i)
            elif ch == "{":
                node, i = self.object(i + 1, "}")
            elif ch == "[":
                node, i = self.array(i + 1)
            else:
                m = _UNQUOTED.match(text, i)
                if not m:
                    raise self.fail(i, f"{ch!r} cannot start a value here",
                                    "quote the value if it holds this character")
                word = _unescape(m.group(0))
                node = self.literal(at, _typed(word), word)
                i = m.end()
            parts.append((space, node))
            space = ""
            end = i
        if not parts:
            if in_array:
                raise self.fail(i, "expected a value")
            # `key =` with nothing after it: the empty string, as pyhocon reads it
            return self.literal(i, "", ""), i
        if len(parts) == 1:
            return parts[0][1], end
        self.made(start)
        return _Concat(parts[0][1].pos, parts, _shorten(text[start:end])), end

    def literal(self, offset: int, value: Any, text: str) -> _Lit:
        self.made(offset)
        return _Lit(self.pos(offset), value, text, None)

    def substitution(self, i: int) -> tuple[_Subst, int]:
        """``${path}`` or ``${?path}`` at ``i``."""
        text = self.text
        close = text.find("}", i)
        newline = text.find("\n", i)
        if close < 0 or (0 <= newline < close):
            raise self.fail(i, "a '${' that is never closed with '}'", "write ${key} or ${?key}")
        inner = text[i + 2 : close]
        optional = inner.startswith("?")
        raw = (inner[1:] if optional else inner).strip()
        elements = _path_elements(raw) if raw and raw.count('"') % 2 == 0 else []
        if not elements:
            raise self.fail(i, f"{text[i:close + 1]!r} names no key", "write ${key} or ${a.b.c}")
        self.made(i)
        return _Subst(self.pos(i), tuple(elements), optional, text[i : close + 1], ()), close + 1

    def quoted(self, i: int) -> tuple[str, int]:
        """The string quoted at ``i`` (on one line; a backslash escapes the next character,
        a newline too) and the offset after it."""
        text = self.text
        j = i + 1
        while True:
            if j >= len(text) or text[j] in "\r\n":
                raise self.fail(i, "a quoted string that does not end on its line",
                                'close it with "; a string over several lines needs """')
            if text[j] == '"':
                return _unescape(text[i + 1 : j]), j + 1
            j += 2 if text[j] == "\\" else 1

    # -- includes -------------------------------------------------------------------

    def include(self, i: int) -> tuple[_Include, int]:
        """The ``include ...`` statement at ``i``, as written, and the offset after it."""
        start = i
        i = self.gap(i + len("include"), newlines=False)
        kind, name, required, i = self.include_target(i, start)
        include = _Include(self.pos(start), self.text[start:i], kind, name, required, self.folder)
        self.includes.append(include)
        return include, i

    def include_target(self, i: int, start: int) -> tuple[str, str, bool, int]:
        """``(kind, name, required, end)`` of ``"f"``, ``file("f")``, ``required(...)``."""
        text = self.text
        if text.startswith('"', i):
            name, i = self.quoted(i)
            return "file", name, False, i
        m = _INCLUDE_CALL.match(text, i)
        if not m:
            raise self.fail(start, "expected a quoted file name after 'include'",
                            'write include "other.conf" or include required("other.conf")')
        word = m.group(1)
        i = m.end()
        if word == "required":
            kind, name, _, i = self.include_target(i, start)
            required = True
        elif text.startswith('"', i):
            name, i = self.quoted(i)
            kind, required = word, False
        else:
            raise self.fail(start, f"expected a quoted name in {word}(...)",
                            f'write include {word}("other.conf")')
        i = self.gap(i, newlines=False)
        if not text.startswith(")", i):
            raise self.fail(i, "expected ')' to close the include", 'write include file("other.conf")')
        return kind, name, required, i + 1


class _Scope:
    """Where one file's nodes are placed in the document: the path it is included at
    (``base``; the main file's is the root), what its plain values are marked as
    (``origin``), and how deep in includes it is."""

    def __init__(self, reader: _Reader, base: JsonPath = (), origin: str | None = None,
                 depth: int = 0) -> None:
        self.reader = reader
        self.base = base
        self.origin = origin
        self.depth = depth

    def place(self, raw: _Node, path: JsonPath) -> _Node:
        """A fresh node for ``raw`` at ``path`` (every place gets its own nodes)."""
        if isinstance(raw, _RawObj):
            return self.object(raw, path)
        if isinstance(raw, _Lit):
            return _Lit(raw.pos, raw.value, raw.text, self.origin)
        if isinstance(raw, _Arr):
            return _Arr(raw.pos, [self.place(item, (*path, i)) for i, item in enumerate(raw.items)])
        if isinstance(raw, _Subst):
            return _Subst(raw.pos, raw.path, raw.optional, raw.expr, self.base)
        assert isinstance(raw, _Concat)
        return _Concat(raw.pos, [(before, self.place(part, path)) for before, part in raw.parts], raw.expr)

    def object(self, raw: _RawObj, path: JsonPath) -> _Obj:
        obj = _Obj(raw.pos)
        for stmt in raw.stmts:
            if isinstance(stmt, _Include):
                self.include(stmt, obj, path)
                continue
            full = (*path, *stmt.elements)
            node = self.place(stmt.node, full)
            if stmt.append:  # key += value: key = ${?key} [value], the earlier items kept
                earlier = _Subst(stmt.key_pos, full, True, stmt.expr, (), append=True)
                node = _Concat(node.pos, [("", earlier), ("", _Arr(node.pos, [node]))], stmt.expr)
            for subst in _direct_substs(node):
                subst.field = full
            self.assign(obj, stmt.elements, node, stmt.key_pos)
        return obj

    def assign(self, obj: _Obj, elements: list[str], node: _Node, key_pos: Position) -> None:
        """Put ``node`` at ``elements`` under ``obj`` (a dotted key nests)."""
        target = obj
        for name in elements[:-1]:
            found = target.fields.get(name)
            if found is not None and isinstance(found.node, _Obj):
                target = found.node
                continue
            inner = _Obj(key_pos)
            if found is None:
                target.fields[name] = _Field(inner, key_pos)
            else:  # `a = ${x}` then `a.b = 1`: an object merged onto what a was
                found.node = _Override(found.node, inner)
                found.key_pos = key_pos
            target = inner
        self.put(target, elements[-1], node, key_pos)

    def put(self, obj: _Obj, key: str, node: _Node, key_pos: Position) -> None:
        """Set ``key`` of ``obj``: objects merge with the object there (HOCON); anything
        else overrides it, and a reference to the key itself sees what was there."""
        found = obj.fields.get(key)
        if found is None:
            obj.fields[key] = _Field(node, key_pos)
            return
        old = found.node
        found.key_pos = key_pos
        if isinstance(node, _Obj) and isinstance(old, _Obj):
            for name, item in node.fields.items():
                self.put(old, name, item.node, item.key_pos)
            return
        found.overrides += 1
        if found.overrides > MAX_OVERRIDES:  # each one sees the one before: a chain to resolve
            raise HoconError(f"{key!r} is set or appended to (+=) more than {MAX_OVERRIDES} times",
                             key_pos, "write its value once (a list in one place)", "too-large")
        for subst in _direct_substs(node):
            if subst.previous is None:
                subst.previous = old
        found.node = _Override(old, node)

    def include(self, include: _Include, obj: _Obj, path: JsonPath) -> None:
        """The fields of the file ``include`` names, merged into ``obj`` (at ``path``) as if
        written there. The main file takes the included file's whole expanded size first."""
        reader = self.reader
        target = reader.target(include)
        if target is None:
            return
        real, display = target
        if self.depth == 0:
            values, chars, height = reader.expanded(real, display, (reader.main,))
            if height > MAX_INCLUDE_DEPTH:
                raise HoconError(f"{include.written}: includes nest more than {MAX_INCLUDE_DEPTH} "
                                 "levels deep", include.pos, "include the files you need from fewer "
                                 "levels", "include")
            try:
                reader.read.take(values, chars)
            except TooLarge as exc:
                raise HoconError(exc.message("HOCON"), include.pos, _TOO_LARGE_HINT, "too-large") from None
        tree = reader.load(real, display)[0]
        if not isinstance(tree, _RawObj):
            raise HoconError(f"{include.written}: the included file holds a list, not an object",
                             include.pos, "an included file holds keys and values, as a config does",
                             "include")
        scope = _Scope(reader, path, self.origin or f"a value from {include.written}", self.depth + 1)
        for key, item in scope.object(tree, path).fields.items():
            self.put(obj, key, item.node, item.key_pos)


def _inside(path: str, root: str) -> bool:
    return path == root or path.startswith(root.rstrip(os.sep) + os.sep)


def _path_elements(raw: str) -> list[str]:
    elements = []
    for part in _KEY_SPLIT.findall(raw):
        if part.startswith('"'):
            elements.append(json.loads(part))
        elif part.strip():
            elements.append(part.strip())
    return elements


def _shorten(expr: str) -> str:
    expr = expr.strip()
    return expr if len(expr) <= _MAX_EXPR else expr[: _MAX_EXPR - 3] + "..."


def _typed(word: str) -> Any:
    """An unquoted value as pyhocon types it: a number, true/false/null (any case), or text."""
    lowered = word.lower()
    if lowered in _KEYWORDS:
        return _KEYWORDS[lowered]
    if _NUMBER.match(word):
        try:
            return int(word, 10)
        except ValueError:
            return float(word)
    return word


# --- resolving ----------------------------------------------------------------------------


class _V:
    """A resolved value with its position, the positions of its keys (an object's), the
    expression it came from, and its size (values and characters, itself included)."""

    __slots__ = ("chars", "count", "keys", "pos", "source", "tag", "value")

    def __init__(self, value: Any, pos: Position, source: str | None = None,
                 keys: dict[str, Position] | None = None) -> None:
        self.value = value
        self.pos = pos
        self.source = source
        self.keys = keys
        #: (position, source) every part below this one has too: a substituted copy shares
        #: the parts of what it copies instead of copying them (see :func:`_retag`).
        self.tag: tuple[Position, str] | None = None
        if isinstance(value, dict):
            self.count = 1 + sum(v.count for v in value.values())
            self.chars = sum(len(k) + v.chars for k, v in value.items())
        elif isinstance(value, list):
            self.count = 1 + sum(v.count for v in value)
            self.chars = sum(v.chars for v in value)
        else:
            self.count = 1
            self.chars = len(value) if isinstance(value, str) else 0


def _retag(value: _V, pos: Position, source: str) -> _V:
    """``value`` as a substitution copies it: every part with ``pos`` and ``source``. Its
    parts are shared, not copied (a copy costs nothing however large it is); they take the
    tag when they are reached (:func:`_parts`, :func:`_plain`)."""
    out = _V.__new__(_V)
    out.value, out.pos, out.source = value.value, pos, source
    out.keys = dict.fromkeys(value.value, pos) if isinstance(value.value, dict) else None
    out.count, out.chars, out.tag = value.count, value.chars, (pos, source)
    return out


def _part(item: _V, tag: tuple[Position, str] | None) -> _V:
    """A part of a value whose parts carry ``tag``, as that value has it."""
    return item if tag is None else _retag(item, *tag)


def _parts(value: _V) -> Any:
    """The parts of an object's or a list's ``value`` (a dict or a list of :class:`_V`), with
    the tag of a substituted copy applied."""
    inner = value.value
    if value.tag is None:
        return inner
    if isinstance(inner, dict):
        return {k: _retag(v, *value.tag) for k, v in inner.items()}
    return [_retag(v, *value.tag) for v in inner]


def _kind(value: Any) -> str:
    if isinstance(value, dict):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return "text" if isinstance(value, str) else "a value"


def _text(value: Any) -> str:
    """A substituted value inside text: HOCON's spelling of booleans and null."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


class _Reader:
    """Everything one document's parse shares: its files, counts, and resolved values."""

    def __init__(self, root: Path | None, environ: Mapping[str, str]) -> None:
        self.root = root
        self.environ = environ
        self.read = Budget()  # what the files hold (an include read ten times counts ten times)
        self.built = Budget()  # what the document expands to
        self.work = Budget(10 * MAX_VALUES)  # and the work of joining what it holds
        self.texts: dict[str, str] = {}
        self.tree: _Node | None = None
        self.done: dict[int, _V | None] = {}
        self.active: dict[int, _Node] = {}
        self.resolving: list[_Subst] = []
        self.secrets: dict[str, str] = {}
        self.main = ""  # the real path of the file being read
        self.files: dict[str, tuple[_Node, _Parser]] = {}
        self.sizes: dict[str, tuple[int, int, int]] = {}

    # -- included files ---------------------------------------------------------------

    def target(self, include: _Include) -> tuple[str, str] | None:
        """The real path and display name of the file ``include`` names, checked to lie in
        the job folder; None for a missing file that is not required. Nothing outside the
        job folder is opened, and whether something exists there is never told."""
        if include.target is not False:
            return include.target  # type: ignore[return-value]
        written, name, root = include.written, include.name, self.root

        def refused(why: str, hint: str | None = _INSIDE_HINT, code: str = "include") -> HoconError:
            return HoconError(f"{written}{why}", include.pos, hint, code)

        if include.kind != "file":
            raise refused(" is refused: a job's configs read only files inside the job folder, "
                          "never a URL or a class path resource")
        if include.folder is None or root is None:
            raise refused(": includes are read only from a config file in a job folder", None)
        if not name or os.path.isabs(name) or name.startswith(("/", "\\")) or re.match(r"[A-Za-z]:", name):
            raise refused(" is refused: an absolute path")
        lexical = os.path.normpath(os.path.join(include.folder, name))
        if not _inside(lexical, str(root)):
            raise refused(" is refused: it leads outside the job folder")
        real = os.path.realpath(lexical)
        if not _inside(real, str(root)):
            raise refused(" is refused: it is a link that leads outside the job folder")
        try:
            info = os.stat(real)
        except FileNotFoundError:
            if include.required:
                raise refused(": no such file in the job folder",
                              "add the file, or drop required(...) to let the include be missing") from None
            include.target = None
            return None
        except OSError as exc:
            raise refused(f": cannot read the file: {exc.strerror}", None) from None
        if not stat.S_ISREG(info.st_mode):
            raise refused(": not a file", "include a config file")
        if info.st_size > self.read.max_chars - self.read.chars:  # never read past the limit
            raise HoconError(TooLarge(f"{self.read.max_chars:,} characters").message("HOCON"), include.pos,
                             _TOO_LARGE_HINT, "too-large")
        display = posixpath.normpath(posixpath.join(posixpath.dirname(include.pos.file),
                                                    name.replace("\\", "/")))
        include.target = (real, display)
        return include.target

    def load(self, real: str, display: str) -> tuple[_Node, _Parser]:
        """The nodes of the file at ``real`` as written (parsed once) and its parser."""
        if real in self.files:
            return self.files[real]
        try:
            text = Path(real).read_bytes().decode("utf-8-sig")
        except OSError as exc:
            raise HoconError(f"cannot read the file: {exc.strerror}", Position(display), code="io") from None
        except UnicodeDecodeError as exc:
            raise HoconError(f"the file is not UTF-8 text (byte {exc.start})", Position(display),
                             "save the file as UTF-8") from None
        # Its nodes are counted as it is parsed (a file of more values than the limit stops
        # here); what it adds to the document is counted again where it is placed.
        parser = _Parser(text, display, Budget(), Path(real).parent)
        self.files[real] = (parser.document(), parser)
        return self.files[real]

    def expanded(self, real: str, display: str, chain: tuple[str, ...]) -> tuple[int, int, int]:
        """``(values, characters, include depth)`` of the file at ``real`` with everything
        it includes, counted once per file; an include cycle is an error at its include."""
        if real in self.sizes:
            return self.sizes[real]
        _, parser = self.load(real, display)
        values, chars, height = parser.nodes, len(parser.text), 1
        for include in parser.includes:
            target = self.target(include)
            if target is None:
                continue
            if target[0] in (*chain, real):
                loop = [*chain[chain.index(target[0]):], real] if target[0] in chain else [real]
                names = " -> ".join(Path(p).name for p in [*loop, target[0]])
                raise HoconError(f"{include.written} includes a file that includes it: {names}",
                                 include.pos, "remove one of the includes of this cycle", "include")
            depth = len(chain) + 1  # of the file this include reads, below the main file
            if depth > MAX_INCLUDE_DEPTH:
                raise HoconError(f"{include.written}: includes nest more than {MAX_INCLUDE_DEPTH} "
                                 "levels deep", include.pos, "include the files you need from fewer "
                                 "levels", "include")
            more = self.expanded(*target, (*chain, real))
            if depth - 1 + more[2] > MAX_INCLUDE_DEPTH:
                raise HoconError(f"{include.written}: includes nest more than {MAX_INCLUDE_DEPTH} "
                                 "levels deep", include.pos, "include the files you need from fewer "
                                 "levels", "include")
            values, chars, height = values + more[0], chars + more[1], max(height, 1 + more[2])
        self.sizes[real] = (values, chars, height)
        return self.sizes[real]

    def take(self, node: _Node, values: int, chars: int) -> None:
        """Count ``values`` and ``chars`` about to be built at ``node``."""
        try:
            self.built.take(values, chars)
        except TooLarge as exc:
            raise HoconError(exc.message("HOCON"), node.pos, _TOO_LARGE_HINT, "too-large") from None

    def step(self, node: _Node, steps: int) -> None:
        """Count the work of joining values already counted (a merge, a list joined): a
        chain of them repeats it."""
        try:
            self.work.take(steps)
        except TooLarge:
            raise HoconError(f"the HOCON takes more than {self.work.max_values:,} steps to expand",
                             node.pos, "a key merged or appended to thousands of times repeats the "
                             "work each time: write the value out once", "too-large") from None

    def build(self, node: _Node) -> _V | None:
        """The value of ``node`` (None: an optional substitution of nothing), built once."""
        key = id(node)
        if key in self.done:
            return self.done[key]
        if key in self.active:
            raise self.cycle()
        self.active[key] = node
        try:
            value = self._build(node)
        finally:
            del self.active[key]
        self.done[key] = value
        return value

    def _build(self, node: _Node) -> _V | None:
        if isinstance(node, _Lit):
            value = node.value
            self.take(node, 1, len(value) if isinstance(value, str) else 0)
            return _V(value, node.pos, node.source)
        if isinstance(node, _Obj):
            out: dict[str, _V] = {}
            keys: dict[str, Position] = {}
            for name, item in node.fields.items():
                value = self.build(item.node)
                if value is not None:
                    out[name] = value
                    keys[name] = item.key_pos
            self.take(node, 1, sum(len(k) for k in out))
            return _V(out, node.pos, None, keys)
        if isinstance(node, _Arr):
            items = [v for v in (self.build(item) for item in node.items) if v is not None]
            self.take(node, 1, 0)
            return _V(items, node.pos)
        if isinstance(node, _Subst):
            return self.substitute(node)
        if isinstance(node, _Concat):
            return self.concatenate(node)
        assert isinstance(node, _Override)
        newer = self.build(node.newer)
        if newer is None:
            return self.build(node.older)
        if not isinstance(newer.value, dict):
            return newer  # what it replaces is never needed
        older = self.build(node.older)
        if older is None or not isinstance(older.value, dict):
            return newer
        return self.merge(older, newer, node, older.pos)

    def merge(self, older: _V, newer: _V, node: _Node, pos: Position) -> _V:
        """Two objects merged: the newer one's keys win, objects in both merge."""
        out = dict(_parts(older))
        keys = dict(older.keys or {})
        for name, value in _parts(newer).items():
            before = out.get(name)
            if before is not None and isinstance(before.value, dict) and isinstance(value.value, dict):
                value = self.merge(before, value, node, before.pos)
            out[name] = value
            keys[name] = (newer.keys or {}).get(name, value.pos)
        self.take(node, 1, 0)
        self.step(node, len(out))
        return _V(out, pos, None, keys)

    def concatenate(self, node: _Concat) -> _V | None:
        parts = [(before, self.substitute(part, joined=True) if isinstance(part, _Subst) else self.build(part),
                  part) for before, part in node.parts]
        present = [(before, value, part) for before, value, part in parts if value is not None]
        if not present:
            return None
        containers = [value for _, value, _ in present if isinstance(value.value, (dict, list))]
        if containers:
            first = containers[0]
            for _, value, part in present:
                if isinstance(part, _Subst) and part.append and not isinstance(value.value, list):
                    raise HoconError(f"{node.expr}: += appends to a list, and the key holds "
                                     f"{_kind(value.value)}", part.pos,
                                     "write key = [...] first, or set the key with =", "syntax")
                if type(value.value) is not type(first.value):
                    raise HoconError(f"cannot join {_kind(first.value)} and {_kind(value.value)} "
                                     f"in one value: {node.expr}", part.pos,
                                     "a value joins text with text, lists with lists or objects with "
                                     "objects", "syntax")
            if isinstance(first.value, dict):
                merged = first
                for _, value, _ in present[1:]:
                    merged = self.merge(merged, value, node, node.pos)
                return merged
            self.take(node, 1, 0)
            self.step(node, sum(len(value.value) for _, value, _ in present))
            items = [item for _, value, _ in present for item in _parts(value)]
            return _V(items, node.pos)
        pieces = [(before, part.text if isinstance(part, _Lit) else _text(value.value))
                  for before, value, part in present]
        self.take(node, 1, sum(len(before) + len(piece) for before, piece in pieces))
        text = "".join(before + piece for before, piece in pieces).lstrip(" \t")
        substituted = any(isinstance(part, _Subst) or value.source for _, value, part in present)
        origin = next((p.source for _, _, p in present if isinstance(p, _Lit) and p.source), None)
        return _V(text, node.pos, node.expr if substituted else origin)

    def substitute(self, subst: _Subst, *, joined: bool = False) -> _V | None:
        """What ``subst`` gives: a copy of what it refers to, counted first. ``joined``: it is
        part of a concatenation, which counts text it joins itself (the text is not copied)."""
        self.resolving.append(subst)
        try:
            target, fresh = self.lookup(subst)
        finally:
            self.resolving.pop()
        if target is None or fresh or subst.append:
            return target
        if joined and not isinstance(target.value, (dict, list)):
            return target
        self.take(subst, target.count, target.chars)
        return _retag(target, subst.pos, subst.expr)

    def lookup(self, subst: _Subst) -> tuple[_V | None, bool]:
        """What ``subst`` refers to: the key in the document (first under the include's
        location), the earlier value of the key it sets, or else ``environ``; and whether
        the value was made for it (from ``environ``) rather than found."""
        candidates = [(*subst.prefix, *subst.path), subst.path] if subst.prefix else [subst.path]
        itself = False
        for path in candidates:
            if path == subst.field:  # the key refers to itself: its earlier value
                itself = True
                if subst.previous is not None:
                    earlier = self.build(subst.previous)
                    if earlier is not None:
                        return earlier, False
                continue
            found = self.find(path)
            if found is not None:
                return found, False
        dotted = ".".join(str(p) for p in subst.path)
        if dotted in self.environ:
            text = self.environ[dotted]
            self.take(subst, 1, len(text))
            if text:
                self.secrets[text] = subst.expr
            return _V(text, subst.pos, subst.expr), True
        if subst.optional:
            return None, True
        if itself:
            message = f"{subst.expr} refers to the key it sets, which has no earlier value"
        else:
            message = f"{subst.expr} is not defined: the config has no key {dotted}"
        raise HoconError(message, subst.pos,
                         f"define {dotted} in the config, write ${{?{dotted}}} to make it optional, or "
                         f"pass it from your environment with --env {dotted} (flconfig validate and "
                         "launch; a submitted job never reads the environment of the server or a site)",
                         "undefined-variable")

    def find(self, path: JsonPath) -> _V | None:
        """The value at ``path`` of the whole document, or None."""
        node = self.tree
        if not isinstance(node, _Obj):
            return None
        for i, key in enumerate(path):
            if isinstance(node, _Obj):
                item = node.fields.get(key)  # type: ignore[arg-type]
                if item is None:
                    return None
                node = item.node
                continue
            value = self.build(node)
            for part in path[i:]:
                if value is None or not isinstance(value.value, dict):
                    return None
                found = value.value.get(part)
                value = None if found is None else _part(found, value.tag)
            return value
        return self.build(node)

    def cycle(self) -> HoconError:
        """The error for a substitution that needs its own value."""
        here = self.resolving[-1]
        chain = []
        for subst in self.resolving:
            step = f"{subst.expr} (line {subst.pos.line})"
            if step not in chain:
                chain.append(step)
        if len(chain) > 1:
            hint = f"these refer to each other: {' -> '.join(chain)}; one of them must not refer back"
        else:
            hint = f"give the value a definition that does not use {here.expr}"
        return HoconError(f"{here.expr} is part of a cycle: it needs its own value", here.pos, hint,
                          "variable-cycle")


def _plain(value: _V, path: JsonPath, out: Parsed, tag: tuple[Position, str] | None = None) -> Any:
    """``value`` as plain data (new containers: a part shared by several copies is written
    out once per copy); its positions and sources go into ``out``. ``tag``: the position
    and source every part here has, from a substituted copy above it."""
    pos, source = tag if tag is not None else (value.pos, value.source)
    tag = tag or value.tag
    out.values[path] = pos
    if source:
        out.sources[path] = source
    inner = value.value
    if isinstance(inner, dict):
        result = {}
        keys = value.keys or {}
        for name, item in inner.items():
            child = (*path, name)
            out.keys[child] = tag[0] if tag is not None else keys.get(name, item.pos)
            result[name] = _plain(item, child, out, tag)
        return result
    if isinstance(inner, list):
        return [_plain(item, (*path, i), out, tag) for i, item in enumerate(inner)]
    return inner
