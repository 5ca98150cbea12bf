"""``flconfig convert``: the same data in another format, keys in order, comments kept where
the target has them; what cannot be converted faithfully is refused in one line."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import REPO

from flconfig.config.parsers import load_document

COMMENTED = textwrap.dedent("""\
    # The client config of a job.
    format_version: 2
    executors:
      # The trainer serves two tasks.
      - tasks: [train, submit_model]  # FLARE's names
        executor:
          path: my.Trainer
          args:
            note: "a # in a string is no comment"
            script: |
              # not a comment: part of the text
              run it
            lr: 0.01  # small
    components: []
    # the end
    """)


def convert(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", "convert", *args], capture_output=True,
                          text=True, timeout=120, cwd=cwd)


def write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


@pytest.mark.parametrize("target, suffix", [("hocon", ".conf"), ("json", ".json"), ("yaml", ".yaml")])
def test_the_data_and_its_key_order_survive_every_conversion(tmp_path: Path, target: str, suffix: str) -> None:
    for source in (REPO / "configs" / "tensorboard-streaming" / "app" / "config" / "config_fed_server.json",
                   REPO / "configs" / "client-api" / "app" / "config" / "config_fed_client.conf",
                   write(tmp_path / "c.yaml", COMMENTED)):
        out = tmp_path / f"out-{source.stem}{suffix}"
        done = convert(str(source), "--to", target, "-o", str(out))
        assert done.returncode == 0, done.stderr
        before, after = load_document(source).data, load_document(out).data
        assert after == before
        assert json.dumps(after) == json.dumps(before)  # the same keys in the same order


LONG_KEY = "k" * 1100  # past YAML's 1,024 characters for a key before its ':'
TRICKY = {"lr": 0.00001, "big": 1e20, "small": -2.5e-300, "k\"q": 1, "dotted.key": True, "Ünï": "é ü",
          "yes": "no", "num_text": "1.0", "null_text": "null", "hash": "# not a comment", "empty": "",
          "lines": "a\n  b\n#c", "nested": {"list": [1, [2, 3], {"x": None}], "": 0},
          # NEL and the Unicode line and paragraph separators: line breaks to YAML 1.1
          "breaks": "a\x85b\u2028c\u2029d", "break\x85key": 1,
          LONG_KEY: {"in": [1, {LONG_KEY: "v"}]}}


@pytest.mark.parametrize("target", ["yaml", "hocon", "json"])
def test_numbers_keys_and_strings_that_are_easy_to_get_wrong_survive(tmp_path: Path, target: str) -> None:
    source = write(tmp_path / "tricky.json", json.dumps(TRICKY))
    out = tmp_path / f"out{'.conf' if target == 'hocon' else '.' + target}"
    done = convert(str(source), "--to", target, "-o", str(out))
    assert done.returncode == 0, done.stderr
    assert load_document(out).data == TRICKY
    assert json.dumps(load_document(out).data) == json.dumps(TRICKY)


@pytest.mark.parametrize("name, text, target, said", [
    ("nan.yaml", "a: .nan\n", "json", "nan.yaml:1:4: error: the value at a is nan, which JSON and flconfig's "
                                       "readers do not take as a number [a]"),
    ("bin.yaml", "d: !!binary aGVsbG8=\n", "yaml", "bin.yaml:1:4: error: the value at d is a bytes value, "
                                                   "which is no JSON value [d]"),
    ("list.yaml", "- 1\n", "hocon", "list.yaml:1:1: error: HOCON holds an object at the top, and this file "
                                    "holds list"),
    ("opt.conf", "b = ${?HOME}\n", "json", "opt.conf:1:1: error: a value comes from a substitution or an "
                                           "include, which converting would replace"),
    ("ctl.json", '{"a": "x\\u0001"}', "hocon", "ctl.json:1:7: error: the value at a is a control character"),
])
def test_a_value_the_target_cannot_hold_as_it_is_is_refused_at_its_line(
        tmp_path: Path, name: str, text: str, target: str, said: str) -> None:
    source = write(tmp_path / name, text)
    done = subprocess.run([sys.executable, "-m", "flconfig", "convert", name, "--to", target], capture_output=True,
                          text=True, timeout=120, cwd=tmp_path)
    assert (done.returncode, done.stdout) == (1, "")
    assert done.stderr.startswith(said), done.stderr
    assert source.read_text() == text


def test_yaml_11_warnings_are_shown_as_validate_shows_them(tmp_path: Path) -> None:
    done = convert(str(write(tmp_path / "w.yaml", "country: NO\n")), "--to", "json")
    assert done.returncode == 0 and json.loads(done.stdout) == {"country": False}
    assert "w.yaml:1:10: warning:" in done.stderr


def test_comments_go_along_to_hocon_and_back_to_yaml(tmp_path: Path) -> None:
    source = write(tmp_path / "c.yaml", COMMENTED)
    hocon = convert(str(source), "--to", "hocon")
    assert hocon.returncode == 0 and hocon.stderr == ""
    lines = hocon.stdout.splitlines()
    assert lines[0] == "# The client config of a job."
    assert lines[1] == "format_version = 2"
    at = lines.index("  # The trainer serves two tasks.")
    assert lines[at + 1] == "  {"
    assert '      "submit_model"' in lines
    assert 'tasks = [  # FLARE\'s names' in "\n".join(lines)
    assert '        lr = 0.01  # small' in lines
    assert lines[-1] == "# the end"
    assert "# not a comment" not in "\n".join(line for line in lines if line.lstrip().startswith("#"))
    back = tmp_path / "back.yaml"
    conf = write(tmp_path / "c.conf", hocon.stdout)
    assert convert(str(conf), "--to", "yaml", "-o", str(back)).returncode == 0
    text = back.read_text()
    assert text.startswith("# The client config of a job.\nformat_version: 2\nexecutors:\n"
                           "  # The trainer serves two tasks.\n")
    assert "      lr: 0.01  # small\n" in text and text.endswith("# the end\n")
    assert load_document(back).data == load_document(source).data


def test_a_comment_after_a_list_dash_or_a_closing_brace_is_kept_before_what_follows(tmp_path: Path) -> None:
    source = write(tmp_path / "d.yaml", "a:\n  - # the first\n    b: 1\n  - 2\nc: {\n}  # closed\nd: 3\n")
    done = convert(str(source), "--to", "yaml")
    assert done.returncode == 0, done.stderr
    assert done.stdout == "a:\n  # the first\n  - b: 1\n  - 2\nc: {}\n# closed\nd: 3\n"
    hocon = convert(str(source), "--to", "hocon")
    assert hocon.stdout == "a = [\n  # the first\n  {\n    b = 1\n  }\n  2\n]\nc = {}\n# closed\nd = 3\n"


def test_json_has_no_comments_and_says_how_many_it_left_out(tmp_path: Path) -> None:
    done = convert(str(write(tmp_path / "c.yaml", COMMENTED)), "--to", "json")
    assert done.returncode == 0
    assert json.loads(done.stdout)["executors"][0]["tasks"] == ["train", "submit_model"]
    assert done.stderr == "flconfig convert: note: 5 comment(s) left out: JSON has no comments\n"


def test_what_cannot_be_converted_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.conf", 'root = "/data"\npath = ${root}"/x"\n')
    out = tmp_path / "c.json"
    done = convert(str(conf), "--to", "json", "-o", str(out))
    assert done.returncode == 1 and not out.exists()
    assert done.stderr.startswith(f"{conf}:2:8: error: a value comes from ${{root}}")
    broken = write(tmp_path / "b.json", '{"a": 1,}')
    done = convert(str(broken), "--to", "yaml")
    assert done.returncode == 1 and done.stderr.startswith(f"{broken}:1:")
    existing = write(tmp_path / "there.yaml", "x: 1\n")
    done = convert(str(broken), "--to", "yaml", "-o", str(existing))
    assert (done.returncode, done.stderr) == (
        2, f"flconfig convert: {existing} exists: give a new file (convert never overwrites one)\n")
    done = convert(str(tmp_path / "nope.json"), "--to", "yaml")
    assert (done.returncode, done.stderr) == (2, f"flconfig convert: {tmp_path / 'nope.json'}: no such file\n")
    done = convert(str(tmp_path), "--to", "yaml")
    assert (done.returncode, done.stderr) == (
        2, f"flconfig convert: {tmp_path} is a folder: give a config file (.json, .yaml, .conf)\n")
