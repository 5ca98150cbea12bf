"""The YAML reader: one YAML document, read safely, into a
:class:`~flconfig.config.documents.Document` with the line and column of every key and
value; duplicate keys, merges and aliases that expand past the limit, and YAML 1.1
spellings (``yes``, ``1e3``) that FLARE's reader would take differently are reported."""

from __future__ import annotations

import math
import re
from collections.abc import Callable
from typing import Any

from ...errors import ConfigError, JsonPath, Position, Problem
from ..documents import Document, Lines
from ..limits import MAX_VALUES, Budget, TooLarge

#: Most values one YAML file may expand to (aliases repeat what they name): the limit of
#: every format (:data:`flconfig.config.limits.MAX_VALUES`).
MAX_YAML_VALUES = MAX_VALUES


_YAML_CONTEXTS = (("flow sequence", "the [...] list"), ("flow mapping", "the {...} mapping"),
                  ("quoted scalar", "the quoted string"), ("block mapping", "the mapping"),
                  ("block", "the list"))
_YAML11_FLOAT_AS_STR = re.compile(r"^[-+]?(?:\d+\.?|\d*\.\d+)[eE][-+]?\d+$")
_YAML11_BOOL_WORDS = {"yes", "no", "on", "off", "y", "n"}


def parse_yaml(text: str, file: str) -> Document:
    """Parse one YAML document safely; duplicate keys and YAML 1.1 traps are reported."""
    import yaml

    lines = Lines(text)
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

