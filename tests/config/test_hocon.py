"""HOCON (.conf): flconfig's one reader, with positions, gives pyhocon's data, and reads
nothing of the machine that parses it (no file outside the job folder, no URL, no
environment variable it was not given)."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import REPO

from flconfig.config.parsers import load_document, parse_hocon
from flconfig.errors import ConfigError
from flconfig.validate.loader import inspect_job

ROOT = REPO
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
    # substitutions, resolved as HOCON (and pyhocon) resolve them
    "a substitution as a whole value keeps its type": "lr = 0.1\nargs { lr = ${lr}, on = ${flag} }\nflag = true\n",
    "a substitution of an object and of a list": "base { a = 1, b = [1, 2] }\ncopy = ${base}\nitems = ${base.b}\n",
    "substitutions inside text": 'root = /data\npath = ${root}"/x"\nmsg = run ${root} now\nq = "a"${root}\n',
    "substitutions as list items": "x = 1\ny { z = 2 }\nl = [${x}, ${y}, ${y.z}]\n",
    "a substitution sees the final value": "b = ${a}\na = 1\na = 2\n",
    "an optional substitution of nothing leaves the key as it was": "a = 1\na = ${?nothing}\nb = ${?nothing}\n",
    "a key that refers to itself sees its earlier value": "a = [1]\na = ${a} [2]\np = /bin\np = ${p}\":/usr/bin\"\n",
    "an object merged onto a substitution": "base { lr = 0.1, epochs = 2 }\ntrain = ${base} { epochs = 5 }\nval = ${train.epochs}\n",
    "lists joined": "a = [1] [2]\nb = ${a} [3] ${a}\n",
    "objects written side by side merge": "a = { x = 1 } { y = 2 }\n",
    "a key set again merges with what it refers to": "a { x = 1 }\na = ${a} { y = 2 }\na { z = 3 }\n",
    "a dotted key into a substituted object": "x { c = 1 }\na = ${x}\na.d = 2\nb = ${x}\n",
    "a substitution of a sibling through a dotted key": "a { b = 1 }\na.c = ${a.b}\n",
    "a quoted ${...} is text": 'x = 1\na = "${x}"\n',
    "numbers and words joined by a substitution": "n = 10\na = ${n} apples\nb = ${n}${n}\n",
}

# Included files for INCLUDE_CASES, relative to the folder of the including file.
INCLUDED = {
    "common.conf": "lr = 0.1\nmodel { path = \"a.Net\", args { n = 2 } }\nref = ${top}\n",
    "sub/inner.conf": "deep = true\ninclude \"../common.conf\"\n",
}
INCLUDE_CASES = {
    "include": 'top = 1\ninclude "common.conf"\nlr = 0.2\n',
    "include file()": 'top = 1\ninclude file("common.conf")\n',
    "include required(file())": 'top = 1\ninclude required(file("common.conf"))\nmodel.args.n = 3\n',
    "an include that includes": 'top = 1\ninclude "sub/inner.conf"\n',
    "a missing include that is not required": 'top = 1\ninclude "nothere.conf"\n',
    "an include merges into what is there": 'top = 1\nmodel { args { m = 1 } }\ninclude "common.conf"\n',
}


@pytest.mark.parametrize("name", sorted(CASES))
def test_flconfig_reads_what_pyhocon_reads(name: str) -> None:
    pyhocon = pytest.importorskip("pyhocon")
    text = CASES[name]
    theirs = _plain(pyhocon.ConfigFactory.parse_string(text))
    ours = parse_hocon(text, "x.conf")
    assert ours.data == theirs
    assert ours.problems == []  # read by flconfig itself: positions at every value


@pytest.mark.parametrize("name", sorted(INCLUDE_CASES))
def test_includes_read_what_pyhocon_reads(name: str, tmp_path: Path) -> None:
    pyhocon = pytest.importorskip("pyhocon")
    for rel, text in INCLUDED.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    (tmp_path / "main.conf").write_text(INCLUDE_CASES[name])
    theirs = _plain(pyhocon.ConfigFactory.parse_string(INCLUDE_CASES[name], basedir=str(tmp_path)))
    assert load_document(tmp_path / "main.conf").data == theirs


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


def test_a_substituted_value_is_at_its_expression_and_named_by_it() -> None:
    text = "base { lr = 0.1, net { depth = 2 } }\ntrain = ${base} { epochs = 5 }\npath = ${root}\"/x\"\nroot = /d\n"
    doc = parse_hocon(text, "s.conf")
    where = {path: (p.line, p.column) for path, p in doc.values.items()}
    assert where[("train", "lr")] == where[("train", "net", "depth")] == (2, 9)  # the ${base}
    assert where[("train", "epochs")] == (2, 28)  # written here: its own place
    assert where[("base", "lr")] == (1, 13)
    assert doc.sources[("train", "lr")] == doc.sources[("train", "net", "depth")] == "${base}"
    assert ("train", "epochs") not in doc.sources and ("base", "lr") not in doc.sources
    assert doc.sources[("path",)] == '${root}"/x"' and doc.data["path"] == "/d/x"
    assert doc.problems == []


def test_plus_equals_appends_as_hocon_says() -> None:
    """``a += b`` is ``a = ${?a} [b]`` (the HOCON spec; pyhocon 0.3 replaces the list instead)."""
    doc = parse_hocon("a = [1]\na += 2\na += [3]\nb += x\n", "p.conf")
    assert doc.data == {"a": [1, 2, [3]], "b": ["x"]}
    assert (doc.values[("a", 0)].line, doc.values[("a", 1)].line) == (1, 2)  # each where it is written


@pytest.mark.parametrize("text, line, column, code, words", [
    ("a = ${b}\n", 1, 5, "undefined-variable", "${b} is not defined"),
    ("a = ${a}\n", 1, 5, "undefined-variable", "refers to the key it sets"),
    ("a = ${b}\nb = ${a}\n", 2, 5, "variable-cycle", "cycle"),
    ("a { b = ${a} }\n", 1, 9, "variable-cycle", "cycle"),
    ("x = [1]\ny = ${x} foo\n", 2, 10, "syntax", "cannot join a list and text"),
    ('x = "s"\nx += 1\n', 2, 1, "syntax", "+= appends to a list"),
    ("a = ${}\n", 1, 5, "syntax", "names no key"),
    ("a = 1\nb = ${a\n", 2, 5, "syntax", "never closed"),
])
def test_a_substitution_that_cannot_resolve_is_one_error_at_its_line(
        text: str, line: int, column: int, code: str, words: str) -> None:
    with pytest.raises(ConfigError) as err:
        parse_hocon(text, "bad.conf")
    (problem,) = err.value.problems
    assert problem.code == code and words in problem.message, problem
    assert (problem.position.line, problem.position.column) == (line, column), problem


def test_an_undefined_substitution_reads_only_the_environment_it_is_given(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DATA_ROOT", "/srv/private-data")
    with pytest.raises(ConfigError) as err:
        parse_hocon("path = ${DATA_ROOT}\"/x\"\n", "e.conf")  # no environ: none, not this process's
    (problem,) = err.value.problems
    assert "/srv/private-data" not in str(problem) and "--env DATA_ROOT" in (problem.hint or "")
    doc = parse_hocon("path = ${DATA_ROOT}\"/x\"\nopt = ${?NOPE}\n", "e.conf", environ={"DATA_ROOT": "/given"})
    assert doc.data == {"path": "/given/x"}
    assert doc.sources[("path",)] == '${DATA_ROOT}"/x"' and doc.secrets == {"/given": "${DATA_ROOT}"}
    inside = parse_hocon("DATA_ROOT = /doc\npath = ${DATA_ROOT}\n", "e.conf", environ={"DATA_ROOT": "/given"})
    assert inside.data["path"] == "/doc"  # the document's own key wins, as in HOCON


def _job_with_conf(tmp_path: Path, text: str) -> tuple[Path, Path]:
    """A job folder whose client config is ``text``; (job folder, config file)."""
    job = tmp_path / "job"
    config = job / "app" / "config"
    config.mkdir(parents=True)
    file = config / "config_fed_client.conf"
    file.write_text(text)
    return job, file


@pytest.mark.parametrize("include, words", [
    ('include url("http://127.0.0.1:9/x.conf")', "is refused: a job's configs read only files inside the job folder"),
    ('include classpath("reference.conf")', "never a URL or a class path resource"),
    ('include "{outside}"', "is refused: an absolute path"),
    ('include file("../../../outside.conf")', "is refused: it leads outside the job folder"),
    ('include required("linked/outside.conf")', "is refused: it is a link that leads outside the job folder"),
    ('include required("missing.conf")', "no such file in the job folder"),
])
def test_an_include_reaches_only_files_inside_the_job_folder(tmp_path: Path, include: str, words: str) -> None:
    outside = tmp_path / "outside.conf"
    outside.write_text("secret = hunter2-password\n{{{ not even HOCON\n")
    job, file = _job_with_conf(tmp_path, "format_version = 2\n" + include.format(outside=outside) + "\n")
    (file.parent / "linked").symlink_to(tmp_path)
    with pytest.raises(ConfigError) as err:
        load_document(file, root=job)
    (problem,) = err.value.problems
    assert problem.code == "include" and words in problem.message, problem
    assert (problem.position.line, problem.position.column) == (2, 1), problem
    # nothing of the outside file was read: its broken text would have been a syntax error
    assert "hunter2" not in str(problem) and str(tmp_path) not in problem.message.replace(str(outside), "")


def test_a_job_validated_as_a_folder_includes_from_anywhere_inside_it(tmp_path: Path) -> None:
    job, file = _job_with_conf(tmp_path, 'format_version = 2\ninclude required("../../shared.conf")\n')
    (job / "shared.conf").write_text("executors = []\n")
    assert load_document(file, root=job).data == {"format_version": 2, "executors": []}
    with pytest.raises(ConfigError):  # the same file alone: its folder is the limit
        load_document(file)


def test_include_cycles_and_depth_are_errors_at_the_include(tmp_path: Path) -> None:
    job, file = _job_with_conf(tmp_path, 'a = 1\ninclude "one.conf"\n')
    (file.parent / "one.conf").write_text('b = 2\ninclude "two.conf"\n')
    (file.parent / "two.conf").write_text('c = 3\n\ninclude "one.conf"\n')
    with pytest.raises(ConfigError) as err:
        load_document(file, root=job)
    (problem,) = err.value.problems
    assert "one.conf -> two.conf -> one.conf" in problem.message, problem
    assert problem.position.file.endswith("two.conf") and problem.position.line == 3
    for i in range(30):
        (file.parent / f"d{i}.conf").write_text(f'k{i} = {i}\ninclude "d{i + 1}.conf"\n')
    file.write_text('include "d0.conf"\n')
    with pytest.raises(ConfigError) as err:
        load_document(file, root=job)
    assert "includes nest more than 16 levels deep" in err.value.problems[0].message


def test_an_included_value_keeps_its_own_position_and_is_marked(tmp_path: Path) -> None:
    job, file = _job_with_conf(tmp_path, 'format_version = 2\ninclude "common.conf"\nlr = ${rate}\n')
    (file.parent / "common.conf").write_text("# shared\nrate = 0.5\nopts { seed = 7 }\n")
    doc = load_document(file, f"{job.name}/app/config/config_fed_client.conf", root=job)
    assert doc.data == {"format_version": 2, "rate": 0.5, "opts": {"seed": 7}, "lr": 0.5}
    seed = doc.values[("opts", "seed")]
    assert (seed.file, seed.line, seed.column) == ("job/app/config/common.conf", 3, 15)
    assert doc.keys[("rate",)].file == "job/app/config/common.conf"
    assert doc.sources[("opts", "seed")] == 'a value from include "common.conf"'
    assert doc.sources[("lr",)] == "${rate}" and doc.values[("lr",)].line == 3


def test_conf_files_need_no_pyhocon(tmp_path: Path) -> None:
    """A FLARE-style HOCON job validates with pyhocon unimportable."""
    script = textwrap.dedent(f"""
        import sys
        sys.modules["pyhocon"] = None  # import pyhocon now fails
        from flconfig.validate.loader import inspect_job
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


def test_a_key_set_again_and_again_is_one_error_at_the_line_past_the_cap(tmp_path: Path) -> None:
    """Each `a += 1` refers to the value before it: 5,000 of them used to end in Python's
    recursion limit ("nests too deeply" at 1:1); a hundred are fine."""
    from flconfig.config.parsers.hocon import MAX_OVERRIDES

    fine = parse_hocon("a = [0]\n" + "a += 1\n" * MAX_OVERRIDES, "x.conf")
    assert fine.data["a"] == [0] + [1] * MAX_OVERRIDES
    with pytest.raises(ConfigError) as caught:
        parse_hocon("a = [0]\n" + "a += 1\n" * 5000, "x.conf")
    [problem] = caught.value.problems
    assert str(problem.position) == f"x.conf:{MAX_OVERRIDES + 2}:1"
    assert problem.message == f"'a' is set or appended to (+=) more than {MAX_OVERRIDES} times"
