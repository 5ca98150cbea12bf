"""The JSON Schemas of job files, as files: the four schemas (``meta``, ``client``,
``server``, ``component``) in ``flconfig/schemas/``, the single source of truth, loaded,
bundled for editors that cannot follow a ``$ref`` between files, and written out
(``flconfig schema``)."""

from __future__ import annotations

import json
from collections.abc import Iterable
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any

SCHEMA_KINDS = ("meta", "client", "server", "component")


def check_kind(kind: str) -> None:
    """ValueError unless ``kind`` is one of :data:`SCHEMA_KINDS`."""
    if kind not in SCHEMA_KINDS:
        raise ValueError(f"unknown schema kind {kind!r}; choose one of: {', '.join(SCHEMA_KINDS)}")


def schema_filename(kind: str) -> str:
    """The file name of the schema for ``kind``, e.g. ``client.schema.json``."""
    check_kind(kind)
    return f"{kind}.schema.json"


@cache
def schema_text(kind: str) -> str:
    """The exact text of the packaged schema for ``kind``."""
    ref = resources.files("flconfig").joinpath("schemas").joinpath(schema_filename(kind))
    return ref.read_text(encoding="utf-8")


@cache
def load_schema(kind: str) -> dict[str, Any]:
    """The schema for ``kind`` (meta, client, server or component) as a dict.

    The dict is shared between callers: do not change it.
    """
    schema: dict[str, Any] = json.loads(schema_text(kind))
    return schema


def write_schemas(
    directory: str | Path, kinds: Iterable[str] = SCHEMA_KINDS, *, bundled: bool = False
) -> list[Path]:
    """Write the schemas of ``kinds`` into ``directory`` (created if needed); return the files.

    With ``bundled`` each file is the self-contained form of :func:`bundle_schema`.
    """
    out = Path(directory)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    for kind in kinds:
        target = out / schema_filename(kind)
        text = bundle_text(kind) if bundled else schema_text(kind)
        target.write_bytes(text.encode("utf-8"))
        written.append(target)
    return written


def bundle_text(kind: str) -> str:
    """:func:`bundle_schema` as JSON text, formatted like the packaged files."""
    return json.dumps(bundle_schema(kind), indent=2, ensure_ascii=False) + "\n"


def bundle_schema(kind: str) -> dict[str, Any]:
    """The schema for ``kind`` with the schemas it refers to copied into its ``definitions``.

    The result refers to nothing outside itself, for editors that cannot follow a
    ``$ref`` from one local file to another. It has no ``$id``.
    """
    own = schema_filename(kind)
    bundle: dict[str, Any] = _local_refs(load_schema(kind), own, own)
    bundle.pop("$id", None)
    definitions = bundle.setdefault("definitions", {})
    pending = sorted(_external_files(load_schema(kind), own))
    while pending:
        file = pending.pop()
        name = file.removesuffix(".schema.json")
        if name in definitions:
            continue
        embedded = _local_refs(load_schema(name), file, own)
        for key in ("$schema", "$id"):
            embedded.pop(key, None)
        definitions[name] = embedded
        pending += sorted(_external_files(load_schema(name), file) - {own})
    return bundle


def _external_files(node: Any, own: str) -> set[str]:
    """The schema files ``node`` refers to, other than ``own``."""
    if isinstance(node, dict):
        files = {node["$ref"].partition("#")[0]} if isinstance(node.get("$ref"), str) else set()
        for value in node.values():
            files |= _external_files(value, own)
        return files - {"", own}
    if isinstance(node, list):
        return set().union(*(_external_files(v, own) for v in node)) if node else set()
    return set()


def _local_refs(node: Any, file: str, root: str) -> Any:
    """A copy of ``node`` (from ``file``) whose refs point into the bundle rooted at ``root``."""
    if isinstance(node, dict):
        out = {}
        for key, value in node.items():
            if key == "$ref" and isinstance(value, str):
                target, _, fragment = value.partition("#")
                target = target or file
                prefix = "#" if target == root else f"#/definitions/{target.removesuffix('.schema.json')}"
                out[key] = prefix + fragment
            else:
                out[key] = _local_refs(value, file, root)
        return out
    if isinstance(node, list):
        return [_local_refs(v, file, root) for v in node]
    return node
