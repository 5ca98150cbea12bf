"""``flconfig init DIR``: start a job from a template that validates and launches as created."""

from __future__ import annotations

import argparse
import shlex
import sys
from pathlib import Path
from typing import Any

from ..templates import DEFAULT_TEMPLATE, FORMATS, TEMPLATES, TemplateError, create
from . import path_problem

EXAMPLES = """examples:
  flconfig init my-job                          FedAvg on PyTorch, TensorBoard streaming (JSON)
  flconfig init my-job --format yaml            the same job in YAML
  flconfig init my-job --template client-api    a FLARE Client API training script
  flconfig init my-job --template recipe        a FLARE job.py (Recipe API) + client.py
  flconfig init --list                          every template, one line each
"""


def register(subparsers: Any) -> None:
    """Add the ``init`` subcommand."""
    parser = subparsers.add_parser(
        "init", help="start a new job from a template",
        description="Write a new job into DIR from a template: a job folder (meta and app "
                    "configs) or a FLARE job.py script, named after DIR, that validates and "
                    "runs as created.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("dir", nargs="?", metavar="DIR", help="the new job's folder (new or empty)")
    parser.add_argument("-t", "--template", default=DEFAULT_TEMPLATE, metavar="NAME",
                        help=f"the template: {', '.join(TEMPLATES)} (default: {DEFAULT_TEMPLATE})")
    parser.add_argument("--format", choices=FORMATS, default=None,
                        help="the config format, where the template has more than one "
                             "(fedavg-tensorboard: json or yaml)")
    parser.add_argument("--list", action="store_true", help="list the templates and exit")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Write the template, or list them."""
    if ns.list:
        width = max(len(name) for name in TEMPLATES)
        for template in TEMPLATES.values():
            formats = " or ".join(template.folders)
            print(f"{template.name:<{width}}  {template.summary} [{formats}]")
        return 0
    if ns.dir is None:
        print("flconfig init: give the new job's folder, e.g. flconfig init my-job "
              "(flconfig init --list shows the templates)", file=sys.stderr)
        return 2
    problem = path_problem(ns.dir)
    if problem is not None:
        print(f"flconfig init: {problem}", file=sys.stderr)
        return 2
    dest = Path(ns.dir)
    try:
        written = create(ns.template, dest, ns.format)
    except TemplateError as exc:
        print(f"flconfig init: {exc}", file=sys.stderr)
        return 2
    template = TEMPLATES[ns.template]
    fmt = ns.format or next(iter(template.folders))
    print(f"flconfig: created {dest} from template '{template.name}' ({fmt}): {template.summary}")
    for path in written:
        print(f"  {path}")
    print("next:")
    for step in template.next_steps:
        print(f"  {step.format(dir=_shell_path(dest))}")
    return 0


def _shell_path(path: Path) -> str:
    """``path`` as a shell command line may hold it: quoted where it must be, and never
    read as an option."""
    text = str(path)
    return shlex.quote(f"./{text}" if text.startswith("-") else text)
