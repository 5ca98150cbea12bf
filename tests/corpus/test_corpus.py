"""A corpus of broken jobs: each reports exactly the problems its expected.json names.

Every folder under ``tests/corpus/`` is the example job (``configs/tensorboard-streaming``
or its YAML twin) with one mistake, described by ``mistake`` in its ``expected.json``.
``problems`` lists, in the order ``inspect_job`` returns them (by file and position),
what must be reported: the file relative to the case folder, line and column (0 for a
problem about a whole file or folder), severity, code, a fragment of the message and,
where given, a fragment of the hint. Nothing else may be reported, warnings included.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest
from harness import TESTS

from flconfig.errors import Problem
from flconfig.validate.loader import inspect_job

CORPUS = TESTS / "corpus"
CASES = sorted(p.name for p in CORPUS.iterdir() if (p / "expected.json").is_file())

#: Files a case would create if flconfig ever called what its config names.
MARKERS = ("os-system-ran.marker", "popen-ran.marker")


def _expected(case: str) -> dict[str, Any]:
    return json.loads((CORPUS / case / "expected.json").read_text(encoding="utf-8"))


def _actual(problem: Problem, case_dir: Path) -> dict[str, Any]:
    pos = problem.position
    assert pos is not None, f"problem without a position: {problem}"
    file = os.path.relpath(Path(pos.file).resolve(), case_dir.resolve())
    return {"file": Path(file).as_posix(), "line": pos.line, "column": pos.column,
            "severity": problem.severity, "code": problem.code,
            "message": problem.message, "hint": problem.hint or ""}


def _matches(actual: dict[str, Any], expected: dict[str, Any]) -> bool:
    exact = ("file", "line", "column", "severity", "code")
    return (all(actual[k] == expected[k] for k in exact)
            and expected["message"] in actual["message"]
            and expected.get("hint", "") in actual["hint"])


def test_the_corpus_is_large_enough() -> None:
    assert len(CASES) >= 45
    assert not [p.name for p in CORPUS.iterdir() if p.is_dir() and p.name not in CASES]


@pytest.mark.parametrize("case", CASES)
def test_case_reports_exactly_its_problems(case: str, tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    # Run from an empty folder: a config that made flconfig run a command would leave a
    # marker file here (the commands in the corpus write relative paths).
    monkeypatch.chdir(tmp_path)
    case_dir = CORPUS / case
    spec = _expected(case)
    assert spec["mistake"] and spec["problems"], "a case names its mistake and what is reported"

    _, problems = inspect_job(case_dir)

    actual = [_actual(p, case_dir) for p in problems]
    shown = "\n".join(str(p) for p in problems) or "(nothing reported)"
    assert len(actual) == len(spec["problems"]), f"{case}: reported\n{shown}"
    for got, want in zip(actual, spec["problems"], strict=True):
        assert _matches(got, want), f"{case}: expected {want}\ngot {got}\nall reported:\n{shown}"
    for got in actual:
        if got["line"]:
            target = case_dir / got["file"]
            assert target.is_file(), f"{case}: a problem points into a missing file: {got}"
            assert got["line"] <= len(target.read_bytes().splitlines()) + 1

    for marker in MARKERS:
        assert not (tmp_path / marker).exists(), f"{case}: validating ran a command"
        assert not (case_dir / marker).exists(), f"{case}: validating ran a command"


def test_os_system_is_refused_and_never_called(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[object] = []
    monkeypatch.setattr(os, "system", lambda *a, **k: calls.append(a) or 0)
    monkeypatch.chdir(tmp_path)
    _, problems = inspect_job(CORPUS / "disallowed-path-os-system")
    assert [p.code for p in problems] == ["path-not-allowed"]
    assert calls == []
    assert not (tmp_path / "os-system-ran.marker").exists()


def test_a_case_is_the_example_job_plus_one_mistake() -> None:
    # The corpus must stay derived from the example: each case still holds an app folder
    # (or says in its mistake why not) and a meta file (or is the missing-meta case).
    for case in CASES:
        folder = CORPUS / case
        metas = [p for p in folder.iterdir() if p.stem == "meta"]
        assert metas or case == "missing-meta", case
        assert (folder / "app").is_dir(), case
