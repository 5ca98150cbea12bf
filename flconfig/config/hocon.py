"""HOCON (``.conf``) as FLARE writes it, parsed with the position of every key and value.

FLARE reads ``.conf`` files with pyhocon, which gives data without positions. This
reader covers what FLARE's own job folders use (``../shared/FLARE-COMPAT.md``:
``key = value``, ``key: value`` and ``key { ... }``, unquoted keys and values,
dotted keys as paths (``args.lr = 0.1`` nests) and quoted keys that stay literal,
``#`` and ``//`` comments, newline- or comma-separated fields and items, trailing
commas, ``\"\"\"`` strings, value concatenation, objects merged when a key repeats)
and gives the same data as pyhocon for it; a test compares the two on real files.

A file that uses what it does not cover (``include``, ``${...}`` substitutions,
``+=``) raises :class:`Unsupported`; :func:`flconfig.config.documents.parse_hocon`
then reads it with pyhocon, and says its positions are per file.
"""

from __future__ import annotations

import bisect
import json
import re
from typing import Any

from ..errors import JsonPath, Position

__all__ = ["HoconSyntaxError", "Unsupported", "parse"]

# A key's unquoted characters (pyhocon: letters, digits, and "._- /").
_KEY_CHARS = re.compile(r"[\w.\- /]+", re.UNICODE)
# An unquoted value's characters: anything but these, or a backslash escape.
_UNQUOTED = re.compile(r'(?:[^^`+?!@*&"\[\]{}\s#,=$\\]|\\.)+', re.UNICODE)
_NUMBER = re.compile(r"[+-]?(\d*\.\d+|\d+(\.\d+)?)([eE][+\-]?\d+)?\Z")
_KEYWORDS = {"true": True, "false": False, "null": None}
# What splits a key into path elements (pyhocon's parse_key).
_KEY_SPLIT = re.compile(r'"[^"]+"|[^$}\[\]:=+#`^?!@*&.]+')
# The escapes pyhocon (so FLARE) replaces, in quoted and unquoted strings alike; any other
# backslash pair (a Windows path's "\\d", "\\u00e9") stays as written.
_ESCAPES = {"\\\\": "\\", "\\\n": "\n", "\\n": "\n", "\\r": "\r", "\\t": "\t", "\\=": "=",
            "\\#": "#", "\\!": "!", '\\"': '"'}
_ESCAPE = re.compile(r"\\.", re.DOTALL)


def _unescape(text: str) -> str:
    return _ESCAPE.sub(lambda m: _ESCAPES.get(m.group(0), m.group(0)), text)


class HoconSyntaxError(Exception):
    """Bad HOCON at ``offset``: ``message``, and how to fix it when known."""

    def __init__(self, offset: int, message: str, hint: str | None = None) -> None:
        super().__init__(message)
        self.offset = offset
        self.message = message
        self.hint = hint
        self.position: Position | None = None  # set by parse()


class Unsupported(Exception):
    """The file uses a HOCON feature this reader does not cover (``feature``)."""

    def __init__(self, feature: str, offset: int) -> None:
        super().__init__(feature)
        self.feature = feature
        self.offset = offset
        self.position: Position | None = None  # set by parse()


def parse(text: str, file: str) -> tuple[Any, dict[JsonPath, Position], dict[JsonPath, Position]]:
    """``(data, value positions, key positions)`` of a HOCON text.

    Raises :class:`HoconSyntaxError` for bad syntax and :class:`Unsupported` for a
    feature outside the subset (the caller may read the file another way); both carry the
    ``position`` of what they are about."""
    parser = _Parser(text, file)
    try:
        return parser.parse()
    except (HoconSyntaxError, Unsupported) as exc:
        exc.position = parser.pos(exc.offset)
        raise


