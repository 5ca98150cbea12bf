"""Type hints, as source text, turned into JSON Schema fragments for component arguments.

``annotation_schema("list[str] | None")`` gives
``{"anyOf": [{"type": "array", "items": {"type": "string"}}, {"type": "null"}]}``.
Unknown names (classes, protocols) give ``{}``: no constraint rather than a guess.
"""

from __future__ import annotations

import ast
from collections.abc import Mapping, Sequence
from typing import Any

__all__ = ["annotation_schema", "union"]


_SIMPLE: Mapping[str, dict[str, Any]] = {
    "int": {"type": "integer"},
    "float": {"type": "number"},
    "complex": {},
    "str": {"type": "string"},
    "bool": {"type": "boolean"},
    "None": {"type": "null"},
    "NoneType": {"type": "null"},
    "Path": {"type": "string"},
    "PurePath": {"type": "string"},
    "PathLike": {"type": "string"},
}
_ARRAYS = frozenset(
    {
        "list",
        "List",
        "Sequence",
        "MutableSequence",
        "tuple",
        "Tuple",
        "set",
        "Set",
        "frozenset",
        "FrozenSet",
        "Iterable",
        "Collection",
        "AbstractSet",
        "MutableSet",
        "deque",
    }
)
_OBJECTS = frozenset(
    {"dict", "Dict", "Mapping", "MutableMapping", "OrderedDict", "defaultdict", "TypedDict"}
)
_UNCONSTRAINED = frozenset({"Any", "object", "Callable", "Type", "type", "TypeVar"})


def annotation_schema(annotation: str | None) -> dict[str, Any]:
    """The JSON schema a type hint's source text allows; ``{}`` for anything.

    ``int``->integer, ``float``->number, ``str``->string, ``bool``->boolean,
    lists/sequences->array (with ``items``), dicts/mappings->object,
    ``Optional``/``X | None``->also null, ``Union``->anyOf,
    ``Literal``->enum; ``Any``, class types and what cannot be read allow
    anything (a class-typed argument may be a nested component).
    """
    if not annotation:
        return {}
    try:
        node = ast.parse(annotation, mode="eval").body
    except (SyntaxError, ValueError, RecursionError):
        return {}
    try:
        return _schema_of(node)
    except RecursionError:
        return {}


def _name_of(node: ast.expr) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        return node.attr
    if isinstance(node, ast.Constant) and node.value is None:
        return "None"
    return None


def _schema_of(node: ast.expr) -> dict[str, Any]:
    if isinstance(node, ast.Constant) and isinstance(node.value, str):
        return annotation_schema(node.value)
    if isinstance(node, ast.BinOp) and isinstance(node.op, ast.BitOr):
        return union([_schema_of(node.left), _schema_of(node.right)])
    if isinstance(node, ast.Subscript):
        outer = _name_of(node.value)
        inner = node.slice
        members = list(inner.elts) if isinstance(inner, ast.Tuple) else [inner]
        if outer == "Optional":
            return union([_schema_of(members[0]), {"type": "null"}])
        if outer == "Union":
            return union([_schema_of(m) for m in members])
        if outer == "Literal":
            values = []
            for m in members:
                try:
                    values.append(ast.literal_eval(m))
                except (ValueError, SyntaxError):
                    return {}
            return {"enum": values}
        if outer in ("Annotated", "Final", "ClassVar"):
            return _schema_of(members[0])
        if outer in _ARRAYS:
            schema: dict[str, Any] = {"type": "array"}
            if outer in ("tuple", "Tuple"):
                if (
                    len(members) == 2
                    and isinstance(members[1], ast.Constant)
                    and members[1].value is ...
                ):
                    items = _schema_of(members[0])
                else:
                    schemas = [_schema_of(m) for m in members]
                    schema["minItems"] = schema["maxItems"] = len(schemas)
                    items = union(schemas)
            else:
                items = _schema_of(members[0])
            if items:
                schema["items"] = items
            return schema
        if outer in _OBJECTS:
            schema = {"type": "object"}
            if len(members) == 2:
                values_schema = _schema_of(members[1])
                if values_schema:
                    schema["additionalProperties"] = values_schema
            return schema
        return {}
    name = _name_of(node)
    if name is None:
        return {}
    if name in _SIMPLE:
        return dict(_SIMPLE[name])
    if name in _ARRAYS:
        return {"type": "array"}
    if name in _OBJECTS:
        return {"type": "object"}
    return {}  # Any, a class, or something not known: anything goes


def union(schemas: Sequence[dict[str, Any]]) -> dict[str, Any]:
    if any(not s for s in schemas):
        return {}
    flat: list[dict[str, Any]] = []
    for s in schemas:
        flat.extend(s["anyOf"] if set(s) == {"anyOf"} else [s])
    types: list[str] = []
    others: list[dict[str, Any]] = []
    for s in flat:
        if set(s) == {"type"}:
            for t in s["type"] if isinstance(s["type"], list) else [s["type"]]:
                if t not in types:
                    types.append(t)
        elif s not in others:
            others.append(s)
    if "number" in types and "integer" in types:
        types.remove("integer")
    if not others:
        return {"type": types[0] if len(types) == 1 else types}
    if types:
        others.insert(0, {"type": types[0] if len(types) == 1 else types})
    return others[0] if len(others) == 1 else {"anyOf": others}
