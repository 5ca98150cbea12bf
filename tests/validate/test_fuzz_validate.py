"""Fuzzing ``inspect_job`` with broken variants of the example job.

Whatever the files hold, validation returns problems (or none) and never raises, and
every problem points at a file that exists, at a line inside it unless the problem is
about a whole file or folder. Writing a job in YAML instead of JSON changes no error.
"""

from __future__ import annotations

import copy
import json
import tempfile
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import yaml
from harness import REPO
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from flconfig.errors import Problem
from flconfig.validate.loader import inspect_job

JOBS = {"json": REPO / "configs" / "tensorboard-streaming",
        "yaml": REPO / "configs" / "tensorboard-streaming-yaml"}
FILES = {"meta": "meta", "client": "app/config/config_fed_client", "server": "app/config/config_fed_server"}
SUFFIX = {"json": ".json", "yaml": ".yaml"}
DATA = {role: json.loads((JOBS["json"] / f"{stem}.json").read_text()) for role, stem in FILES.items()}
TEXT = {(fmt, role): (JOBS[fmt] / f"{stem}{SUFFIX[fmt]}").read_text()
        for fmt in JOBS for role, stem in FILES.items()}
#: Problems about a whole file or folder carry no line.
WHOLE_FILE_CODES = {"duplicate-config", "missing-file", "io", "unsupported-format", "usage"}

# Derandomized: the same examples every run, so the suite stays deterministic and bounded.
FUZZ = settings(deadline=None, derandomize=True, suppress_health_check=[HealthCheck.too_slow])

# --- values a config may hold ----------------------------------------------------------------

TELLING_STRINGS = st.sampled_from([
    "", "{num_rounds}", "{min_clients}", "{undefined}", "{{braces}}", "{$HOME}", "{@d:a=1}", "x {lr:.3f}",
    "{", "}", "os.system", "subprocess.Popen", "flconfig.examples.digits.DigitsLearner",
    "nvflare.app_opt.tracking.tb.tb_writer.TBWriter", "ScatterAndGather", "@ALL", "@all", "server",
    "site-1", "../x", "a/b", "fed.analytix_log_stats", "analytix_log_stats", "pt_learner",
    "log_writer", "persistor", "train", "*", "1e-3", "on", "null", "\u00e9\u4e2d", "\x00",
])
SCALARS = (st.none() | st.booleans() | st.integers(-(2**70), 2**70)
           | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12) | TELLING_STRINGS)
KEYS = st.text(max_size=10) | st.sampled_from(
    ["id", "path", "name", "class_path", "args", "tasks", "executor", "filters", "direction",
     "disabled", "config_type", "format_version", "executors", "components", "workflows",
     "deploy_map", "min_clients", "learner_id", "events", "@def", "$schema", "<<"])
COMPONENTS = st.fixed_dictionaries(
    {"id": TELLING_STRINGS, "path": TELLING_STRINGS},
    optional={"args": st.dictionaries(KEYS, SCALARS, max_size=3), "disabled": st.booleans()})
VALUES = st.recursive(SCALARS | COMPONENTS, lambda inner: st.lists(inner, max_size=3)
                      | st.dictionaries(KEYS, inner, max_size=3), max_leaves=8)


def _nodes(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """Every path inside ``value``, the root excluded."""
    if isinstance(value, dict):
        items: Any = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return
    for key, child in items:
        yield (*path, key)
        yield from _nodes(child, (*path, key))


def _parent(data: Any, path: tuple[Any, ...]) -> Any:
    for part in path[:-1]:
        data = data[part]
    return data


def _type(value: Any) -> str:
    return type(value).__name__


@st.composite
def mutated(draw: st.DrawFn, data: Any) -> Any:
    """``data`` with one to three edits: delete, retype, insert, rename or replace."""
    data = copy.deepcopy(data)
    for _ in range(draw(st.integers(1, 3))):
        nodes = list(_nodes(data))
        op = draw(st.sampled_from(["delete", "retype", "insert", "rename", "replace"]))
        if not nodes:
            op = "insert"
        path = draw(st.sampled_from(nodes)) if nodes else ()
        if op == "insert":
            containers = [()] + [p for p in nodes if isinstance(_parent(data, p + (0,)), (dict, list))]
            where = draw(st.sampled_from(containers))
            target = _parent(data, (*where, None))
            if isinstance(target, dict):
                target[draw(KEYS)] = draw(VALUES)
            elif isinstance(target, list):
                target.insert(draw(st.integers(0, len(target))), draw(VALUES))
            continue
        parent, key = _parent(data, path), path[-1]
        if op == "delete":
            del parent[key]
        elif op == "retype":
            old = _type(parent[key])
            parent[key] = draw(VALUES.filter(lambda v, old=old: _type(v) != old))
        elif op == "replace":
            parent[key] = draw(TELLING_STRINGS | VALUES)
        elif isinstance(parent, dict):  # rename
            new = draw(KEYS | st.just(key[:-1]) | st.just(key + "s") | st.just(key.upper()))
            parent = {(new if k == key else k): v for k, v in parent.items()}
            if len(path) == 1:
                data = parent
            else:
                _parent(data, path[:-1])[path[-2]] = parent
    return data


def _dump(value: Any, fmt: str) -> str:
    if fmt == "json":
        return json.dumps(value, indent=2, ensure_ascii=False) + "\n"
    return yaml.safe_dump(value, sort_keys=False, allow_unicode=True)


def _write_job(root: Path, files: dict[str, str | bytes]) -> Path:
    job = root / "job"
    for rel, content in files.items():
        target = job / rel
        target.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, bytes):
            target.write_bytes(content)
        else:
            target.write_text(content, encoding="utf-8")
    return job


