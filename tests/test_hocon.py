"""HOCON (.conf) as FLARE writes it: flconfig's own reader, with positions, gives pyhocon's data."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from flconfig.config.documents import load_document, parse_hocon
from flconfig.config.job import inspect_job
from flconfig.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
SHARED_FLARE_JOBS = ROOT.parent / "shared" / "flare-jobs"

# Each feature of FLARE-COMPAT.md's list of what FLARE's 488 .conf files use, and the
# corners of HOCON around them; pyhocon must read the same data from each.
CASES = {
    "unquoted keys with =": "format_version = 2\nname = \"x\"\n",
    "objects without a separator": "executor {\n  path = \"a.B\"\n  args { lr = 0.1 }\n}\n",
    "comments": "# a comment\na = 1 # after a value\n// another\nb = \"x # not a comment\"\nc = 2 // too\n",
    "FLARE placeholders in quoted strings": 'learner = "{learner_id}"\npath = "{WORKSPACE}/x"\n',
    "unquoted string values": "dataset = digits\npath = nvflare.app_common.B\nurl = http://a:1/b\n",
    "key: value": "a: 1\nb : \"two\"\nc: [1, 2]\n",
    "dotted keys nest": "args.lr = 0.1\nargs.epochs = 2\nargs { batch = 8 }\n",
    "quoted keys with dots stay literal": '"mlflow.note.content" = "x"\nargs { "a.b" = 1 }\n',
    "trailing commas": "a = [1, 2, 3,]\nb = { x = 1, y = 2, }\n",
    "triple-quoted strings": 'note = """a "quoted" line\nand # another"""\n',
    "newline-separated items": "tasks = [\n  \"train\"\n  \"validate\"\n]\nitems = [\n  { a = 1 }\n  { a = 2 }\n]\n",
    "fields separated by commas": "{ a = 1, b = 2, c { d = 3 } }",
    "a repeated object merges, a repeated value is replaced": "a { x = 1 }\na { y = 2 }\nb = 1\nb = 3\n",
    "root object in braces": "{\n  a = 1\n}\n",
    "root list": "[1, 2, {a = 3}]",
    "keywords, any case": "a = true\nb = FALSE\nc = null\nd = True\ne = trueish\n",
    "numbers": "a = 1\nb = -2\nc = 1.5\nd = .5\ne = 1e3\nf = 1.0.1\ng = 007\n",
    "concatenation": "a = foo bar  baz\nb = 10 apples\nc = \"x\" y\n",
    "escapes and unicode": 'a = "tab\\there \\"q\\" \\u00e9"\nb = "héllo"\nc = naïve\n',
    "empty object and list": "a {}\nb = []\nc = {}\n",
    "nested lists": "a = [[1, 2], [3]]\n",
    "dotted key into an existing object": "args { a = 1 }\nargs.b = 2\n",
    "a value replacing an object": "b { x = 1 }\nb = 2\n",
    "backslashes as pyhocon keeps them": 'a = "C:\\data\\new"\nb = "\\u00e9 \\q"\nc = x\\#y\n',
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_flconfig_reads_what_pyhocon_reads(name: str) -> None:
    pyhocon = pytest.importorskip("pyhocon")
    text = CASES[name]
    theirs = _plain(pyhocon.ConfigFactory.parse_string(text))
    ours = parse_hocon(text, "x.conf")
    assert ours.data == theirs
    assert ours.problems == []  # read by flconfig itself: positions at every value


def _plain(value: object) -> object:
    """pyhocon's result as JSON data (its trees and lists, as FLARE turns them into dicts)."""
    if hasattr(value, "as_plain_ordered_dict"):
        value = value.as_plain_ordered_dict()
    elif isinstance(value, list):
        value = [_plain(v) for v in value]
    return json.loads(json.dumps(value))


def test_real_flare_conf_files_read_the_same_as_with_pyhocon() -> None:
    """Every .conf file FLARE publishes in the job folder beside the project (skipped when
    absent); `benchmarks/hocon_corpus.py` does the same for every .conf of FLARE's history."""
    pyhocon = pytest.importorskip("pyhocon")
    files = sorted(SHARED_FLARE_JOBS.rglob("*.conf")) if SHARED_FLARE_JOBS.is_dir() else []
    if not files:
        pytest.skip("no FLARE .conf files in ../shared/flare-jobs")
    for file in files:
        text = file.read_text(encoding="utf-8-sig")
        assert parse_hocon(text, str(file)).data == _plain(pyhocon.ConfigFactory.parse_string(text)), file


