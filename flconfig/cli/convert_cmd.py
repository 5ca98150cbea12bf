"""``flconfig convert FILE --to json|yaml|hocon``: a config file in another format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config.convert import FORMATS, convert, source_format
from ..config.parsers import parse_text
from ..errors import ConfigError
from . import path_problem

EXAMPLES = """examples:
  flconfig convert app/config/config_fed_client.json --to yaml
  flconfig convert meta.conf --to json -o meta.json
  flconfig convert config_fed_server.yaml --to hocon -o config_fed_server.conf
"""


def register(sub: Any) -> None:
    """Add the ``convert`` subcommand."""
    parser = sub.add_parser(
        "convert", help="write a config file in another format (json, yaml, hocon)",
        description="Write a config or meta file in another format, keys in their order, "
                    "comments kept where the target has them (YAML and HOCON; JSON has none, "
                    "and the command says how many it left out). A file that does not parse "
                    "is reported as validate reports it.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("file", metavar="FILE", help="a .json, .yaml/.yml or .conf file")
    parser.add_argument("--to", required=True, choices=tuple(FORMATS), help="the format to write")
    parser.add_argument("-o", "--output", metavar="OUT",
                        help="write here (a new file; default: print to standard output)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Convert; 1 when the file does not parse, 2 for a usage error."""
    source = Path(ns.file)
    problem = path_problem(source) or _not_a_file(source)
    if problem is None and ns.output is not None and Path(ns.output).exists():
        problem = f"{ns.output} exists: give a new file (convert never overwrites one)"
    if problem is not None:
        print(f"flconfig convert: {problem}", file=sys.stderr)
        return 2
    try:
        text = source.read_bytes().decode("utf-8-sig")
    except UnicodeDecodeError:
        print(f"flconfig convert: {source}: not UTF-8 text", file=sys.stderr)
        return 1
    try:
        doc = parse_text(text, str(source), environ={})
        problems = doc.problems if any(p.is_error for p in doc.problems) else []
        out, dropped = ("", 0) if problems else convert(doc, text, ns.to)
    except ConfigError as exc:
        problems = exc.problems
    for found in problems or doc.problems:  # file:line:col: ..., as validate says it (warnings too)
        print(found, file=sys.stderr)
    if problems:
        return 1
    if ns.output is None:
        sys.stdout.write(out)
    else:
        try:
            with open(ns.output, "x", encoding="utf-8") as written:  # never over another file
                written.write(out)
        except FileExistsError:
            print(f"flconfig convert: {ns.output} exists: give a new file (convert never overwrites one)",
                  file=sys.stderr)
            return 2
        print(f"flconfig: wrote {ns.output} ({source_format(str(source))} to {ns.to})")
    if dropped:
        print(f"flconfig convert: note: {dropped} comment(s) left out: JSON has no comments", file=sys.stderr)
    return 0


def _not_a_file(path: Path) -> str | None:
    """Why ``path`` is no config file to read, or None."""
    if path.is_file():
        return None
    if path.is_dir():
        return f"{path} is a folder: give a config file (.json, .yaml, .conf)"
    return f"{path}: no such file" if not path.exists() else f"{path} is not a regular file"
