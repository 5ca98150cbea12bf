"""``flconfig schema``: print or write the JSON Schemas of job files, for editors and CI."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from ..schemas import (
    SCHEMA_KINDS,
    bundle_text,
    load_schema,
    schema_filename,
    schema_text,
    write_schemas,
)


def register(subparsers: Any) -> None:
    """Add the ``schema`` subcommand."""
    parser = subparsers.add_parser(
        "schema",
        help="print or write the JSON Schemas of meta, client, server and component",
        description=(
            "Print the JSON Schema of one kind of job file, list the schemas, or write all "
            "of them into a folder (e.g. for editor settings)."
        ),
    )
    parser.add_argument("kind", nargs="?", metavar="KIND",
                        help=f"which schema: {', '.join(SCHEMA_KINDS)}")
    parser.add_argument("--list", action="store_true", help="list the schemas and their ids")
    parser.add_argument("--write", metavar="DIR",
                        help="write the schema files into DIR (all of them, or only KIND)")
    parser.add_argument("--bundle", action="store_true",
                        help="self-contained schemas, with no references between files "
                             "(for editors that cannot follow them)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Print, list or write schemas; 0 on success, 2 on a usage or file-system error."""
    kind = ns.kind
    if kind is not None:
        kind = _kind_of(kind)
        if kind is None:
            print(f"flconfig schema: unknown schema {ns.kind!r}; choose one of: "
                  f"{', '.join(SCHEMA_KINDS)}", file=sys.stderr)
            return 2
    if ns.write:
        try:
            written = write_schemas(ns.write, [kind] if kind else SCHEMA_KINDS, bundled=ns.bundle)
        except OSError as exc:
            print(f"flconfig schema: cannot write into {ns.write}: {exc.strerror or exc}",
                  file=sys.stderr)
            return 2
        for path in written:
            print(f"wrote {path}")
        return 0
    if ns.list or kind is None:
        for name in SCHEMA_KINDS:
            print(f"{name:<10} {schema_filename(name):<22} {load_schema(name)['$id']}")
        return 0
    sys.stdout.write(bundle_text(kind) if ns.bundle else schema_text(kind))
    return 0


def _kind_of(text: str) -> str | None:
    """``client`` for ``client``, ``client.schema.json`` or ``CLIENT``; None if unknown."""
    name = text.strip().lower().removesuffix(".json").removesuffix(".schema")
    return name if name in SCHEMA_KINDS else None
