"""The ``flconfig`` command: one module per subcommand.

Each subcommand module defines ``register(subparsers)`` (adds its parser and
``set_defaults(func=run)``) and ``run(namespace) -> int``. Only this edge
prints errors and exits; library code raises.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

SUBCOMMANDS = ("validate", "schema", "launch", "provision", "poc", "server", "admin")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="flconfig",
        description="Validate and run federated-learning jobs described by config folders.",
    )
    from .. import __version__

    parser.add_argument("--version", action="version", version=f"flconfig {__version__}")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in SUBCOMMANDS:
        try:
            module = importlib.import_module(f".{name}_cmd", __name__)
        except ModuleNotFoundError as exc:
            if exc.name != f"{__name__}.{name}_cmd":
                raise
            continue
        module.register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flconfig`` console script; returns the exit code."""
    parser = build_parser()
    ns = parser.parse_args(argv)
    if not getattr(ns, "func", None):
        parser.print_help(sys.stderr)
        return 2
    try:
        return int(ns.func(ns))
    except KeyboardInterrupt:
        print("flconfig: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
