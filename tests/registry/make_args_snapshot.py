"""Write what the registry says about every built-in class's constructor arguments, as JSON.

``test_builtin_args_snapshot.py`` compares the registry of the tree under test against the
file this script wrote, so that rewriting a constructor (a subclass that forwards its
base's parameters with ``**kwargs`` instead of restating them) cannot change what
``flconfig validate`` accepts, requires, defaults or documents. The snapshot in
``builtin_args_snapshot.json`` was written from the tree before those rewrites; run this
script again only when a change of arguments is meant::

    PYTHONPATH=$PWD python tests/registry/make_args_snapshot.py > tests/registry/builtin_args_snapshot.json

Covered: every built-in component (``Registry.components()``), every FLARE path of the alias
table, and every class of flconfig's FLARE API (``flconfig/compat/nvflare``) as the source
introspection describes it (what a job's class deriving from one of them inherits).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

from flconfig.registry import Registry
from flconfig.registry.aliases import FLARE_ALIASES
from flconfig.registry.introspect import NO_DEFAULT, NOT_LITERAL, Introspector
from flconfig.registry.registry import MISSING, ComponentInfo

COMPAT_ROOT = Path(__file__).resolve().parents[2] / "flconfig" / "compat" / "nvflare"


def _value(value: Any) -> Any:
    """A default as JSON: the sentinels by name, anything not JSON by its ``repr``."""
    if value is MISSING:
        return "<MISSING>"
    if value is NO_DEFAULT:
        return "<NO_DEFAULT>"
    if value is NOT_LITERAL:
        return "<NOT_LITERAL>"
    try:
        return json.loads(json.dumps(value))
    except (TypeError, ValueError):
        return f"<repr {value!r}>"


def _schema(schema: dict[str, Any]) -> dict[str, Any]:
    """The args schema with its ``required`` list sorted (configs pass keywords: order is moot)."""
    out = _value(schema)
    if isinstance(out.get("required"), list):
        out["required"] = sorted(out["required"])
    return out


def component_entry(info: ComponentInfo) -> dict[str, Any]:
    """What validation uses of one component: its arguments, their schema and docs."""
    return {
        "path": info.path,
        "kind": info.kind,
        "kinds": sorted(info.kinds),
        "var_kwargs": info.var_kwargs,
        # The order a job script's positional arguments are matched in (a FLARE stand-in's).
        "order": list(info.args),
        "args": {
            name: {
                "annotation": spec.annotation,
                "required": spec.required,
                "default": _value(spec.default),
                "reference": spec.reference,
            }
            for name, spec in sorted(info.args.items())
        },
        "args_schema": _schema(info.args_schema),
    }


def compat_modules() -> list[str]:
    """Every module of flconfig's FLARE API, as ``flconfig.compat.nvflare....``."""
    modules = []
    for file in sorted(COMPAT_ROOT.rglob("*.py")):
        parts = list(file.relative_to(COMPAT_ROOT).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        modules.append(".".join(["flconfig", "compat", "nvflare", *parts]))
    return modules


def compat_entries() -> dict[str, Any]:
    """Every class of the FLARE API as the introspection reads it from source."""
    introspector = Introspector()
    out: dict[str, Any] = {}
    for module in compat_modules():
        for name in introspector.class_names(module) or []:
            description = introspector.describe(module, name)
            if description is None or description.path != f"{module}.{name}":
                continue
            params = description.params
            out[description.path] = {
                "kind": description.kind,
                "var_kwargs": description.var_kwargs,
                # Keyword-only parameters have no order a caller can see.
                "order": None
                if params is None
                else [p.name for p in params if p.kind == "positional_or_keyword"],
                "params": None
                if params is None
                else {
                    p.name: {"annotation": p.annotation, "default": _value(p.default)}
                    for p in sorted(params, key=lambda p: p.name)
                    if p.kind != "positional_only"
                },
                "arg_docs": {
                    k: v
                    for k, v in sorted(description.arg_docs.items())
                    if params is None or k in {p.name for p in params}
                },
            }
    return out


def snapshot() -> dict[str, Any]:
    """The whole snapshot: built-ins, FLARE aliases (as what they resolve to), compat classes."""
    registry = Registry.create(environ={})
    return {
        "components": {info.path: component_entry(info) for info in registry.components()},
        "flare_aliases": {
            alias: registry.resolve("path", alias).path for alias in sorted(FLARE_ALIASES)
        },
        "compat": compat_entries(),
    }


if __name__ == "__main__":
    json.dump(snapshot(), sys.stdout, indent=1, sort_keys=True)
    sys.stdout.write("\n")
