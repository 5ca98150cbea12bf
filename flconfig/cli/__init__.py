"""The ``flconfig`` command: one module per subcommand.

Each subcommand module defines ``register(subparsers)`` (adds its parser and
``set_defaults(func=run)``) and ``run(namespace) -> int``. Only this edge
prints errors and exits; library code raises.
"""

from __future__ import annotations

import argparse
import errno
import importlib
import os
import sys
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .. import __version__
from .examples import EXAMPLES
from .parsing import Parser, subcommands, unknown_options_line

if TYPE_CHECKING:
    from ..launch.processes import Zygote

SUBCOMMANDS = ("init", "validate", "schema", "launch", "run", "provision", "poc", "server", "admin",
               "explain", "components", "convert", "runs", "completion")


def build_parser() -> argparse.ArgumentParser:
    """The ``flconfig`` command's parser, every subcommand's registered."""
    parser = Parser(
        prog="flconfig",
        description="Validate and run federated-learning jobs described by config folders.",
    )

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
    for name, command in subcommands(parser).items():
        if not command.epilog and name in EXAMPLES:  # every --help ends with examples
            command.epilog = EXAMPLES[name]
            command.formatter_class = argparse.RawDescriptionHelpFormatter
    return parser


#: The ``run`` extra's packages a command may import, by module: the name pip knows each by.
RUN_PACKAGES = {"grpc": "grpcio", "cryptography": "cryptography", "google": "protobuf", "torch": "torch",
                "tensorboard": "tensorboard", "safetensors": "safetensors", "numpy": "numpy",
                "google_crc32c": "google-crc32c"}
#: The exit status of a command whose output was closed (``| head``), as a shell shows SIGPIPE.
EXIT_PIPE_CLOSED = 128 + 13


def extra_line(command: str, packages: Sequence[str]) -> str:
    """The line that says ``command`` needs the ``run`` extra's ``packages``, and how to get them."""
    verb = "is" if len(packages) == 1 else "are"
    return (f"{command}: needs the 'run' extra, and {' and '.join(packages)} {verb} not installed: "
            "pip install 'flconfig[run]'")


def lacks_run_extra(command: str, modules: Sequence[str]) -> bool:
    """Whether one of ``modules`` (of the ``run`` extra) is not installed; if so, one line on
    stderr says which and how to install it. Looked up, not imported, before ``command``
    does anything."""
    import importlib.util

    missing = []
    for module in modules:
        try:
            found = importlib.util.find_spec(module) is not None
        except (ImportError, ValueError):
            found = False
        if not found:
            missing.append(RUN_PACKAGES.get(module, module))
    if missing:
        print(extra_line(command, missing), file=sys.stderr)
    return bool(missing)


def shorten(text: str, width: int) -> str:
    """``text`` in at most ``width`` characters, cut between words with an ellipsis."""
    return text if len(text) <= width else text[:width].rsplit(" ", 1)[0] + "…"


def shown_path(path: str | os.PathLike[str]) -> str:
    """A path as a message shows it: each very long name in it cut to its start and its length."""
    text = os.fspath(path)
    return "/".join(part if len(part) <= 60 else f"{part[:40]}...({len(part)} characters)"
                    for part in text.split("/"))


def path_problem(path: str | os.PathLike[str]) -> str | None:
    """Why ``path`` cannot be looked at at all (a name too long for the file system, a
    loop of links): one line naming it; None if it can be (whether or not it exists)."""
    try:
        os.stat(path)
    except (FileNotFoundError, NotADirectoryError):
        return None
    except OSError as exc:
        return f"{shown_path(path)}: {_why(exc)}"
    except ValueError:  # a NUL byte
        return f"{shown_path(path)}: not a path (it holds a NUL character)"
    return None


def _why(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the name is too long for the file system"
    return (exc.strerror or str(exc)).lower()


def _output_closed() -> bool:
    """Whether stdout is a pipe whose reader has gone."""
    import select

    try:
        poller = select.poll()
        poller.register(sys.stdout.fileno(), select.POLLOUT)
        return any(event & select.POLLERR for _, event in poller.poll(0))
    except (OSError, ValueError, AttributeError):
        return False


def early_zygote(args: Sequence[str]) -> Zygote | None:
    """For ``flconfig launch`` forking its processes (the default on Linux): the zygote that
    forks them (:mod:`flconfig.runtime.zygote`), started before anything else, so that its
    torch import, the longest step before the first round, overlaps the quarter second this
    process takes to load the command line's modules and the launcher. ``args`` are only
    glanced at here (``--spawn``, ``--workspace``, ``--help``); a wrong guess costs nothing,
    since the launch closes a zygote its full command line does not use."""
    if args[:1] != ["launch"] or not sys.platform.startswith("linux"):
        return None
    glance = argparse.ArgumentParser(add_help=False, exit_on_error=False)
    glance.add_argument("-h", "--help", action="store_true")
    glance.add_argument("--spawn", action="store_true")
    glance.add_argument("-w", "--workspace", default="workspace")
    try:
        seen, _ = glance.parse_known_args(args[1:])
    except (argparse.ArgumentError, SystemExit):  # the full parse says what is wrong
        return None
    if seen.help or seen.spawn:
        return None
    from ..launch.processes import Zygote

    return Zygote.start(os.path.realpath(seen.workspace))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``flconfig`` console script; returns the exit code."""
    args = list(sys.argv[1:] if argv is None else argv)
    zygote = early_zygote(args)
    try:
        return _run(args, zygote)
    finally:
        if zygote is not None:
            zygote.close()  # if the launch did not use it


def _run(args: list[str], zygote: Zygote | None) -> int:
    parser = build_parser()
    ns, extras = parser.parse_known_args(args)
    if extras:  # said by the parser of the command they were given to, with the closest options
        command = subcommands(parser).get(getattr(ns, "command", None) or "", parser)
        action = subcommands(command).get(getattr(ns, "action", None) or "")
        (action or command).error(unknown_options_line(action or command, extras))
    if not getattr(ns, "func", None):
        parser.print_help(sys.stderr)
        return 2
    if zygote is not None:
        ns.zygote = zygote  # flconfig launch's (see early_zygote)
    name = f"flconfig {ns.command}"
    try:
        code = int(ns.func(ns))
        sys.stdout.flush()  # output still buffered meets a closed pipe here, not at exit
        return code
    except KeyboardInterrupt:
        print("flconfig: interrupted", file=sys.stderr)
        return 130
    except ModuleNotFoundError as exc:  # the run extra is not installed
        package = RUN_PACKAGES.get((exc.name or "").split(".")[0])
        if package is None:
            raise
        print(extra_line(name, [package]), file=sys.stderr)
        return 2
    except OSError as exc:
        if isinstance(exc, BrokenPipeError) and _output_closed():
            # The reader of our output has gone (`| head`): stop quietly, as Unix tools do;
            # stdout goes to devnull so that the flush at exit does not fail again.
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            return EXIT_PIPE_CLOSED
        # Whatever a command did not say itself: which file, and why, in one line.
        where = f"{shown_path(exc.filename)}: " if exc.filename else ""
        print(f"{name}: {where}{_why(exc)}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
