"""The command line's parser: argparse's, saying "did you mean" for a misspelt command,
choice or option."""

from __future__ import annotations

import argparse
from collections.abc import Iterator, Sequence

from ..errors import closest, did_you_mean


class Parser(argparse.ArgumentParser):
    """An ArgumentParser whose refusals suggest the closest known command, choice or option;
    the parsers of subcommands are of this class too."""

    def _check_value(self, action: argparse.Action, value: object) -> None:
        """A value not among ``action``'s choices: one line naming the closest one."""
        choices = action.choices
        if choices is None or value in choices:
            return
        names = [str(c) for c in choices]
        close = did_you_mean(str(value), names)
        noun = "unknown command" if isinstance(action, argparse._SubParsersAction) else "unknown value"
        raise argparse.ArgumentError(
            None if noun == "unknown command" else action,
            f"{noun} '{value}'" + (f": {close}" if close else "") + f" (choose from {', '.join(names)})")


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
    known = set(option_strings(parser))
    hints = []
    for extra in extras:
        if extra.startswith("-"):
            close = closest(extra.split("=", 1)[0], known)
            if close:
                hints.append(f"{extra.split('=', 1)[0]}: did you mean {close}?")
    return f"unrecognized arguments: {' '.join(extras)}" + (f" ({'; '.join(hints)})" if hints else "")
