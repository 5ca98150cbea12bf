"""``flconfig completion bash|zsh|fish``: a script that completes flconfig's commands,
options and their values in that shell, made from the command line's own parser."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from .parsing import command_help, subcommands

SHELLS = ("bash", "zsh", "fish")

EXAMPLES = """examples (install it once, for your shell):
  flconfig completion bash > ~/.local/share/bash-completion/completions/flconfig
  flconfig completion zsh > "${fpath[1]}/_flconfig"      (or: source <(flconfig completion zsh))
  flconfig completion fish > ~/.config/fish/completions/flconfig.fish
"""

#: Options whose value is a folder or a file: the shell completes paths there.
_PATH_WORDS = ("dir", "workspace", "path", "file", "folder", "kit", "output", "out")


def register(sub: Any) -> None:
    """Add the ``completion`` subcommand."""
    parser = sub.add_parser(
        "completion", help="print a shell completion script (bash, zsh, fish)",
        description="Print a script that completes flconfig's commands, options and option "
                    "values in bash, zsh or fish.",
        epilog=EXAMPLES, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("shell", choices=SHELLS, help="the shell")
    parser.set_defaults(func=run)


def run(ns: argparse.Namespace) -> int:
    """Print the script for ``ns.shell``."""
    parser = ns.command_line  # the whole command line, this command included
    print(fish_script(parser) if ns.shell == "fish" else bash_script(parser, zsh=ns.shell == "zsh"))
    return 0


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _is_path(action: argparse.Action) -> bool:
    words = f"{action.metavar or ''} {action.dest}".lower()
    return any(word in words for word in _PATH_WORDS)


def _words(items: Any) -> str:
    return " ".join(shlex.quote(str(item)) for item in items)


def _bash_values(parser: argparse.ArgumentParser, indent: str) -> list[str]:
    """The ``case "$prev"`` arms of one parser: what follows each option that takes a value."""
    lines = []
    for action in _options(parser):
        if not _takes_value(action):
            continue
        flags = "|".join(action.option_strings)
        if action.choices:
            reply = f'COMPREPLY=( $(compgen -W "{_words(action.choices)}" -- "$cur") )'
        elif _is_path(action):
            reply = 'COMPREPLY=( $(compgen -f -- "$cur") )'
        else:
            reply = "COMPREPLY=()"  # a value of the user's: nothing to offer
        lines.append(f"{indent}{flags}) {reply}; return ;;")
    return lines


def bash_script(parser: argparse.ArgumentParser, zsh: bool = False) -> str:
    """A bash completion function for ``flconfig`` (zsh: the same, through bashcompinit)."""
    commands = subcommands(parser)
    top = _words([*commands, "--help", "--version"])
    arms = []
    for name, command in commands.items():
        nested = subcommands(command)
        options = _words(sorted(s for a in _options(command) for s in a.option_strings))
        body = [f"        {name})", '            case "$prev" in',
                *_bash_values(command, "                "), "            esac"]
        if nested:
            body += [f'            if [[ -z "$sub" ]]; then COMPREPLY=( $(compgen -W "{_words(nested)}" -- "$cur") ); return; fi']
        body += [f'            if [[ "$cur" == -* ]]; then COMPREPLY=( $(compgen -W "{options}" -- "$cur") )',
                 '            else COMPREPLY=( $(compgen -f -- "$cur") ); fi', "            ;;"]
        arms += body
    script = [
        "# flconfig completion for bash" + (" and zsh (through bashcompinit)" if zsh else ""),
        *(["autoload -U +X bashcompinit && bashcompinit"] if zsh else []),
        "_flconfig() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local cmd="" sub="" word i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        '        [[ "$word" == -* ]] && continue',
        '        if [[ -z "$cmd" ]]; then cmd="$word"; elif [[ -z "$sub" ]]; then sub="$word"; fi',
        "    done",
        f'    if [[ -z "$cmd" ]]; then COMPREPLY=( $(compgen -W "{top}" -- "$cur") ); return; fi',
        '    case "$cmd" in',
        *arms,
        "    esac",
        "}",
        "complete -o filenames -F _flconfig flconfig",
    ]
    return "\n".join(script)


def fish_script(parser: argparse.ArgumentParser) -> str:
    """``complete`` lines for fish."""
    lines = ["# flconfig completion for fish", "complete -c flconfig -f"]
    commands = subcommands(parser)
    helps = command_help(parser)
    for name in commands:
        lines.append(f"complete -c flconfig -n __fish_use_subcommand -a {shlex.quote(name)} "
                     f"-d {shlex.quote(_short(helps.get(name, '')))}")
    for name, command in commands.items():
        seen = shlex.quote(f"__fish_seen_subcommand_from {name}")
        lines.append(f"complete -c flconfig -n {seen} -F")  # its arguments: files and folders
        for nested in subcommands(command):
            lines.append(f"complete -c flconfig -n {seen} -a {shlex.quote(nested)}")
        for action in _options(command):
            flags = " ".join(f"-l {s[2:]}" if s.startswith("--") else f"-s {s[1:]}"
                             for s in action.option_strings)
            value = ""
            if _takes_value(action):
                value = f" -x -a {shlex.quote(_words(action.choices))}" if action.choices else (
                    " -r -F" if _is_path(action) else " -x")
            about = _short(action.help) if action.help != argparse.SUPPRESS else ""
            lines.append(f"complete -c flconfig -n {seen} {flags}{value} -d {shlex.quote(about)}")
    return "\n".join(lines)


def _short(text: str | None, width: int = 72) -> str:
    """A help text's first clause, at most ``width`` characters, cut between words."""
    first = (text or "").split(" (")[0].split("; ")[0].split(". ")[0].strip()
    if len(first) <= width:
        return first
    return first[:width].rsplit(" ", 1)[0] + "…"

