"""MkDocs hook: the reference pages made from the code itself, at build time.

``<!-- flconfig:components -->`` in a page becomes every component a config may name, by
kind, with its arguments (the registry's catalog, as ``flconfig components`` prints it);
``<!-- flconfig:schema KIND -->`` becomes the fields of that JSON Schema (meta, client,
server) with their descriptions; ``<!-- flconfig:explain FOLDER -->`` becomes the Mermaid
flowchart ``flconfig explain FOLDER --format mermaid`` prints for that job of the repository.
So the reference never drifts from what validate checks, nor the picture from the job.
"""

from __future__ import annotations

import html
import json
import re
from pathlib import Path
from typing import Any

from flconfig.registry.catalog import a_kind, catalog
from flconfig.registry.registry import Registry
from flconfig.schemas import load_schema
from flconfig.validate.explain import as_mermaid, explain
from flconfig.validate.loader import inspect_job

_MARKER = re.compile(r"<!-- flconfig:(components|schema (\w+)|explain (\S+)) -->")
#: The repository: a job named by an explain marker is a folder of it.
REPO = Path(__file__).resolve().parents[2]


def on_page_markdown(markdown: str, **_: Any) -> str:
    """Replace each marker of the page with what it stands for."""
    def replace(m: re.Match[str]) -> str:
        if m.group(1) == "components":
            return components()
        return schema(m.group(2)) if m.group(2) else flowchart(m.group(3))

    return _MARKER.sub(replace, markdown)


def flowchart(folder: str) -> str:
    """The Mermaid flowchart of the repository's job ``folder``, as a fenced block."""
    job, problems = inspect_job(str(REPO / folder), environ={})
    errors = [p for p in problems if p.is_error]
    if job is None or errors:
        raise ValueError(f"docs: {folder} does not validate: {errors[0] if errors else 'unreadable'}")
    return f"```mermaid\n{as_mermaid(explain(job)).rstrip()}\n```"


def _cell(text: str) -> str:
    return text.replace("|", "&#124;").replace("\n", " ")


def _code(text: str) -> str:
    """Inline code in a table cell: HTML, so that a ``|`` in it neither ends the cell nor shows a backslash."""
    return f"<code>{html.escape(text).replace('|', '&#124;')}</code>"


def components() -> str:
    """Every built-in component by kind: its FLARE paths, doc and arguments."""
    out: list[str] = []
    kind = None
    for entry in catalog(Registry.create(environ={})):
        if entry.kind != kind:
            kind = entry.kind
            out += [f"## {kind.replace('_', ' ')}", ""]
        out += [f"### {entry.name}", "", entry.doc, "", f"- path: `{entry.path}`"]
        out += [f"- FLARE: `{path}`" for path in entry.flare_paths]
        out.append("")
        if entry.arguments:
            out += ["| argument | type | default | |", "|---|---|---|---|"]
            for arg in entry.arguments:
                default = "required" if arg.required else _code(json.dumps(arg.default))
                refers = f" The id of {a_kind(arg.references)}." if arg.references else ""
                out.append(f"| `{arg.name}` | {_code(arg.type) if arg.type else '-'} | {default} | "
                           f"{_cell(arg.doc)}{refers} |")
            out.append("")
    return "\n".join(out)


def schema(kind: str) -> str:
    """The top-level fields of the ``kind`` schema, with their descriptions."""
    loaded = load_schema(kind)
    rows = ["| field | |", "|---|---|"]
    for name, prop in loaded.get("properties", {}).items():
        if isinstance(prop, dict):
            rows.append(f"| `{name}` | {_cell(str(prop.get('description', '')))} |")
    required = loaded.get("required", [])
    lead = f"Required: {', '.join(f'`{r}`' for r in required)}.\n\n" if required else ""
    return lead + "\n".join(rows)
