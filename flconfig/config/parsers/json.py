"""The JSON reader: JSON text into a :class:`~flconfig.config.documents.Document` with the
line and column of every key and value; duplicate keys, ``NaN``, Python's ``True`` and
numbers too large to hold are errors at their place."""

from __future__ import annotations

import json
import math
import re
from json.decoder import scanstring  # type: ignore[attr-defined]
from typing import Any, NoReturn

from ...errors import ConfigError, JsonPath, Position
from ..documents import Document, Lines


class _SyntaxFailure(Exception):
    def __init__(self, offset: int, message: str, hint: str | None = None):
        self.offset = offset
        self.message = message
        self.hint = hint


_WS = re.compile(r"[ \t\n\r]*")
#: Longest integer a config may spell (Python refuses to convert beyond 4300 digits).
_MAX_INT_DIGITS = 1000
_NUMBER = re.compile(r"-?(?:0|[1-9]\d*)(\.\d+)?([eE][-+]?\d+)?")
_LITERALS = {"true": True, "false": False, "null": None}


class _JsonParser:
    """A small JSON parser that records positions and rejects duplicate keys."""

    def __init__(self, text: str, file: str):
        self.text = text
        self.file = file
        self.lines = Lines(text)
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