def test_every_value_and_key_has_its_line_and_column() -> None:
    text = textwrap.dedent("""\
        {
          # a comment
          format_version = 2
          executors = [
            {
              tasks = ["train"]
              executor {
                path = "a.B"
                args.learner_id = "pt_learner"
              }
            }
          ]
        }
        """)
    doc = parse_hocon(text, "c.conf")
    where = {path: (p.line, p.column) for path, p in doc.values.items()}
    assert where[("format_version",)] == (3, 20)
    assert where[("executors", 0, "tasks", 0)] == (6, 16)
    assert where[("executors", 0, "executor", "path")] == (8, 16)
    assert where[("executors", 0, "executor", "args", "learner_id")] == (9, 27)
    key = doc.keys[("executors", 0, "executor", "args", "learner_id")]
    assert (key.line, key.column) == (9, 9)


@pytest.mark.parametrize("text, line, column, words", [
    ("a {\n  b = 1\n", 3, 1, "never closed"),
    ("a = [1, 2\n", 2, 1, "never closed"),
    ('a = "no end\n', 1, 5, "does not end on its line"),
    ("a = 1 }\n", 1, 7, "after the value"),
    ("a\n", 1, 2, "expected '=', ':' or '{' after the key 'a'"),
    ("a = [1, }]\n", 1, 9, "expected a value"),
])
def test_bad_hocon_is_one_located_error(text: str, line: int, column: int, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_hocon(text, "bad.conf")
    (problem,) = err.value.problems
    assert problem.code == "syntax" and words in f"{problem.message} {problem.hint}", problem
    assert (problem.position.line, problem.position.column) == (line, column), problem


def test_hocon_outside_the_subset_is_read_with_pyhocon_and_says_so() -> None:
    pytest.importorskip("pyhocon")
    doc = parse_hocon("a = 1\nb = ${a}\n", "subst.conf")
    assert doc.data == {"a": 1, "b": 1}
    (note,) = doc.problems
    assert note.severity == "warning" and "${...}" in note.message and "line" in note.message
    assert (note.position.line, note.position.column) == (2, 5)


def test_conf_files_need_no_pyhocon(tmp_path: Path) -> None:
    """A FLARE-style HOCON job validates with pyhocon unimportable."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pyhocon"] = None  # import pyhocon now fails
        from flconfig.config.job import inspect_job
        job, problems = inspect_job({str(ROOT / "tests" / "corpus" / "hocon-dangling-id")!r})
        print([(p.code, p.position.line) for p in problems])
        """)
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[('dangling-ref', 12)]"


def _to_hocon(value: object, indent: int = 0) -> str:
    """The JSON value as FLARE writes HOCON: unquoted keys, '=', objects without '='."""
    pad = "  " * indent
    if isinstance(value, dict):
        lines = []
        for key, item in value.items():
            sep = " " if isinstance(item, dict) else " = "
            lines.append(f"{pad}  {key}{sep}{_to_hocon(item, indent + 1)}")
        return "{\n" + "\n".join(lines) + f"\n{pad}}}"
    if isinstance(value, list):
        return "[\n" + "\n".join(f"{pad}  {_to_hocon(v, indent + 1)}" for v in value) + f"\n{pad}]"
    return json.dumps(value)


def test_a_hocon_job_with_a_hocon_meta_and_a_default_file_checks_like_its_json_twin(tmp_path: Path) -> None:
    job = tmp_path / "job"
    (job / "app" / "config").mkdir(parents=True)
    (job / "meta.conf").write_text(_to_hocon(json.loads((EXAMPLE / "meta.json").read_text())))
    for name in ("config_fed_client", "config_fed_server"):
        data = json.loads((EXAMPLE / "app" / "config" / f"{name}.json").read_text())
        # the server's config only as FLARE's `.default` file: read when the file itself is absent
        suffix = ".conf.default" if name == "config_fed_server" else ".conf"
        (job / "app" / "config" / f"{name}{suffix}").write_text(_to_hocon(data))
    hocon_job, problems = inspect_job(job)
    json_job, json_problems = inspect_job(EXAMPLE)
    assert problems == [] and json_problems == []
    assert hocon_job is not None and json_job is not None
    for ours, theirs in zip(hocon_job.configs(), json_job.configs(), strict=True):
        assert ours.doc.data == theirs.doc.data
    server = hocon_job.server_config
    assert server is not None and server.file.name == "config_fed_server.conf.default"


def test_a_config_file_beats_its_default(tmp_path: Path) -> None:
    config = tmp_path / "app" / "config"
    config.mkdir(parents=True)
    (config / "config_fed_client.conf").write_text('format_version = 2\nexecutors = []\n')
    (config / "config_fed_client.json.default").write_text('{"format_version": 1}')
    from flconfig.config.job import find_config

    found, problems = find_config(config, "config_fed_client")
    assert found == config / "config_fed_client.conf" and problems == []
    doc = load_document(config / "config_fed_client.json.default")
    assert doc.data == {"format_version": 1}  # a .json.default is JSON, a .conf.default HOCON
