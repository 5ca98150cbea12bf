"""What a config may name, described for people and tools (``flconfig components``): each
component's names, kind, origin, one-line doc and arguments, from the same argument schemas
validation checks against."""

from __future__ import annotations

import difflib
import json
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from .aliases import FLARE_ALIASES
from .registry import MISSING, ComponentInfo, Registry


@dataclass(frozen=True)
class Argument:
    """One constructor argument as a config writes it."""

    name: str
    #: The type hint as written ("list[str] | None"), or "" where the class gives none.
    type: str
    required: bool
    #: The default, as JSON would hold it; None also where there is none (see ``required``).
    default: Any
    #: The kind of component a string value names by id ("any": any component), or None.
    references: str | None
    #: The argument's description, from the class's docstring ("Args:" section).
    doc: str


@dataclass(frozen=True)
class Entry:
    """One component a config may name."""

    #: The short name (``"name": ...`` in a config).
    name: str
    #: Its dotted path (``"path": ...``).
    path: str
    #: FLARE's paths that build it (its aliases), sorted.
    flare_paths: tuple[str, ...]
    kind: str
    #: "builtin", "plugin" or "custom" (the job's own ``custom/``).
    origin: str
    doc: str
    arguments: tuple[Argument, ...]
    #: It takes arguments beyond those listed (``**kwargs``).
    more_arguments: bool

    def as_json(self) -> dict[str, Any]:
        """The entry as ``--format json`` prints it."""
        return {"name": self.name, "path": self.path, "flare_paths": list(self.flare_paths),
                "kind": self.kind, "origin": self.origin, "doc": self.doc,
                "arguments": [vars(a) for a in self.arguments], "more_arguments": self.more_arguments}


#: reStructuredText roles (``:class:`~a.b.C```) and literals (````x````) in docstrings.
_ROLE = re.compile(r":[a-z]+:`~?([^`]+)`")
_LITERAL = re.compile(r"``([^`]+)``")


def plain(text: str) -> str:
    """A docstring's text without its reStructuredText markup: ``:class:`~a.b.C``` -> C,
    ````x```` -> x."""
    text = _ROLE.sub(lambda m: m.group(1).rpartition(".")[2] if m.group(0).count("~") else m.group(1), text)
    return _LITERAL.sub(r"\1", text)


def _aliases() -> dict[str, list[str]]:
    by_target: dict[str, list[str]] = {}
    for flare_path, target in FLARE_ALIASES.items():
        by_target.setdefault(target, []).append(flare_path)
    return by_target


def _as_json(value: Any) -> Any:
    """``value`` where JSON can hold it, else its Python spelling (a set, bytes ...)."""
    try:
        json.dumps(value, allow_nan=False)
    except (TypeError, ValueError):
        return repr(value)
    return value


def entry(info: ComponentInfo, aliases: dict[str, list[str]] | None = None) -> Entry:
    """The catalog's entry for ``info``."""
    found = _aliases() if aliases is None else aliases
    properties = info.args_schema.get("properties", {})
    arguments = []
    for arg in info.args.values():
        schema = properties.get(arg.name, {})
        default = None if arg.default is MISSING else _as_json(arg.default)
        doc = str(schema.get("description", "")) if isinstance(schema, dict) else ""
        arguments.append(Argument(arg.name, arg.annotation or "", arg.required, default, arg.reference,
                                  plain(doc)))
    return Entry(info.name, info.path, tuple(sorted(found.get(info.path, []))), info.kind, info.origin,
                 plain(info.doc), tuple(arguments), info.var_kwargs)


def catalog(registry: Registry) -> list[Entry]:
    """Every built-in and plugin component ``registry`` knows, then the job's own
    (``custom/``) where it has any: sorted by kind, then name."""
    aliases = _aliases()
    infos: Iterable[ComponentInfo] = [*registry.components(), *registry.custom_components()]
    entries = {info.path: entry(info, aliases) for info in infos}
    return sorted(entries.values(), key=lambda e: (e.kind, e.name.lower(), e.path))


def find(entries: list[Entry], query: str) -> list[Entry]:
    """The entries ``query`` names: a short name (any case), a path or a FLARE path."""
    exact = [e for e in entries if query in (e.path, *e.flare_paths)]
    if exact:
        return exact
    return [e for e in entries if e.name.lower() == query.lower()]


def a_kind(kind: str) -> str:
    """A kind of component as a sentence names one: "any component", "an aggregator"."""
    if kind == "any":
        return "any component"
    return f"{'an' if kind[0] in 'aeiou' else 'a'} {kind.replace('_', ' ')}"


def close_names(entries: list[Entry], query: str) -> list[str]:
    """Names and paths of ``entries`` close to ``query``, for "did you mean"."""
    names = {e.name for e in entries} | {e.path for e in entries}
    return difflib.get_close_matches(query, sorted(names), n=3, cutoff=0.6)  # up to three, unlike closest
