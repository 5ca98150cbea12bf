"""Every command's ``--help`` ends with examples, and every example is a command line the
parser accepts."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys

import pytest

from flconfig.cli import build_parser
from flconfig.cli.parsing import subcommands

COMMANDS = sorted(subcommands(build_parser()))


def examples(command: str) -> list[list[str]]:
    """The example command lines of ``flconfig COMMAND --help``, as argv lists."""
    done = subprocess.run([sys.executable, "-m", "flconfig", command, "--help"], capture_output=True,
                          text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    text = done.stdout
    assert re.search(r"^examples[ :(]", text, re.M), f"flconfig {command} --help has no examples"
    lines = []
    for line in text.split("\nexamples", 1)[1].splitlines()[1:]:
        if not line.startswith("  flconfig "):
            continue
        command_line = re.split(r"\s{2,}", line.strip())[0].split(" > ")[0]
        lines += [shlex.split(part) for part in command_line.split("&&")]
    return lines


@pytest.mark.parametrize("command", COMMANDS)
def test_every_command_has_examples_the_parser_accepts(command: str) -> None:
    found = examples(command)
    assert found, command
    for argv in found:
        assert argv[0] == "flconfig"
        try:
            build_parser().parse_args(argv[1:])
        except SystemExit as exc:  # argparse's way to refuse
            pytest.fail(f"{' '.join(argv)}: refused by the parser ({exc.code})")
