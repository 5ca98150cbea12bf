"""``flconfig provision PROJECT.yaml -o DIR [--revoke NAME]``: the project CA and startup kits."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..errors import ConfigError
from . import lacks_run_extra


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    parser = sub.add_parser(
        "provision", help="make the project CA and a startup kit (key, certificate) per participant",
        description="Make a project's certificate authority (once) and, for every participant of PROJECT "
                    "not provisioned into DIR before, a key and certificate in DIR/<name>/startup/. "
                    "Earlier kits stay valid; --revoke puts a participant on the CA's revocation list.")
    parser.add_argument("project", type=Path, metavar="PROJECT.yaml", help="the project: name and participants")
    parser.add_argument("-o", "--output", type=Path, required=True, metavar="DIR", help="where the kits go")
    parser.add_argument("--revoke", action="append", default=[], metavar="NAME",
                        help="revoke this participant's certificate (repeatable)")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:

    if lacks_run_extra("flconfig provision", ("cryptography",)):
        return 2
    from ..deploy.provision import provision

    if not ns.project.is_file():
        print(f"flconfig provision: {ns.project}: no such project file", file=sys.stderr)
        return 2
    try:
        result = provision(ns.project, ns.output, ns.revoke)
    except ConfigError as exc:
        print(str(exc), file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"flconfig provision: cannot write {ns.output}: {exc.strerror or exc}", file=sys.stderr)
        return 1
    parts = [f"added {', '.join(result.added)}" if result.added else "",
             f"kept {', '.join(result.kept)}" if result.kept else "",
             f"reissued {', '.join(result.reissued)} (a new role or org; the old certificate is revoked)"
             if result.reissued else "",
             f"revoked {', '.join(result.revoked)}" if result.revoked else ""]
    print(f"flconfig: provisioned into {result.out}: " + "; ".join(p for p in parts if p))
    return 0
