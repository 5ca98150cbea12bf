"""``flconfig completion bash|zsh|fish``: a script that completes flconfig's commands,
options and their values in that shell, made from the command line's own parser."""

from __future__ import annotations

import argparse
import shlex
from typing import Any

from . import build_parser, shorten
from .parsing import command_help, subcommands

SHELLS = ("bash", "zsh", "fish")

EXAMPLES = """examples (install it once, for your shell):
  flconfig completion bash > ~/.local/share/bash-completion/completions/flconfig
  flconfig completion zsh > "${fpath[1]}/_flconfig"      (or: source <(flconfig completion zsh))
  flconfig completion fish > ~/.config/fish/completions/flconfig.fish
"""

#: The metavars and option names whose value is a folder or a file: the shell completes paths there.
_PATH_METAVARS = frozenset({"DIR", "FILE", "JOB", "KIT", "OUT", "PNG", "PROJECT.yaml", "SCRIPT", "WORKSPACE"})
_PATH_DESTS = frozenset({"workspace", "output", "kit", "dir", "python_path", "job"})


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
    parser = build_parser()  # the whole command line, this command included
    print(fish_script(parser) if ns.shell == "fish" else bash_script(parser, zsh=ns.shell == "zsh"))
    return 0


def _options(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.option_strings]


def _takes_value(action: argparse.Action) -> bool:
    return action.nargs != 0


def _is_path(action: argparse.Action) -> bool:
    return action.metavar in _PATH_METAVARS or action.dest in _PATH_DESTS


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
            reply = f'_flconfig_reply -W "{_words(action.choices)}"'
        elif _is_path(action):
            reply = "_flconfig_reply -f"
        else:
            reply = "COMPREPLY=()"  # a value of the user's: nothing to offer
        lines.append(f"{indent}{flags}) {reply}; return ;;")
    return lines


def _bash_arm(parser: argparse.ArgumentParser, indent: str) -> list[str]:
    """What one (sub)command completes: an option's value, its options, else paths."""
    options = _words(sorted(s for a in _options(parser) for s in a.option_strings))
    return [f'{indent}case "$prev" in', *_bash_values(parser, indent + "    "), f"{indent}esac",
            f'{indent}if [[ "$cur" == -* ]]; then _flconfig_reply -W "{options}"; else _flconfig_reply -f; fi']


def bash_script(parser: argparse.ArgumentParser, zsh: bool = False) -> str:
    """A bash completion function for ``flconfig`` (zsh: the same, through bashcompinit)."""
    commands = subcommands(parser)
    top = _words([*commands, "--help", "--version"])
    arms = []
    for name, command in commands.items():
        nested = subcommands(command)
        arms.append(f"        {name})")
        if nested:  # its own commands first, then each one's options
            arms.append(f'            if [[ -z "$sub" ]]; then _flconfig_reply -W "{_words(nested)}"; return; fi')
            arms.append('            case "$sub" in')
            for sub_name, sub_parser in nested.items():
                arms += [f"                {sub_name})", *_bash_arm(sub_parser, "                    "),
                         "                    ;;"]
            arms.append("            esac")
        else:
            arms += _bash_arm(command, "            ")
        arms.append("            ;;")
    script = [
        "# flconfig completion for bash" + (" and zsh (through bashcompinit)" if zsh else ""),
        *(["autoload -U +X bashcompinit && bashcompinit"] if zsh else []),
        "_flconfig_reply() {  # COMPREPLY from compgen, one word a line: names with spaces stay whole",
        '    mapfile -t COMPREPLY < <(compgen "$@" -- "$cur")',
        "}",
        "_flconfig() {",
        '    local cur="${COMP_WORDS[COMP_CWORD]}" prev="${COMP_WORDS[COMP_CWORD-1]}"',
        '    local cmd="" sub="" word i',
        "    for ((i = 1; i < COMP_CWORD; i++)); do",
        '        word="${COMP_WORDS[i]}"',
        '        [[ "$word" == -* ]] && continue',
        '        if [[ -z "$cmd" ]]; then cmd="$word"; elif [[ -z "$sub" ]]; then sub="$word"; fi',
        "    done",
        f'    if [[ -z "$cmd" ]]; then _flconfig_reply -W "{top}"; return; fi',
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
        nested = subcommands(command)
        for sub_name, sub_parser in nested.items():
            lines.append(f"complete -c flconfig -n {seen} -a {shlex.quote(sub_name)}")
            lines += _fish_options(sub_parser, f"__fish_seen_subcommand_from {name}; and "
                                               f"__fish_seen_subcommand_from {sub_name}")
        lines += _fish_options(command, f"__fish_seen_subcommand_from {name}")
    return "\n".join(lines)


def _fish_options(parser: argparse.ArgumentParser, condition: str) -> list[str]:
    """One ``complete`` line per option of ``parser``, offered where ``condition`` holds."""
    lines = []
    for action in _options(parser):
        flags = " ".join(f"-l {s[2:]}" if s.startswith("--") else f"-s {s[1:]}" for s in action.option_strings)
        value = ""
        if _takes_value(action):
            value = f" -x -a {shlex.quote(_words(action.choices))}" if action.choices else (
                " -r -F" if _is_path(action) else " -x")
        about = _short(action.help) if action.help != argparse.SUPPRESS else ""
        lines.append(f"complete -c flconfig -n {shlex.quote(condition)} {flags}{value} -d {shlex.quote(about)}")
    return lines


def _short(text: str | None, width: int = 72) -> str:
    """A help text's first clause, at most ``width`` characters."""
    return shorten((text or "").split(" (")[0].split("; ")[0].split(". ")[0].strip(), width)

