"""Positioned documents: config files' plain data that remembers where every value came from.

A :class:`Document` holds the parsed value (dicts, lists, str, int, float,
bool, None — the same for JSON, YAML and HOCON) plus a map from each JSON path to
the line and column of the value and of its key, so that any later check can
say ``file:line:column``, and the expression that produced each value a substitution
or an include gave, so that messages show that expression instead of the value.
Every format has one limit on how far a document may expand (:mod:`.limits`).

The readers that make documents, one per format, are in :mod:`flconfig.config.parsers`,
with the one dispatch by a file's suffix (:func:`~flconfig.config.parsers.load_document`).
"""

from __future__ import annotations

import bisect
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from ..errors import JsonPath, Position, Problem

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


class Lines:
    """Where each line of a text starts: an offset into it as (line, column), from 1."""

    def __init__(self, text: str):
        self.starts = [0] + [m.end() for m in re.finditer("\n", text)]

    def at(self, offset: int) -> tuple[int, int]:
        """The line and column of ``offset``."""
        line = bisect.bisect_right(self.starts, offset)
        return line, offset - self.starts[line - 1] + 1