class _Parser:
    def __init__(self, text: str, file: str) -> None:
        self.text = text
        self.file = file
        self.values: dict[JsonPath, Position] = {}
        self.keys: dict[JsonPath, Position] = {}
        self._lines = [0] + [m.end() for m in re.finditer(r"\n", text)]
        self.open: list[int] = []

    def pos(self, offset: int) -> Position:
        line = bisect.bisect_right(self._lines, offset)
        return Position(self.file, line, offset - self._lines[line - 1] + 1)

    # -- the whole text -------------------------------------------------------------

    def parse(self) -> tuple[Any, dict[JsonPath, Position], dict[JsonPath, Position]]:
        i = self.gap(0, commas=True)
        self.values[()] = self.pos(i)
        if self.text.startswith("[", i):
            data: Any
            data, i = self.array(i + 1, ())
        elif self.text.startswith("{", i):
            data, i = self.object(i + 1, (), "}")
        else:
            data, i = self.object(i, (), None)
        i = self.gap(i, commas=True)
        if i < len(self.text):
            raise HoconSyntaxError(i, f"unexpected {self.text[i]!r} after the end of the document")
        return data, self.values, self.keys

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

    def object(self, i: int, path: JsonPath, closing: str | None) -> tuple[dict[str, Any], int]:
        out: dict[str, Any] = {}
        if closing:
            self.open.append(i - 1)
        while True:
            i = self.gap(i, commas=True)
            if i >= len(self.text):
                if closing:
                    raise HoconSyntaxError(i, "unexpected end of file inside an object",
                                           self._unclosed_hint())
                return out, i
            ch = self.text[i]
            if closing and ch == closing:
                self.open.pop()
                return out, i + 1
            key_at = i
            elements, key_end = self.key(i)
            i = self.gap(key_end)
            ch = self.text[i : i + 1]
            if ch == "{":
                value_at = i
                value, i = self.object(i + 1, (*path, *elements), "}")
            elif ch in ("=", ":"):
                i = self.gap(i + 1)
                value_at = i
                value, i = self.value(i, (*path, *elements), in_array=False)
            elif self.text.startswith("+=", i):
                raise Unsupported("'+=' (appending to a value)", i)
            else:
                raise HoconSyntaxError(key_end, f"expected '=', ':' or '{{' after the key "
                                                f"{'.'.join(elements)!r}",
                                       "a key needs a value: write key = value")
            self._assign(out, path, elements, value, key_at, value_at)
            i = self.gap(i, newlines=False)
            ch = self.text[i : i + 1]
            if ch and ch not in ",\r\n" and ch != closing:
                raise HoconSyntaxError(i, f"expected a new line or ',' after the value of "
                                          f"{'.'.join(elements)!r}, found {ch!r}")

    def _assign(self, out: dict[str, Any], path: JsonPath, elements: list[str], value: Any,
                key_at: int, value_at: int) -> None:
        """Put ``value`` at ``elements`` under ``out``: objects merge with the objects
        already there (HOCON); anything else replaces what was there."""
        node = out
        for depth, name in enumerate(elements[:-1]):
            child = node.get(name)
            if not isinstance(child, dict):
                child = node[name] = {}
                here = (*path, *elements[: depth + 1])
                self.keys[here] = self.values[here] = self.pos(key_at)
            node = child
        last = elements[-1]
        full = (*path, *elements)
        if isinstance(value, dict) and isinstance(node.get(last), dict):
            _merge(node[last], value)
        else:
            node[last] = value
            self.values[full] = self.pos(value_at)
        self.keys[full] = self.pos(key_at)

    def array(self, i: int, path: JsonPath) -> tuple[list[Any], int]:
        out: list[Any] = []
        self.open.append(i - 1)
        while True:
            i = self.gap(i, commas=True)
            if i >= len(self.text):
                raise HoconSyntaxError(i, "unexpected end of file inside a list", self._unclosed_hint())
            if self.text[i] == "]":
                self.open.pop()
                return out, i + 1
            child = (*path, len(out))
            self.values[child] = self.pos(i)
            item, i = self.value(i, child, in_array=True)
            out.append(item)
            i = self.gap(i, newlines=False)
            ch = self.text[i : i + 1]
            if ch and ch not in ",\r\n]":
                raise HoconSyntaxError(i, f"expected ',' or ']' after this item, found {ch!r}")

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
        if text.startswith("include", start) and (raw.startswith("include ") or raw == "include"):
            raise Unsupported("'include'", start)
        if not raw:
            found = text[i : i + 1]
            raise HoconSyntaxError(i, f"expected a key, found {found!r}" if found else "expected a key")
        elements = []
        for part in _KEY_SPLIT.findall(raw):
            if part.startswith('"'):
                elements.append(json.loads(part))
            elif part.strip():
                elements.append(part.strip())
        if not elements:
            raise HoconSyntaxError(start, f"{raw!r} is not a key")
        # the whitespace after an unquoted key is not part of it
        return elements, start + len(text[start:i].rstrip(" \t"))

    # -- values ---------------------------------------------------------------------

    def value(self, i: int, path: JsonPath, *, in_array: bool) -> tuple[Any, int]:
        ch = self.text[i : i + 1]
        if ch == "{":
            return self.object(i + 1, path, "}")
        if ch == "[":
            return self.array(i + 1, path)
        if self.text.startswith("${", i):
            raise Unsupported("'${...}' substitutions", i)
        return self.simple(i, in_array)

    def simple(self, i: int, in_array: bool) -> tuple[Any, int]:
        """One line's concatenation of quoted and unquoted pieces (``a = foo "bar" baz``)."""
        text = self.text
        pieces: list[tuple[str, str, bool]] = []  # (text, whitespace before it, quoted)
        space = ""
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
            if text.startswith('"""', i):
                end = text.find('"""', i + 3)
                if end < 0:
                    raise HoconSyntaxError(i, 'a """ string that never ends')
                while text.startswith('"', end + 3):  # """a"""" -> a" (extra quotes belong to it)
                    end += 1
                pieces.append((text[i + 3 : end], space, True))
                i = end + 3
            elif ch == '"':
                string, i = self.quoted(i)
                pieces.append((string, space, True))
            elif text.startswith("${", i):
                raise Unsupported("'${...}' substitutions", i)
            elif ch in "{[":
                raise Unsupported("concatenating objects or lists", i)
            else:
                m = _UNQUOTED.match(text, i)
                if not m:
                    raise HoconSyntaxError(i, f"{ch!r} cannot start a value here",
                                           "quote the value if it holds this character")
                pieces.append((_unescape(m.group(0)), space, False))
                i = m.end()
            space = ""
        if not pieces:
            if in_array:
                raise HoconSyntaxError(i, "expected a value")
            return "", i  # `key =` with nothing after it: the empty string, as pyhocon reads it
        if len(pieces) == 1:
            piece, _, quoted = pieces[0]
            return (piece if quoted else _typed(piece)), i
        return "".join(before + piece for piece, before, _ in pieces).lstrip(" \t"), i

    def quoted(self, i: int) -> tuple[str, int]:
        """The string quoted at ``i`` (on one line; a backslash escapes the next character,
        a newline too) and the offset after it."""
        text = self.text
        j = i + 1
        while True:
            if j >= len(text) or text[j] in "\r\n":
                raise HoconSyntaxError(i, "a quoted string that does not end on its line",
                                       'close it with "; a string over several lines needs """')
            if text[j] == '"':
                return _unescape(text[i + 1 : j]), j + 1
            j += 2 if text[j] == "\\" else 1


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


def _merge(into: dict[str, Any], other: dict[str, Any]) -> None:
    for key, value in other.items():
        if isinstance(value, dict) and isinstance(into.get(key), dict):
            _merge(into[key], value)
        else:
            into[key] = value
