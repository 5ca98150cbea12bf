"""One limit on how far a config may expand, for every format and every way of copying.

A file of a few hundred bytes whose references nest (each level repeats the one before
ten times) describes 10⁷–10⁹ values, or a string of 2³⁰ characters. Each mechanism —
HOCON substitutions, includes and concatenation, YAML aliases, FLARE's ``{var}`` and
``{@def:k=v}`` — is refused with one error at the line that expands, by ``flconfig
validate`` run with its address space capped far below what the expansion would take:
nothing big is ever built.
"""

from __future__ import annotations

import json
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import pytest
from harness import REPO

from flconfig.config.limits import MAX_CHARS, MAX_VALUES

#: The address space the validating process may use: far below any of the expansions.
MEMORY_CAP = 512 * 2**20

_VALIDATE = """
import resource, sys
resource.setrlimit(resource.RLIMIT_AS, ({cap}, {cap}))
from flconfig.cli import main
sys.exit(main(["validate", *sys.argv[1:]]))
"""


def validate_capped(*paths: Path, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``flconfig validate PATHS`` in a process that cannot map more than MEMORY_CAP."""
    return subprocess.run([sys.executable, "-c", _VALIDATE.format(cap=MEMORY_CAP), *map(str, paths)],
                          capture_output=True, text=True, cwd=cwd, timeout=120)


def hocon_substitutions(folder: Path) -> Path:
    lines = ["format_version = 2", "a0 = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{k} = " + " ".join([f"${{a{k - 1}}}"] * 10) for k in range(1, 10)]
    return _write(folder / "config_fed_client.conf", "\n".join(lines) + "\n")


def hocon_includes(folder: Path) -> Path:
    _write(folder / "h.conf", "x = [1, 2, 3, 4, 5, 6, 7, 8, 9, 10]\n")
    for prev, name in zip("hgfedcb", "gfedcba", strict=True):
        _write(folder / f"{name}.conf", "".join(f'k{i} {{ include "{prev}.conf" }}\n' for i in range(10)))
    return _write(folder / "config_fed_client.conf", 'format_version = 2\ninclude "a.conf"\n')


def hocon_string_doubling(folder: Path) -> Path:
    lines = ["format_version = 2", 's0 = "xxxxxxxxxxxxxxxx"']
    lines += [f"s{k} = ${{s{k - 1}}}${{s{k - 1}}}" for k in range(1, 31)]
    return _write(folder / "config_fed_client.conf", "\n".join(lines) + "\n")


def yaml_aliases(folder: Path) -> Path:
    lines = ["format_version: 2", 'a: &a ["x", "x", "x", "x", "x", "x", "x", "x", "x", "x"]']
    lines += [f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]"
              for prev, name in zip("abcdefgh", "bcdefghi", strict=True)]
    return _write(folder / "config_fed_client.yaml", "\n".join(lines) + "\n")


def flare_calls(folder: Path) -> Path:
    config: dict[str, object] = {"format_version": 2, "@d0": {f"k{i}": i for i in range(10)}}
    for k in range(1, 8):
        config[f"@d{k}"] = {f"k{i}": f"{{@d{k - 1}:x={i}}}" for i in range(10)}
    config["bomb"] = "{@d7:x=1}"
    return _write(folder / "config_fed_client.json", json.dumps(config, indent=1))


def flare_dict_insertion(folder: Path) -> Path:
    config: dict[str, object] = {"format_version": 2, "v0": {f"k{i}": i for i in range(10)}}
    for k in range(1, 9):
        config[f"v{k}"] = {f"k{i}": f"{{v{k - 1}}}" for i in range(10)}
    return _write(folder / "config_fed_client.json", json.dumps(config, indent=1))


def flare_string_doubling(folder: Path) -> Path:
    config: dict[str, object] = {"format_version": 2, "s0": "x" * 16}
    for k in range(1, 31):
        config[f"s{k}"] = f"{{s{k - 1}}}{{s{k - 1}}}"
    return _write(folder / "config_fed_client.json", json.dumps(config, indent=1))


def flare_string_aliases(folder: Path) -> Path:
    """A 2-million-character string made by FLARE references, then named 10⁵ times through
    YAML aliases: each name shares it, but each place it lands is written out later."""
    lines = ["format_version: 2", "s0: xxxxxxxxxxxxxxxx"]
    lines += [f's{k}: "{{s{k - 1}}}{{s{k - 1}}}"' for k in range(1, 18)]
    lines += ['a: &a [' + ", ".join(['"{s17}"'] * 10) + "]"]
    lines += [f"{name}: &{name} [" + ", ".join([f"*{prev}"] * 10) + "]"
              for prev, name in zip("abcd", "bcde", strict=True)]
    return _write(folder / "config_fed_client.yaml", "\n".join(lines) + "\n")


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


VALUES = f"more than {MAX_VALUES:,} values"
CHARS = f"more than {MAX_CHARS:,} characters"

# (how the bomb is written, what the one error says, the text of the line it is at)
BOMBS: dict[str, tuple[Callable[[Path], Path], str, str]] = {
    "HOCON substitutions nested ten-fold": (hocon_substitutions, f"the HOCON expands to {VALUES}", "a5 ="),
    "a HOCON file included ten-fold at each of 8 levels": (hocon_includes, f"the HOCON expands to {VALUES}",
                                                           'include "a.conf"'),
    "a HOCON string doubled 30 times": (hocon_string_doubling, f"the HOCON expands to {CHARS}", "s20 ="),
    # PyYAML shares the nodes an alias names: the first one built past the limit is at its anchor
    "YAML aliases of aliases": (yaml_aliases, f"the YAML expands to {VALUES}", "a: &a"),
    "FLARE {@def:k=v} calls nested ten-fold": (flare_calls, f"the config expands to {VALUES}", '"bomb"'),
    "FLARE {var} dicts inserted ten-fold": (flare_dict_insertion, f"the config expands to {VALUES}",
                                            '"k0": "{v4}"'),
    "a FLARE string doubled 30 times": (flare_string_doubling, f"the config expands to {CHARS}", '"s20"'),
    "a FLARE string named 10^5 times through YAML aliases": (flare_string_aliases,
                                                             f"the config expands to {CHARS}", "a: &a"),
}


@pytest.mark.timeout(60)
@pytest.mark.parametrize("bomb", sorted(BOMBS))
def test_a_tiny_file_that_expands_past_the_limit_is_one_error_at_its_line(bomb: str, tmp_path: Path) -> None:
    write, message, line_text = BOMBS[bomb]
    file = write(tmp_path)
    assert sum(p.stat().st_size for p in tmp_path.iterdir()) < 4096  # a tiny job
    proc = validate_capped(file, cwd=tmp_path)
    assert "Traceback" not in proc.stderr and "MemoryError" not in proc.stdout + proc.stderr, proc.stderr
    assert proc.returncode == 1, proc.stdout + proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 1, proc.stdout
    where, _, said = errors[0].partition(": error: ")
    assert said.startswith(message), errors
    name, line, column = where.rsplit(":", 2)
    assert name == file.name and int(column) >= 1
    assert line_text in file.read_text().splitlines()[int(line) - 1].lstrip(), (errors, line_text)
    assert proc.stdout.rstrip().endswith("1 job checked: 1 error")


def test_a_document_under_the_limit_is_read_whole(tmp_path: Path) -> None:
    """The limit is on size, not on the mechanism: 10⁴ values through nested references pass."""
    from flconfig.config.parsers import load_document

    lines = ["a0 = [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    lines += [f"a{k} = " + " ".join([f"${{a{k - 1}}}"] * 10) for k in range(1, 4)]
    doc = load_document(_write(tmp_path / "big.conf", "\n".join(lines) + "\n"))
    assert len(doc.data["a3"]) == 10_000 and doc.sources[("a3", 9_999)] == "${a2}"
    yaml_lines = ["a: &a [1, 1, 1, 1, 1, 1, 1, 1, 1, 1]"]
    yaml_lines += [f"{n}: &{n} [" + ", ".join([f"*{p}"] * 10) + "]" for p, n in zip("abc", "bcd", strict=True)]
    assert len(load_document(_write(tmp_path / "big.yaml", "\n".join(yaml_lines) + "\n")).data["d"]) == 10


@pytest.mark.timeout(60)
def test_an_included_file_larger_than_the_limit_is_refused_at_the_include_unread(tmp_path: Path) -> None:
    big = tmp_path / "big.conf"
    with open(big, "w") as f:  # 21 million characters of "a = 1"
        for _ in range(700):
            f.write("a = 1\n" * 5000)
    main = _write(tmp_path / "config_fed_client.conf", 'format_version = 2\ninclude "big.conf"\n')
    proc = validate_capped(main, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert errors == [f"config_fed_client.conf:2:1: error: the HOCON expands to {CHARS}"], proc.stdout


@pytest.mark.timeout(60)
def test_a_chain_of_yaml_merge_keys_is_counted_before_it_is_merged(tmp_path: Path) -> None:
    """Each mapping merges the one before (<<: *prev): 3,000 levels hold 4.5 million entries."""
    lines = ["format_version: 2", "base0: &a0 {k0: 1}"]
    lines += [f"base{i}: &a{i}\n  <<: *a{i - 1}\n  k{i}: 1" for i in range(1, 3000)]
    file = _write(tmp_path / "config_fed_client.yaml", "\n".join(lines) + "\n")
    proc = validate_capped(file, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    errors = [line for line in proc.stdout.splitlines() if ": error: " in line]
    assert len(errors) == 1 and f"the YAML expands to {VALUES}" in errors[0], proc.stdout


def test_yaml_merge_keys_read_as_yaml_says(tmp_path: Path) -> None:
    """A key written in the mapping wins over a merged one, an earlier merged mapping over a
    later one; no duplicate-key error for an override."""
    import yaml

    from flconfig.config.parsers import parse_yaml

    text = "a: &a {x: 1, y: 2}\nb:\n  <<: *a\n  y: 3\nc:\n  <<: [*a, {z: 9, x: 7}]\n  w: 0\n"
    assert parse_yaml(text, "t.yaml").data == yaml.safe_load(text)


@pytest.mark.timeout(60)
def test_yaml_nested_fifty_thousand_deep_is_one_line(tmp_path: Path) -> None:
    file = _write(tmp_path / "config_fed_client.yaml", "a: " + "[" * 50_000 + "]" * 50_000 + "\n")
    proc = validate_capped(file, cwd=tmp_path)
    assert "Traceback" not in proc.stderr, proc.stderr
    assert "config_fed_client.yaml:1:1: error: the YAML nests too deeply" in proc.stdout, proc.stdout


@pytest.mark.timeout(60)
def test_a_pattern_in_a_jobs_own_args_schema_is_never_run(tmp_path: Path) -> None:
    """A custom class's ARGS_SCHEMA pattern with exponential backtracking, and a config value
    made to trigger it: the checker never runs a regular expression the job wrote."""
    import shutil

    job = tmp_path / "job"
    shutil.copytree(REPO / "configs" / "tensorboard-streaming", job)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "slow_mod.py").write_text(
        "from nvflare.apis.fl_component import FLComponent\n\n\nclass Slow(FLComponent):\n"
        "    ARGS_SCHEMA = {'x': {'type': 'string', 'pattern': '^(a|a)+$', 'maxLength': 100}}\n\n"
        "    def __init__(self, x: str = ''):\n        super().__init__()\n        self.x = x\n")
    client = job / "app" / "config" / "config_fed_client.json"
    config = json.loads(client.read_text())
    config["components"].append({"id": "slow", "path": "slow_mod.Slow", "args": {"x": "a" * 60 + "!"}})
    client.write_text(json.dumps(config, indent=2))
    proc = validate_capped(job, cwd=tmp_path)
    assert proc.returncode == 0, proc.stdout
    # the bounded keywords still apply
    config["components"][-1]["args"]["x"] = "a" * 101
    client.write_text(json.dumps(config, indent=2))
    proc = validate_capped(job, cwd=tmp_path)
    assert proc.returncode == 1 and "argument 'x' of Slow" in proc.stdout, proc.stdout

