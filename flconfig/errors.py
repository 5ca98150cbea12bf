"""Problems found in job folders, and the two exceptions that carry them.

Checks collect :class:`Problem` values; library code raises :class:`ConfigError`
(files, schemas, wiring) or :class:`JobError` (run time) holding them; only the
CLI prints and exits.
"""

from __future__ import annotations

import difflib
import os
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

Severity = Literal["error", "warning"]
JsonPath = tuple[str | int, ...]


@dataclass(frozen=True, order=True)
class Position:
    """A place in a file: 1-based line and column."""

    file: str
    line: int = 0
    column: int = 0

    def __str__(self) -> str:
        if self.line <= 0:
            return self.file
        return f"{self.file}:{self.line}:{self.column}"


def display_path(path: str | os.PathLike[str]) -> str:
    """How a path is shown in a problem: relative to the working folder when below it."""
    try:
        rel = os.path.relpath(path)
    except ValueError:
        return str(path)
    return rel if not rel.startswith("..") else str(path)


def format_json_path(path: JsonPath) -> str:
    """Render ``("components", 0, "args", "lr")`` as ``components[0].args.lr``."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


@dataclass(frozen=True)
class Problem:
    """One thing wrong (or suspicious) in a job, with where it is and how to fix it.

    ``code`` is a stable, machine-readable kind (``syntax``, ``schema``,
    ``unknown-arg``, ``dangling-ref`` ...); ``hint`` says what to do next.
    """

    severity: Severity
    code: str
    message: str
    position: Position | None = None
    json_path: JsonPath = ()
    hint: str | None = None

    @property
    def is_error(self) -> bool:
        return self.severity == "error"

    def sort_key(self) -> tuple[str, int, int, str]:
        pos = self.position or Position("")
        return (pos.file, pos.line, pos.column, self.message)

    def __str__(self) -> str:
        where = f"{self.position}: " if self.position else ""
        path = f" [{format_json_path(self.json_path)}]" if self.json_path else ""
        text = f"{where}{self.severity}: {self.message}{path}"
        if self.hint:
            text += f"\n    hint: {self.hint}"
        return text

    def to_dict(self) -> dict[str, object]:
        pos = self.position
        return {
            "file": pos.file if pos else None,
            "line": pos.line if pos else None,
            "column": pos.column if pos else None,
            "severity": self.severity,
            "code": self.code,
            "message": self.message,
            "json_path": format_json_path(self.json_path),
            "hint": self.hint,
        }


class FlconfigError(Exception):
    """Base of every error flconfig raises on purpose."""


class ConfigError(FlconfigError):
    """A job's files, schemas or wiring are wrong. Holds every problem found."""

    def __init__(self, problems: Problem | Sequence[Problem]):
        self.problems: list[Problem] = (
            [problems] if isinstance(problems, Problem) else list(problems)
        )
        super().__init__("\n".join(str(p) for p in self.problems) or "invalid configuration")

    @classmethod
    def single(
        cls,
        code: str,
        message: str,
        position: Position | None = None,
        json_path: JsonPath = (),
        hint: str | None = None,
    ) -> ConfigError:
        return cls(Problem("error", code, message, position, json_path, hint))


class JobError(FlconfigError):
    """A job failed while running: which site, and why."""

    def __init__(self, message: str, site: str | None = None):
        self.site = site
        #: The message without the site prefix.
        self.message = message
        super().__init__(f"{site}: {message}" if site else message)


class LaunchError(FlconfigError):
    """A job could not be launched (bad options, an invalid job); carries the problems."""

    def __init__(self, message: str, problems: Sequence[Problem] = ()):
        super().__init__(message)
        self.problems = list(problems)


class ImportFailure(FlconfigError):
    """A resolved class could not be imported; ``message`` says why, ``hint`` what to do."""

    def __init__(self, message: str, hint: str) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint


class StorageError(JobError):
    """Records could not be written (a full disk, a read-only folder). Nothing of the
    failed write is left behind: the caller keeps the records and may try again."""


def storage_message(exc: OSError, where: str | object) -> str:
    """One line for a failed write: ``no space left on device in WHERE`` for a full disk."""
    import errno

    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return f"no space left on device in {where}"
    if exc.errno == errno.EROFS:
        return f"read-only file system: cannot write in {where}"
    return f"cannot write in {where}: {exc.strerror or exc}"


def relocate(problems: Iterable[Problem], folder: str | os.PathLike[str], shown: str) -> list[Problem]:
    """``problems`` found in the copy of a job at ``folder`` (a server's or a site's own
    path), with every mention of that folder — in positions, messages and hints, in any
    of the forms messages use (absolute, resolved, relative to the working folder) —
    shown as ``shown`` instead (the path the admin submitted; ``""`` for paths relative to
    the job folder). What travels to an admin then names no path of the machine that
    checked the job."""
    forms = {str(folder), os.path.realpath(folder), os.path.abspath(folder), display_path(folder)}
    prefixes = sorted(forms - {"", "."}, key=len, reverse=True)

    def fix(text: str | None) -> str | None:
        if not text:
            return text
        for prefix in prefixes:
            if shown:
                text = text.replace(prefix, shown.rstrip("/"))
            else:
                text = text.replace(prefix + os.sep, "").replace(prefix, ".")
        return text

    out = []
    for p in problems:
        position = p.position
        if position is not None:
            position = Position(fix(position.file) or position.file, position.line, position.column)
        out.append(Problem(p.severity, p.code, fix(p.message) or p.message, position, p.json_path,
                           fix(p.hint)))
    return out


def errors_only(problems: Iterable[Problem]) -> list[Problem]:
    """The problems that make a job invalid (warnings left out)."""
    return [p for p in problems if p.is_error]


def closest(word: str, options: Iterable[str], *, cutoff: float = 0.6,
            ignore_case: bool = False) -> str | None:
    """The option most like ``word`` (difflib's ratio at least ``cutoff``), or None.

    The one "did you mean" rule of every message flconfig prints.
    """
    choices = sorted(set(options))
    if ignore_case:
        lowered = {c.lower(): c for c in choices}
        match = difflib.get_close_matches(word.lower(), list(lowered), n=1, cutoff=cutoff)
        return lowered[match[0]] if match else None
    match = difflib.get_close_matches(word, choices, n=1, cutoff=cutoff)
    return match[0] if match else None


def did_you_mean(word: str, options: Iterable[str]) -> str | None:
    """``"did you mean 'x'?"`` for the option closest to ``word``, or None."""
    match = closest(word, options)
    return f"did you mean '{match}'?" if match else None
