"""Shell completion (``flconfig completion bash|zsh|fish``) and "did you mean" for a
misspelt command, option or value."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO


def flconfig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                          timeout=120, cwd=REPO)


@pytest.fixture(scope="module")
def bash_script(tmp_path_factory: pytest.TempPathFactory) -> Path:
    done = flconfig("completion", "bash")
    assert done.returncode == 0, done.stderr
    path = tmp_path_factory.mktemp("completion") / "flconfig.bash"
    path.write_text(done.stdout)
    return path


def complete(script: Path, line: str) -> list[str]:
    """What real bash offers at the end of ``line``, with the script loaded."""
    words = line.split(" ")
    program = (f"source {script}\n"
               f"COMP_WORDS=({' '.join(repr(w) for w in words)}); COMP_CWORD={len(words) - 1}\n"
               "_flconfig; printf '%s\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=30, cwd=REPO)
    assert done.returncode == 0 and done.stderr == "", done.stderr
    return sorted(w for w in done.stdout.splitlines() if w)


@pytest.mark.parametrize("line, offered", [
    ("flconfig la", ["launch"]),
    ("flconfig ", None),  # every command
    ("flconfig launch --back", ["--backend"]),
    ("flconfig launch --backend ", ["process", "ray"]),
    ("flconfig launch --site-state r", ["release"]),
    ("flconfig init x --format y", ["yaml"]),
    ("flconfig poc st", ["start", "stop"]),
    ("flconfig validate configs/tensorboard-streaming/me", ["configs/tensorboard-streaming/meta.json"]),
    ("flconfig launch -w ", None),  # a folder: the files here
    ("flconfig poc prepare --p", ["--port"]),  # a nested command's own options
    ("flconfig launch --heartbeat-timeout ", []),  # a number: nothing to offer
    ("flconfig validate tests/corpus/json-empty", ["tests/corpus/json-empty-file"]),
])
def test_bash_completes_commands_options_their_values_and_paths(bash_script: Path, line: str,
                                                                offered: list[str] | None) -> None:
    got = complete(bash_script, line)
    if line == "flconfig ":
        assert {"init", "validate", "launch", "run", "completion", "--help"} <= set(got)
    elif line == "flconfig launch -w ":
        assert {"configs", "flconfig", "README.md"} <= set(got)
    else:
        assert got == offered


def test_a_name_with_spaces_is_offered_whole(bash_script: Path, tmp_path: Path) -> None:
    (tmp_path / "my job ü").mkdir()
    words = ["flconfig", "validate", "my"]
    program = (f"source {bash_script}\nCOMP_WORDS=(flconfig validate my); COMP_CWORD=2\n"
               "_flconfig; printf '[%s]\\n' \"${COMPREPLY[@]}\"\n")
    done = subprocess.run(["bash", "--norc", "--noprofile", "-c", program], capture_output=True, text=True,
                          timeout=30, cwd=tmp_path)
    assert done.stdout == "[my job ü]\n", (words, done.stdout, done.stderr)


def test_zsh_gets_the_same_completion_through_bashcompinit() -> None:
    bash, zsh = flconfig("completion", "bash").stdout, flconfig("completion", "zsh").stdout
    assert zsh.splitlines()[1] == "autoload -U +X bashcompinit && bashcompinit"
    assert zsh.splitlines()[2:] == bash.splitlines()[1:]


def test_fish_completes_commands_and_each_commands_options() -> None:
    done = flconfig("completion", "fish")
    assert done.returncode == 0
    lines = done.stdout.splitlines()
    # As `flconfig --help` lists it, to its first clause.
    assert "complete -c flconfig -n __fish_use_subcommand -a launch -d 'validate a job, then run it'" in lines
    assert ("complete -c flconfig -n '__fish_seen_subcommand_from launch' -l backend -x -a 'process ray' "
            "-d 'process: the sites in worker processes on this machine'") in lines
    assert "complete -c flconfig -n '__fish_seen_subcommand_from launch' -s w -l workspace -r -F" in done.stdout
    assert ("complete -c flconfig -n '__fish_seen_subcommand_from poc; and __fish_seen_subcommand_from prepare' "
            "-l port -x -d") in done.stdout


@pytest.mark.parametrize("args, last_line", [
    (["lanuch", "job"], "flconfig: error: unknown command 'lanuch': did you mean 'launch'? (choose from "),
    (["launch", "job", "--backnd", "ray"],
     "flconfig launch: error: unrecognized arguments: --backnd ray (--backnd: did you mean --backend?)"),
    (["launch", "job", "--device", "cdua"],
     "flconfig launch: error: argument --device: unknown value 'cdua': did you mean 'cuda'? "
     "(choose from cpu, cuda, auto)"),
    (["poc", "strat"], "flconfig poc: error: unknown command 'strat': did you mean 'start'? "
                       "(choose from prepare, start, stop)"),
    (["completion", "tcsh"], "flconfig completion: error: argument shell: unknown value 'tcsh' "
                             "(choose from bash, zsh, fish)"),
])
def test_a_misspelling_says_what_was_probably_meant(args: list[str], last_line: str) -> None:
    done = flconfig(*args)
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr.splitlines()[-1].startswith(last_line), done.stderr
    assert "Traceback" not in done.stderr
