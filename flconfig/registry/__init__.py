"""The component registry: which classes a config may name, and what they take.

A component spec names its class by ``path`` (or ``class_path``) or by
``name``. The registry answers for every such value, without importing
anything: the class it stands for, its kind, and its arguments with a JSON
schema for them. Classes come from five places:

* flconfig's built-ins: the public component classes of
  ``flconfig.components.*`` and ``flconfig.examples.*``;
* FLARE class paths, through the alias table :mod:`flconfig.registry.aliases`;
* plugins: the entry-point group ``flconfig.components`` of installed
  packages (entry name = short name, value ``module:Class``);
* the ``custom/`` folder of the app deployed to the participant the registry
  is for (``custom/my_trainer.py`` gives ``my_trainer.SimpleTrainer``, as in
  FLARE) — never another app's, and none at all when the participant does not
  run custom code;
* modules the user allows explicitly (``allowed_modules``, or the
  ``FLCONFIG_ALLOW_MODULES`` environment variable).

Any other path is refused: a config cannot make flconfig import and call
an arbitrary callable such as ``os.system``. Only :mod:`flconfig.common.loader`
imports a component's class: through :meth:`Registry.load_class` (only classes this
registry resolved), or for a run plan's classes when the runtime builds a site.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .arg_schema import annotation_schema
    from .plugins import read_entry_points
    from .registry import (
        ALLOW_ENV,
        ENTRY_POINT_GROUP,
        ID_REFERENCE_KINDS,
        MISSING,
        ArgSpec,
        ComponentInfo,
        Registry,
        ResolveError,
    )

# The package's names, loaded on first use (as flconfig's own): a site's process imports
# :mod:`.flare_modules` to serve FLARE's package to job code, and never the registry itself.
_PUBLIC = {
    "annotation_schema": ".arg_schema", "read_entry_points": ".plugins",
    **{name: ".registry" for name in ("ALLOW_ENV", "ENTRY_POINT_GROUP", "ID_REFERENCE_KINDS", "MISSING",
                                      "ArgSpec", "ComponentInfo", "Registry", "ResolveError")},
}  # fmt: skip

__all__ = [
    "ALLOW_ENV",
    "ENTRY_POINT_GROUP",
    "ID_REFERENCE_KINDS",
    "MISSING",
    "ArgSpec",
    "ComponentInfo",
    "Registry",
    "ResolveError",
    "annotation_schema",
    "read_entry_points",
]


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(f"module 'flconfig.registry' has no attribute {name!r}")
    return getattr(importlib.import_module(module, __name__), name)
