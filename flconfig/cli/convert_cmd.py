"""``flconfig convert FILE --to json|yaml|hocon``: a config file in another format."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path
from typing import Any

from ..config.convert import FORMATS, convert, source_format
from ..config.parsers import parse_text
from ..errors import ConfigError
from ..files import write_atomic
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
    problem = path_problem(source) or (None if source.is_file() else f"{source}: no such file")
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
        if any(p.is_error for p in doc.problems):
            raise ConfigError([p for p in doc.problems if p.is_error])
        out, dropped = convert(doc, text, ns.to)
    except ConfigError as exc:
        for found in exc.problems:  # file:line:col: error: ..., and its hint, as validate says it
            print(found, file=sys.stderr)
        return 1
    if ns.output is None:
        sys.stdout.write(out)
    else:
        write_atomic(Path(ns.output), out.encode())
        print(f"flconfig: wrote {ns.output} ({source_format(str(source))} to {ns.to})")
    if dropped:
        print(f"flconfig convert: note: {dropped} comment(s) left out: JSON has no comments", file=sys.stderr)
    return 0
