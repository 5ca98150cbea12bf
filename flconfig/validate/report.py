"""Print problems for people (text) or for CI (JSON)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TextIO

from ..errors import Problem


def summary(problems: Sequence[Problem], checked: int) -> str:
    errors = sum(p.is_error for p in problems)
    warnings = len(problems) - errors
    what = f"{checked} job{'s' if checked != 1 else ''} checked"
    if not problems:
        return f"{what}: no problems found"
    parts = []
    if errors:
        parts.append(f"{errors} error{'s' if errors != 1 else ''}")
    if warnings:
        parts.append(f"{warnings} warning{'s' if warnings != 1 else ''}")
    return f"{what}: {', '.join(parts)}"


def write_text(problems: Sequence[Problem], checked: int, out: TextIO) -> None:
    """``file:line:col: error: message [json.path]`` and a hint line per problem, then a summary."""
    for problem in problems:
        out.write(f"{problem}\n")
    out.write(summary(problems, checked) + "\n")


def write_json(problems: Sequence[Problem], checked: int, out: TextIO) -> None:
    """One JSON object: the problems and the counts."""
    errors = sum(p.is_error for p in problems)
    json.dump({
        "valid": errors == 0,
        "checked": checked,
        "errors": errors,
        "warnings": len(problems) - errors,
        "problems": [p.to_dict() for p in problems],
    }, out, indent=2)
    out.write("\n")
