"""The one limit on how far a config document may expand, for every format and mechanism.

YAML aliases, HOCON substitutions, includes and concatenation, and FLARE's ``{var}`` and
``{@def:k=v}`` all copy what they refer to; nested, they multiply, so that a file of a few
hundred bytes can describe 10⁹ values or a string of 2³⁰ characters. Every reader counts
what it is about to build against :class:`Budget` *before* building it (the size of a
value it copies is known once it is built), and stops at the first step that would pass
a limit, with one problem at the line that expands.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

#: Most values (objects, lists, strings, numbers ... each counts one) one document may expand to.
MAX_VALUES = 200_000
#: Most characters of text (keys and string values together) one document may expand to.
MAX_CHARS = 20_000_000
#: Deepest chain of HOCON includes (a file that includes a file that includes ...).
MAX_INCLUDE_DEPTH = 16

__all__ = ["MAX_CHARS", "MAX_INCLUDE_DEPTH", "MAX_VALUES", "Budget", "TooLarge", "size_of"]


class TooLarge(Exception):
    """A document would expand past a limit; ``what`` says which (``200,000 values``)."""

    def __init__(self, what: str) -> None:
        super().__init__(what)
        self.what = what

    def message(self, fmt: str) -> str:
        """``the HOCON expands to more than 200,000 values`` for ``fmt`` ``HOCON``."""
        return f"the {fmt} expands to more than {self.what}"


class Budget:
    """What one document has expanded to so far: values and characters, against the limits."""

    __slots__ = ("chars", "max_chars", "max_values", "values")

    def __init__(self, max_values: int = MAX_VALUES, max_chars: int = MAX_CHARS) -> None:
        self.values = 0
        self.chars = 0
        self.max_values = max_values
        self.max_chars = max_chars

    def take(self, values: int, chars: int = 0) -> None:
        """Count ``values`` values and ``chars`` characters about to be built; raises
        :class:`TooLarge` (and counts nothing) when that would pass a limit."""
        if self.values + values > self.max_values:
            raise TooLarge(f"{self.max_values:,} values")
        if self.chars + chars > self.max_chars:
            raise TooLarge(f"{self.max_chars:,} characters")
        self.values += values
        self.chars += chars


def size_of(value: Any) -> tuple[int, int]:
    """``(values, characters)`` of plain data (dicts, lists, str, numbers, bool, None)."""
    values = chars = 0
    for node, key in _nodes(value):
        values += 1
        if isinstance(key, str):
            chars += len(key)
        if isinstance(node, str):
            chars += len(node)
    return values, chars


def _nodes(value: Any) -> Iterator[tuple[Any, Any]]:
    stack: list[tuple[Any, Any]] = [(value, None)]
    while stack:
        node, key = stack.pop()
        yield node, key
        if isinstance(node, dict):
            stack.extend((child, k) for k, child in node.items())
        elif isinstance(node, list):
            stack.extend((child, None) for child in node)
