"""The command line's parser: argparse's, saying "did you mean" for a misspelt command,
choice or option."""

from __future__ import annotations

import argparse
import difflib
import re
from collections.abc import Iterator, Sequence
from typing import NoReturn

#: argparse's words for a value not among an argument's choices.
_INVALID_CHOICE = re.compile(r"argument (\S+): invalid choice: '([^']*)' \(choose from (.*)\)$")


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose errors suggest the closest known command, choice or option;
    the parsers of subcommands are of this class too."""

    def error(self, message: str) -> NoReturn:
        """Print usage and ``message`` (with a suggestion where one is close) and exit 2."""
        found = _INVALID_CHOICE.match(message)
        if found is not None:
            what, given, listed = found.groups()
            choices = re.findall(r"'([^']*)'", listed)
            close = difflib.get_close_matches(given, choices, n=1, cutoff=0.6)
            where = "unknown command" if what in ("COMMAND", "ACTION") else f"argument {what}: unknown value"
            message = (f"{where} '{given}'" + (f": did you mean '{close[0]}'?" if close else "")
                       + f" (choose from {', '.join(choices)})")
        super().error(message)


def subcommands(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    """The parser's subcommands by name, in the order they were added."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def command_help(parser: argparse.ArgumentParser) -> dict[str, str]:
    """Each subcommand's one-line help, as ``flconfig --help`` lists it."""
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {choice.dest: choice.help or "" for choice in action._choices_actions}
    return {}


def option_strings(parser: argparse.ArgumentParser) -> Iterator[str]:
    """Every option string ``parser`` knows (``-n``, ``--num-clients`` ...)."""
    for action in parser._actions:
        yield from action.option_strings


def unknown_options_line(parser: argparse.ArgumentParser, extras: Sequence[str]) -> str:
    """argparse's "unrecognized arguments" message for ``extras``, with the option each
    misspelt one most likely meant."""
    known = sorted(set(option_strings(parser)))
    hints = []
    for extra in extras:
        if extra.startswith("-"):
            close = difflib.get_close_matches(extra.split("=", 1)[0], known, n=1, cutoff=0.6)
            if close:
                hints.append(f"{extra.split('=', 1)[0]}: did you mean {close[0]}?")
    return f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else "")
