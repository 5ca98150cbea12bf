"""``flconfig components [NAME]``: what a config may name, with each component's arguments."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ..registry.catalog import Entry, a_kind, catalog, close_names, find
from ..registry.registry import Registry
from ..validate.loader import inspect_job
from . import path_problem, shorten

EXAMPLES = """examples:
  flconfig components                           every component, by kind
  flconfig components --kind workflow           the workflows only
  flconfig components ScatterAndGather          one component: its paths and arguments
  flconfig components nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver
  flconfig components --job my-job             with the job's own custom/ classes
  flconfig components --format json             for tools
"""

#: Longest summary a listing line shows.
SUMMARY_WIDTH = 100


def register(sub: Any) -> None:
    """Add the ``components`` subcommand."""
    parser = sub.add_parser(
        "components", help="list what a config may name, with each component's arguments",
        description="List the components a job's config may name (built-ins, the FLARE paths "
                    "that build them, installed plugins and, with --job, the job's own "
                    "custom/ classes), or describe one: its paths, kind, one-line doc and "
                    "arguments with their types, defaults and docs, from the argument schemas "
                    "flconfig validate checks configs against.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("name", nargs="?", metavar="NAME",
                        help="a component's short name, its path or a FLARE path that builds it")
    parser.add_argument("--job", metavar="JOB", help="also list the job's own classes (its apps' custom/)")
    parser.add_argument("--kind", metavar="KIND", help="only components of this kind (workflow, learner ...)")
    parser.add_argument("--format", choices=("text", "json"), default="text", help="output format")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """List or describe components."""
    entries = _entries(ns.job)
    if entries is None:
        return 2
    kinds = sorted({e.kind for e in entries})
    if ns.kind is not None:
        if ns.kind not in kinds:
            print(f"flconfig components: no component is of kind {ns.kind!r}: the kinds are "
                  f"{', '.join(kinds)}", file=sys.stderr)
            return 2
        entries = [e for e in entries if e.kind == ns.kind]
    if ns.name is not None:
        found = find(entries, ns.name)
        if not found:
            close = close_names(entries, ns.name)
            hint = f": did you mean {' or '.join(close)}?" if close else " (flconfig components lists them)"
            print(f"flconfig components: no component {ns.name!r}{hint}", file=sys.stderr)
            return 2
        entries = found
    if ns.format == "json":
        print(json.dumps([e.as_json() for e in entries], indent=2))
    elif ns.name is not None:
        print("\n\n".join(describe(e) for e in entries))
    else:
        print(listing(entries))
    return 0


def _entries(job: str | None) -> list[Entry] | None:
    """The catalog: built-ins and plugins, plus the job's own classes; None (said) when
    the job cannot be read."""
    if job is None:
        return catalog(Registry.create(environ={}))
    problem = path_problem(job)
    if problem is None and not Path(job).is_dir():
        problem = f"{job}: no such job folder" if not Path(job).exists() else f"{job} is not a job folder"
    if problem is not None:
        print(f"flconfig components: {problem}", file=sys.stderr)
        return None
    loaded, problems = inspect_job(job, environ={})
    if loaded is None:
        first = problems[0].message if problems else "it could not be read"
        print(f"flconfig components: {job}: {first} (flconfig validate {job} says more)", file=sys.stderr)
        return None
    merged: dict[str, Entry] = {}
    for registry in loaded.registries.values():
        for entry in catalog(registry):
            merged.setdefault(entry.path, entry)
        for warning in dict.fromkeys(registry.warnings):
            print(f"flconfig components: note: {warning}", file=sys.stderr)
    return sorted(merged.values(), key=lambda e: (e.kind, e.name.lower(), e.path))


def listing(entries: list[Entry]) -> str:
    """Each kind, then its components: name, origin where not built in, first sentence."""
    width = max((len(e.name) for e in entries), default=0)
    lines: list[str] = []
    for kind in dict.fromkeys(e.kind for e in entries):
        lines.append(f"{kind}:")
        for e in (e for e in entries if e.kind == kind):
            origin = "" if e.origin == "builtin" else f"[{e.origin}] "
            summary = shorten(origin + e.doc, SUMMARY_WIDTH)
            lines.append(f"  {e.name:<{width}}  {summary}".rstrip())
    lines.append(f"({len(entries)} components; flconfig components NAME describes one)")
    return "\n".join(lines)


def describe(e: Entry) -> str:
    """One component in full: paths, kind, doc, every argument."""
    origin = {"builtin": "built in", "custom": "the job's custom/"}.get(e.origin, e.origin)
    lines = [f"{e.name} ({e.kind}, {origin})", f"  path:  {e.path}"]
    lines += [f"  FLARE: {path}" for path in e.flare_paths]
    if e.doc:
        lines += ["", f"  {e.doc}"]
    lines += ["", "  arguments:" if e.arguments else "  arguments: none"]
    for arg in e.arguments:
        typed = f": {arg.type}" if arg.type else ""
        value = " (required)" if arg.required else f" = {json.dumps(arg.default)}"
        refers = "" if arg.references is None else f"  (the id of {a_kind(arg.references)})"
        lines.append(f"    {arg.name}{typed}{value}{refers}")
        if arg.doc:
            lines.append(f"        {arg.doc}")
    if e.more_arguments:
        lines.append("    ... and any other keyword argument (**kwargs)")
    return "\n".join(lines)
