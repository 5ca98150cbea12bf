"""Config files from one format to another (``flconfig convert``): JSON, YAML, HOCON.

The data is written as parsed, keys in the order they are written. Comments go along where
the target format has them (YAML and HOCON, not JSON): each comment on a line of its own
stays before the key or list item that follows it, a comment at the end of a line stays at
the end of that key's line. Comments are read from the source text beside the parser's
positions of keys and list items, so nothing about the data depends on them.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import yaml

from ..errors import ConfigError, JsonPath, Position
from .documents import HOCON_SUFFIXES, YAML_SUFFIXES, Document

#: The formats, and what files in them end with.
FORMATS = {"json": ".json", "yaml": ".yaml", "hocon": ".conf"}

_SIMPLE_KEY = re.compile(r"^[A-Za-z_][A-Za-z0-9_-]*\Z")


@dataclass
class Comments:
    """The comments of a document, attached to the paths of keys and list items."""

    #: Comment lines (without the marker) before the entry at a path.
    before: dict[JsonPath, list[str]] = field(default_factory=dict)
    #: The comment at the end of the line of the entry at a path.
    after: dict[JsonPath, str] = field(default_factory=dict)
    #: Comments after the last entry.
    tail: list[str] = field(default_factory=list)

    def __len__(self) -> int:
        return sum(len(v) for v in self.before.values()) + len(self.after) + len(self.tail)


def source_format(file: str) -> str:
    """The format of ``file`` by its suffix, as the parsers choose (``x.conf.default`` is HOCON)."""
    name = file.lower().removesuffix(".default")
    if name.endswith(tuple(YAML_SUFFIXES)):
        return "yaml"
    if name.endswith(tuple(HOCON_SUFFIXES)):
        return "hocon"
    return "json"


def read_comments(text: str, doc: Document, fmt: str) -> Comments:
    """The comments in ``text`` (the source of ``doc``, in ``fmt``), attached to the entries
    they belong to."""
    found = Comments()
    if fmt == "json":
        return found
    # A key and the list item it opens (``- key: v``) start at one place: the item first.
    anchors = sorted(((pos.line, pos.column, path) for path, pos in _anchors(doc)),
                     key=lambda a: (a[0], a[1], len(a[2])))
    lines = text.splitlines()
    for line_no, column, comment in _comment_spans(text, fmt):
        on_line = [path for line, _, path in anchors if line == line_no]
        # A comment with nothing before it but YAML's list dashes ("- # note", its item below),
        # or at the end of a line where no entry starts ("}  # end"), comes before the next entry.
        lead = lines[line_no - 1][: column - 1].replace("-" if fmt == "yaml" else "", "").strip()
        if not lead or not on_line:
            following = next((path for line, _, path in anchors if line > line_no), None)
            if following is None:
                found.tail.append(comment)
            else:
                found.before.setdefault(following, []).append(comment)
        else:  # the end of the line of the last key on it (else of its last list item)
            keys = [path for path in on_line if isinstance(path[-1], str)]
            found.after[(keys or on_line)[-1]] = comment
    return found


def _anchors(doc: Document) -> Iterator[tuple[JsonPath, Position]]:
    """Every key (its position) and every list item (its value's position)."""
    yield from ((path, pos) for path, pos in doc.keys.items() if path)
    yield from ((path, pos) for path, pos in doc.values.items() if path and isinstance(path[-1], int))


def _comment_spans(text: str, fmt: str) -> Iterator[tuple[int, int, str]]:
    """(line, column, text) of each comment, strings and YAML block scalars skipped."""
    block_indent: int | None = None
    triple = False
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.lstrip()
        indent = len(line) - len(stripped)
        if block_indent is not None:  # inside a YAML block scalar (| or >)
            if not stripped or indent > block_indent:
                continue
            block_indent = None
        quote: str | None = None
        i = 0
        while i < len(line):
            ch = line[i]
            if triple:
                if line.startswith('"""', i):
                    triple, i = False, i + 3
                    continue
                i += 1
                continue
            if quote is not None:
                if ch == "\\" and quote == '"':
                    i += 2
                    continue
                if ch == quote:
                    if quote == "'" and line.startswith("''", i):
                        i += 2
                        continue
                    quote = None
                i += 1
                continue
            if fmt == "hocon" and line.startswith('"""', i):
                triple, i = True, i + 3
                continue
            if ch == '"' or (ch == "'" and fmt == "yaml" and (i == 0 or line[i - 1] in " \t:[{,-")):
                quote = ch
            elif ch == "#" and (fmt == "hocon" or i == 0 or line[i - 1] in " \t"):
                yield number, i + 1, line[i + 1:].strip()
                break
            elif fmt == "hocon" and line.startswith("//", i):
                yield number, i + 1, line[i + 2:].strip()
                break
            i += 1
        if fmt == "yaml" and re.search(r":\s*[|>][0-9+-]*\s*(#.*)?$", line) and not triple:
            block_indent = indent


def convert(doc: Document, text: str, target: str) -> tuple[str, int]:
    """``doc`` (parsed from ``text``) written in ``target``; and how many comments could
    not go along (JSON has none). ConfigError where a value was not written as it is
    (a HOCON substitution or include): converting would replace it by what it gave here."""
    if target not in FORMATS:
        raise ValueError(f"unknown format {target!r}: use {', '.join(FORMATS)}")
    source = source_format(doc.file)
    computed = _computed(text) if source == "hocon" else None
    if doc.sources or computed is not None:
        path, expression = next(iter(doc.sources.items())) if doc.sources else ((), "")
        where = doc.position(path) if doc.sources else Position(doc.file, computed or 1, 1)
        raise ConfigError.single(
            "convert", f"a value comes from {expression or 'a substitution or an include'}, which "
                       "converting would replace by what it gives on this machine (or drop)",
            where, path, hint="write the value itself, or convert a file without substitutions or includes")
    _check_values(doc, doc.data, (), target)
    if target == "hocon" and not isinstance(doc.data, dict):
        raise ConfigError.single("convert", "HOCON holds an object at the top, and this file holds "
                                 f"{type(doc.data).__name__ if doc.data is not None else 'null'}",
                                 Position(doc.file, 1, 1))
    comments = read_comments(text, doc, source_format(doc.file))
    if target == "json":
        return json.dumps(doc.data, indent=2, ensure_ascii=False) + "\n", len(comments)
    writer = _Yaml(comments) if target == "yaml" else _Hocon(comments)
    return writer.document(doc.data), 0


#: A HOCON substitution (``${X}``, ``${?X}``) or include, outside quoted strings.
_COMPUTED = re.compile(r'\$\{|^\s*include\b', re.M)
_QUOTED = re.compile(r'"""[\s\S]*?"""|"(?:[^"\\\n]|\\.)*"')


def _computed(text: str) -> int | None:
    """The line of the first substitution or include of a HOCON text, or None."""
    bare = _QUOTED.sub(lambda m: re.sub(r"[^\n]", " ", m.group(0)), text)
    found = _COMPUTED.search(bare)
    return bare.count("\n", 0, found.start()) + 1 if found else None


def _check_values(doc: Document, node: Any, path: JsonPath, target: str) -> None:
    """ConfigError at the first value ``target`` cannot hold as it is: one that is no JSON
    value (bytes, a set, a date), a number that is not finite, or (HOCON) a control character."""
    if isinstance(node, dict):
        for key, value in node.items():
            _check_values(doc, value, (*path, key), target)
        return
    if isinstance(node, list):
        for i, value in enumerate(node):
            _check_values(doc, value, (*path, i), target)
        return
    what = None
    if node is not None and not isinstance(node, (str, int, float, bool)):
        what = f"a {type(node).__name__} value, which is no JSON value"
    elif isinstance(node, float) and not math.isfinite(node):
        what = f"{node}, which JSON and flconfig's readers do not take as a number"
    elif target == "hocon" and isinstance(node, str) and any(ord(c) < 32 and c not in "\t\n" for c in node):
        what = "a control character, which a HOCON string cannot hold as it is"
    if what is not None:
        raise ConfigError.single("convert", f"the value at {'.'.join(map(str, path)) or 'the top'} is {what}",
                                 doc.position(path), path, hint="write it as a string or a finite number")


def _float(value: float, hocon: bool) -> str:
    """A float both readers take back as the same number: a dot before any exponent (YAML 1.1
    reads ``1e-05`` as text), and for HOCON no ``+`` in the exponent."""
    text = repr(value)
    mantissa, e, exponent = text.partition("e")
    if e and "." not in mantissa:
        mantissa += ".0"
    if e and hocon:
        exponent = exponent.lstrip("+")
    return f"{mantissa}{e}{exponent}"


class _Writer:
    def __init__(self, comments: Comments) -> None:
        self.comments = comments
        self.lines: list[str] = []

    def before(self, path: JsonPath, indent: str) -> None:
        self.lines += [f"{indent}# {c}".rstrip() for c in self.comments.before.get(path, [])]

    def after(self, path: JsonPath) -> str:
        comment = self.comments.after.get(path)
        return f"  # {comment}" if comment else ""

    def finish(self) -> str:
        self.lines += [f"# {c}".rstrip() for c in self.comments.tail]
        return "\n".join(self.lines) + "\n"


class _Yaml(_Writer):
    def document(self, data: Any) -> str:
        if isinstance(data, (dict, list)) and data:
            self.block(data, (), "")
        else:
            self.lines.append(_yaml_scalar(data))
        return self.finish()

    def block(self, node: dict[str, Any] | list[Any], path: JsonPath, indent: str) -> None:
        items = node.items() if isinstance(node, dict) else enumerate(node)
        for key, value in items:
            here = (*path, key)
            self.before(here, indent)
            if isinstance(node, dict):
                name = _yaml_key(str(key))
                if len(name) > _YAML_KEY_MAX:  # "? key" then ": value": no limit on its length
                    self.lines.append(f"{indent}? {name}")
                    name = ""
                lead = f"{indent}{name}:"
            else:
                lead = f"{indent}-"
            if isinstance(value, (dict, list)) and value:
                if isinstance(node, list) and isinstance(value, dict):
                    # "- key: v" then the other keys under it
                    start = len(self.lines)
                    self.block(value, here, indent + "  ")
                    first = next(i for i in range(start, len(self.lines))
                                 if not self.lines[i].lstrip().startswith("#"))
                    self.lines[first] = f"{lead} {self.lines[first].lstrip()}"
                    continue
                self.lines.append(lead + self.after(here))
                self.block(value, here, indent + "  ")
            else:
                self.lines.append(f"{lead} {_yaml_scalar(value)}{self.after(here)}")


def _yaml_key(key: str) -> str:
    return key if _SIMPLE_KEY.match(key) and key.lower() not in _YAML_WORDS else json.dumps(key)


#: The longest key YAML reads before a ':' on the same line (1,024 characters); longer ones are
#: written as explicit keys.
_YAML_KEY_MAX = 1000
#: Characters YAML 1.1 (PyYAML) reads as line breaks: escaped in a double-quoted value.
_YAML_BREAKS = {"\x85": "\\N", "\u2028": "\\L", "\u2029": "\\P"}


#: Plain words YAML 1.1 reads as booleans or null: quoted when they are keys.
_YAML_WORDS = frozenset({"y", "n", "yes", "no", "on", "off", "true", "false", "null"})


def _empty_or_float(value: Any, hocon: bool) -> str | None:
    """An empty object or list, or a float, as both targets write it; None for other values."""
    if isinstance(value, (dict, list)):
        return "{}" if isinstance(value, dict) else "[]"
    return _float(value, hocon) if isinstance(value, float) else None


def _yaml_scalar(value: Any) -> str:
    written = _empty_or_float(value, hocon=False)
    if written is not None:
        return written
    if value is None or isinstance(value, (bool, int)):
        return json.dumps(value)
    text = yaml.safe_dump(value, default_flow_style=True, allow_unicode=True, width=1 << 30).rstrip("\n")
    text = text.removesuffix("\n...").rstrip("\n")
    if "\n" not in text and not any(c in value for c in _YAML_BREAKS):
        return text
    # A value over several lines: one double-quoted line (JSON's escapes are YAML's, and YAML's
    # own for the breaks JSON leaves as they are).
    quoted = json.dumps(value, ensure_ascii=False)
    for char, escape in _YAML_BREAKS.items():
        quoted = quoted.replace(char, escape)
    return quoted


class _Hocon(_Writer):
    def document(self, data: dict[str, Any]) -> str:
        self.entries(data, (), "")
        return self.finish()

    def entries(self, node: dict[str, Any], path: JsonPath, indent: str) -> None:
        for key, value in node.items():
            here = (*path, key)
            self.before(here, indent)
            name = key if _SIMPLE_KEY.match(key) else json.dumps(key, ensure_ascii=False)
            if isinstance(value, dict) and value:
                self.lines.append(f"{indent}{name} {{{self.after(here)}")
                self.entries(value, here, indent + "  ")
                self.lines.append(f"{indent}}}")
            else:
                self.item(f"{indent}{name} = ", value, here, indent)

    def item(self, lead: str, value: Any, path: JsonPath, indent: str) -> None:
        if isinstance(value, list) and value:
            self.lines.append(f"{lead}[{self.after(path)}")
            for i, element in enumerate(value):
                self.before((*path, i), indent + "  ")
                self.item(indent + "  ", element, (*path, i), indent + "  ")
            self.lines.append(f"{indent}]")
        elif isinstance(value, dict) and value:
            self.lines.append(f"{lead}{{{self.after(path)}")
            self.entries(value, path, indent + "  ")
            self.lines.append(f"{indent}}}")
        else:
            self.lines.append(f"{lead}{self.value(value, path, indent)}{self.after(path)}")

    def value(self, value: Any, path: JsonPath, indent: str) -> str:
        written = _empty_or_float(value, hocon=True)
        return written if written is not None else json.dumps(value, ensure_ascii=False)