def _example_files(fmt: str) -> dict[str, str | bytes]:
    return {f"{stem}{SUFFIX[fmt]}": TEXT[(fmt, role)] for role, stem in FILES.items()}


def _check(job: Path) -> list[Problem]:
    """Validate ``job``; it must not raise, and every problem must point somewhere real."""
    _, problems = inspect_job(job, environ={})
    for problem in problems:
        assert isinstance(problem, Problem)
        assert problem.severity in ("error", "warning")
        assert problem.code and problem.message, problem
        pos = problem.position
        assert pos is not None, problem
        where = Path(pos.file)
        assert where.exists(), f"{problem}: {where} does not exist"
        if pos.line == 0:
            assert problem.code in WHOLE_FILE_CODES or where.is_dir(), f"no line for: {problem}"
            continue
        assert where.is_file(), problem
        assert pos.line >= 1 and pos.column >= 1, problem
        lines = where.read_bytes().split(b"\n")
        assert pos.line <= len(lines), f"{problem}: the file has {len(lines)} lines"
    return problems


def _error_codes(problems: list[Problem]) -> Counter[str]:
    return Counter(p.code for p in problems if p.is_error)


# --- the properties --------------------------------------------------------------------------


@settings(FUZZ, max_examples=60)
@given(fmt=st.sampled_from(["json", "yaml"]), role=st.sampled_from(sorted(FILES)), data=st.data())
def test_structural_mutations_never_crash(fmt: str, role: str, data: st.DataObject) -> None:
    changed = data.draw(mutated(DATA[role]), label="mutated")
    files = _example_files(fmt)
    files[f"{FILES[role]}{SUFFIX[fmt]}"] = _dump(changed, fmt)
    with tempfile.TemporaryDirectory() as tmp:
        _check(_write_job(Path(tmp), files))


NOISE = st.text(alphabet=st.sampled_from(list('{}[],:"\'\t\n #-&*!|>?%@`\\') + ["\u00e9", "\ufeff", "a", "1"]),
                min_size=1, max_size=6)


@settings(FUZZ, max_examples=60)
@given(fmt=st.sampled_from(["json", "yaml"]), role=st.sampled_from(sorted(FILES)), data=st.data())
def test_text_mutations_never_crash(fmt: str, role: str, data: st.DataObject) -> None:
    text = TEXT[(fmt, role)]
    op = data.draw(st.sampled_from(["truncate", "insert", "delete", "bad-byte", "duplicate-line"]), label="op")
    at = data.draw(st.integers(0, len(text)), label="offset")
    content: str | bytes
    if op == "truncate":
        content = text[:at]
    elif op == "insert":
        content = text[:at] + data.draw(NOISE, label="noise") + text[at:]
    elif op == "delete":
        content = text[:at] + text[at + data.draw(st.integers(1, 8), label="span"):]
    elif op == "bad-byte":
        content = text[:at].encode() + data.draw(st.sampled_from([b"\xff", b"\xc3", b"\x80"])) + text[at:].encode()
    else:
        lines = text.splitlines(keepends=True)
        i = at % len(lines)
        content = "".join(lines[: i + 1] + lines[i:])
    files = _example_files(fmt)
    files[f"{FILES[role]}{SUFFIX[fmt]}"] = content
    with tempfile.TemporaryDirectory() as tmp:
        _check(_write_job(Path(tmp), files))


@settings(FUZZ, max_examples=30)
@given(roles=st.sets(st.sampled_from(sorted(FILES)), min_size=1), mutate=st.booleans(), data=st.data())
def test_json_and_yaml_report_the_same_errors(roles: set[str], mutate: bool, data: st.DataObject) -> None:
    """Swapping files between JSON and YAML changes no error (positions and wording aside)."""
    contents = {role: data.draw(mutated(DATA[role]), label=role) if mutate else DATA[role] for role in roles}
    as_json = _example_files("json")
    as_yaml = _example_files("json")
    for role, value in contents.items():
        as_json[f"{FILES[role]}.json"] = _dump(value, "json")
        del as_yaml[f"{FILES[role]}.json"]
        as_yaml[f"{FILES[role]}.yaml"] = _dump(value, "yaml")
    with tempfile.TemporaryDirectory() as tmp:
        json_errors = _check(_write_job(Path(tmp) / "j", as_json))
        yaml_errors = _check(_write_job(Path(tmp) / "y", as_yaml))
    assert _error_codes(json_errors) == _error_codes(yaml_errors), (
        [str(p) for p in json_errors], [str(p) for p in yaml_errors])
    if not mutate:
        assert json_errors == [] and yaml_errors == []


def test_both_formats_of_one_config_is_an_error_not_a_choice() -> None:
    files = _example_files("json")
    files["app/config/config_fed_client.yaml"] = _dump(DATA["client"], "yaml")
    with tempfile.TemporaryDirectory() as tmp:
        problems = _check(_write_job(Path(tmp), files))
    assert [(p.code, Path(p.position.file).name) for p in problems if p.position] == [
        ("duplicate-config", "config_fed_client.yaml")]
