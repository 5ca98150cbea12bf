"""A job written from Python, checked before anything runs, with validate's report.

Each problem found in a generated config is shown at the line of the job script that made
the component, and says where in the generated config it is
(``job.py:14:1: error: argument 'num_rounds' of FedAvg must be an integer ... (in
app/config/config_fed_server.json:8:22)``); problems of the export itself (an argument that
cannot be recovered) are at the script's line already.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import sys
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import TextIO

from ...errors import FlconfigError, JsonPath, Position, Problem, display_path, errors_only
from ...validate.loader import inspect_job
from .export import Authored, Provenance
from .roots import job_roots


class JobInvalid(FlconfigError):
    """The job a script built is invalid; ``problems`` is validate's report of it."""

    def __init__(self, problems: Sequence[Problem], folder: Path | None = None) -> None:
        self.problems = list(problems)
        self.folder = folder
        super().__init__(f"the job is invalid: {len(errors_only(self.problems))} error(s)")


@contextlib.contextmanager
def outside_job() -> Iterator[None]:
    """While it lasts, this process sees installed modules as a site does: not the job
    script's folder (on ``sys.path`` as ``python job.py`` puts it there) nor the job's own
    modules the script imported (``model``): those are the job's ``custom/`` code, not
    installed packages that would shadow it."""

    roots = [str(r) for r in job_roots()]

    def under_roots(path: str | None) -> bool:
        if not path:
            return False
        real = os.path.realpath(path)
        return any(real == r or real.startswith(r + os.sep) for r in roots)

    saved_path = list(sys.path)
    def own(module: object) -> bool:
        places: list[object] = [getattr(module, "__file__", None)]
        try:
            places += list(module.__path__)  # type: ignore[attr-defined]  # a (namespace) package's folders
        except Exception:  # noqa: BLE001 - no __path__, or one that is not a list (torch._classes)
            pass
        return any(under_roots(p) for p in places if isinstance(p, str))

    hidden = {name: module for name, module in sys.modules.items() if name != "__main__" and own(module)}
    sys.path[:] = [p for p in sys.path if p and not under_roots(p)]
    for name in hidden:
        del sys.modules[name]
    importlib.invalidate_caches()
    try:
        yield
    finally:
        sys.path[:] = saved_path
        sys.modules.update(hidden)


def check(folder: Path, provenance: dict[str, Provenance], export_problems: Sequence[Problem],
          *, participant: str | None = None, allow_custom_code: bool = True) -> list[Problem]:
    """Validate the job folder written from Python; its problems at the job script's lines."""

    with outside_job():
        _, problems = inspect_job(folder, participant=participant, allow_custom_code=allow_custom_code)
    mapped = [_at_script(p, folder, provenance) for p in problems]
    out = list(export_problems) + mapped
    out.sort(key=lambda p: (p.position is None, *(p.sort_key())))
    return out


def _at_script(problem: Problem, folder: Path, provenance: dict[str, Provenance]) -> Problem:
    if problem.position is None:
        return problem
    real = os.path.realpath(problem.position.file)
    root = os.path.realpath(folder)
    if not real.startswith(root + os.sep):
        return problem
    rel = Path(os.path.relpath(real, root)).as_posix()
    table = provenance.get(rel)
    authored = _longest(table, problem.json_path) if table else None
    if authored is None or authored.file is None:
        return problem
    where = f"{display_path(problem.position.file)}:{problem.position.line}:{problem.position.column}"
    return Problem(problem.severity, problem.code, f"{problem.message} (in {where})",
                   Position(display_path(authored.file), authored.line or 0, 1), problem.json_path,
                   problem.hint)


def _longest(table: Provenance, path: JsonPath) -> Authored | None:
    for end in range(len(path), 0, -1):
        found = table.get(tuple(path[:end]))
        if found is not None:
            return found
    return None


def say_problems(problems: Sequence[Problem], out: TextIO | None = None) -> None:
    """Print ``problems`` as validate does (nothing when there are none)."""
    if not problems:
        return
    stream = out or sys.stderr
    for problem in problems:
        stream.write(f"{problem}\n")
    errors = len(errors_only(problems))
    warnings = len(problems) - errors
    parts = [f"{errors} error{'s' if errors != 1 else ''}" if errors else "",
             f"{warnings} warning{'s' if warnings != 1 else ''}" if warnings else ""]
    stream.write(f"the job: {', '.join(p for p in parts if p)}\n")
    stream.flush()
