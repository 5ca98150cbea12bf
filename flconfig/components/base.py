"""What the built-in components share at run time: looking up the components an argument
names (:func:`lookup_component`, :func:`flare_learner`), comparing params to a model's
state (:func:`state_mismatch`), and writing a file atomically (``write_atomic``, from
:mod:`flconfig.files`).

The component interfaces (:class:`Component`, :class:`Learner`, :class:`Executor` ...)
live in :mod:`flconfig.interfaces`, below every layer that uses them; they are
importable from here too, where job code written for flconfig imports them
(``from flconfig.components.base import Learner``).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

from ..errors import JobError
from ..files import write_atomic
from ..interfaces import (
    GLOBAL_MODEL_PROP,
    Aggregator,
    AppEventType,
    Component,
    Controller,
    Executor,
    Filter,
    Learner,
    ModelLocator,
    ModelPersistor,
    ShareableGenerator,
    Widget,
)
from ..types import RunContext

__all__ = [
    # the component interfaces, re-exported for job code (defined in flconfig.interfaces)
    "GLOBAL_MODEL_PROP", "Aggregator", "AppEventType", "Component", "Controller", "Executor",
    "Filter", "Learner", "ModelLocator", "ModelPersistor", "ShareableGenerator", "Widget",
    # what the built-in components share
    "flare_learner", "lookup_component", "state_mismatch", "write_atomic",
]


def site_logger(ctx: Any, fallback: logging.Logger) -> logging.Logger:
    """The logger of the site ``ctx`` runs for (what it logs goes to that site's log), else
    ``fallback``."""
    return getattr(ctx, "log", None) or fallback


def flare_learner(ctx: RunContext, learner_id: str, base: type, flare_path: str) -> Any:
    """The component ``learner_id`` names, which must be an instance of ``base`` (a FLARE
    learner class of flconfig's FLARE API, ``flare_path`` its FLARE path); JobError at the
    site otherwise."""
    learner = ctx.get_component(learner_id)
    what = flare_path.rpartition(".")[2]
    if learner is None:
        raise JobError(f"learner_id '{learner_id}' names no component; add a {what} component with id "
                       f"'{learner_id}' to the client config", getattr(ctx, "site_name", None))
    if not isinstance(learner, base):
        raise JobError(f"learner_id '{learner_id}' names a {type(learner).__name__}, not a FLARE {what} "
                       f"({flare_path})", getattr(ctx, "site_name", None))
    return learner


def lookup_component(ctx: RunContext, owner: str, arg: str, component_id: str, kind: type) -> Any:
    """The component ``component_id`` names, checked to be a ``kind``.

    Raises :class:`~flconfig.errors.JobError` saying which argument of which
    component names nothing, or names a component of the wrong kind.
    """
    component = ctx.get_component(component_id)
    article = "an" if kind.__name__[0] in "AEIOU" else "a"
    if component is None:
        raise JobError(
            f"{owner}: {arg} '{component_id}' names no component; add a component with "
            f"id '{component_id}' ({article} {kind.__name__}) or fix the id"
        )
    if not isinstance(component, kind):
        raise JobError(
            f"{owner}: {arg} '{component_id}' names a {type(component).__name__}, "
            f"not {article} {kind.__name__}"
        )
    return component


def state_mismatch(expected: Mapping[str, Any], given: Mapping[str, Any], limit: int = 5) -> str | None:
    """How ``given`` params fail to fit a model's ``expected`` state dict, or None when they fit.

    Both map names to anything with a ``.shape`` (tensors, arrays):
    ``"missing fc.bias; wrong shape fc.weight (1, 3) (model: (2, 3))"``.
    """
    missing = sorted(set(expected) - set(given))
    unexpected = sorted(set(given) - set(expected))
    wrong = [
        f"{name} {tuple(given[name].shape)} (model: {tuple(expected[name].shape)})"
        for name in sorted(set(expected) & set(given))
        if tuple(given[name].shape) != tuple(expected[name].shape)
    ]
    parts = [f"{label} {', '.join(names[:limit])}" + (f" and {len(names) - limit} more" if len(names) > limit else "")
             for label, names in (("missing", missing), ("unexpected", unexpected), ("wrong shape", wrong)) if names]
    return "; ".join(parts) or None

