"""Base classes that give each component its kind.

The kind decides where a reference may point: a ``learner_id`` must name a
:class:`Learner`, an ``aggregator_id`` an :class:`Aggregator`, and so on.

Declaring a component to the validator
--------------------------------------
``flconfig validate`` describes components from their source code, without
importing them (see :mod:`flconfig.introspect`). It reads the ``__init__``
signature with its type hints, and these class attributes, which must
therefore be plain literals (strings, lists, dicts) written in the class body:

``kind``
    What the component is (``"learner"``, ``"aggregator"`` ...). Inherited
    from the base classes below; a subclass rarely sets it.
``REFERENCES``
    ``{"arg": "kind"}`` for arguments that name another component but do not
    end in ``_id``. ``PTFileModelPersistor`` declares ``{"model": "model"}``:
    a string ``model`` is the id of a component of kind ``model``.
``ARGS_SCHEMA``
    ``{"arg": {...JSON schema...}}`` to state an argument's type more
    precisely than its type hint can (an enum, a range ...). It replaces the
    schema derived from the hint for that argument.
``EMITS_ARG``
    On event senders: the argument holding the event type the component
    fires (``AnalyticsSender``: ``"event_type"``).
``CONVERTS_ARG`` / ``PREFIX_ARG``
    On converters: the argument listing the local events turned into fed
    events, and the one holding the prefix they get (``ConvertToFedEvent``).
``LISTENS_ARG`` / ``DEFAULT_EVENTS``
    On receivers: the argument listing the events received, and the events
    received when the config leaves it out.

The event checker follows event names through these attributes, so a sender
whose event no converter or receiver handles is reported before anything runs.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..api import Event, FLModel, ReturnCode, RunContext, Signal


class Component:
    """Anything a config can build. Receives every event fired on its site."""

    kind: ClassVar[str] = "component"
    #: Arguments not ending in ``_id`` that name another component: ``{"arg": "kind"}``.
    REFERENCES: ClassVar[dict[str, str]] = {}
    #: JSON-schema fragments that refine argument types: ``{"arg": {...}}``.
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {}
    #: The id the config gave this component (set when the job is built).
    id: str = ""

    def handle_event(self, event: Event, ctx: RunContext) -> None:
        """Called for every event on this component's site, in build order."""


class Learner(Component):
    """Trains and validates a model at a site (FLARE's Learner API)."""

    kind = "learner"

    def initialize(self, parts: Mapping[str, Any], ctx: RunContext) -> None:
        """Called once before the first task; ``parts`` are the site's components by id."""

    def train(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        return FLModel.error(ReturnCode.TASK_UNSUPPORTED)

    def validate(self, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        return FLModel.error(ReturnCode.TASK_UNSUPPORTED)

    def get_model_for_validation(self, model_name: str, ctx: RunContext) -> FLModel:
        return FLModel.error(ReturnCode.TASK_UNSUPPORTED)

    def abort(self, ctx: RunContext) -> None:
        """Asked from another thread to stop the current task."""

    def finalize(self, ctx: RunContext) -> None:
        """Called once at the end of the run."""


class Executor(Component):
    """Runs the tasks a site is given."""

    kind = "executor"

    def execute(self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal) -> FLModel:
        raise NotImplementedError


class Controller(Component):
    """A server workflow; workflows run one after another, in config order."""

    kind = "workflow"


class Aggregator(Component):
    """Combines the results sites send back into one model."""

    kind = "aggregator"


class ShareableGenerator(Component):
    """Turns the global model into task data, and aggregated results back into a model."""

    kind = "shareable_generator"


class ModelPersistor(Component):
    """Loads the initial global model and saves it as training goes."""

    kind = "persistor"


class ModelLocator(Component):
    """Finds the server's models for cross-site evaluation."""

    kind = "model_locator"


class Filter(Component):
    """Transforms task data or task results on their way in or out."""

    kind = "filter"

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        return data


class Widget(Component):
    """A helper that only reacts to events."""

    kind = "widget"


# Argument checks shared by the built-in components. Constructors raise
# TypeError for a value of the wrong type and ValueError for a bad value, as
# FLARE's do; the builder reports both against the config line.


def check_str(name: str, value: Any, *, empty: bool = False) -> str:
    """Return ``value`` if it is a string (non-empty unless ``empty``)."""
    if not isinstance(value, str):
        raise TypeError(f"{name} must be a string, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{name} must not be empty")
    return value


def check_optional_str(name: str, value: Any) -> str | None:
    """Return ``value`` if it is None or a non-empty string."""
    return None if value is None else check_str(name, value)


def check_int(name: str, value: Any, *, minimum: int | None = 0) -> int:
    """Return ``value`` if it is an int (not a bool) and at least ``minimum``."""
    if isinstance(value, bool) or not isinstance(value, int):
        raise TypeError(f"{name} must be an integer, got {type(value).__name__}")
    if minimum is not None and value < minimum:
        raise ValueError(f"{name} must be >= {minimum}, got {value}")
    return value


def check_number(name: str, value: Any, *, positive: bool = False) -> float:
    """Return ``value`` as a float if it is a non-negative (or positive) number."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise TypeError(f"{name} must be a number, got {type(value).__name__}")
    if value < 0 or (positive and value == 0):
        raise ValueError(f"{name} must be {'> 0' if positive else '>= 0'}, got {value}")
    return float(value)


def check_bool(name: str, value: Any) -> bool:
    """Return ``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise TypeError(f"{name} must be true or false, got {type(value).__name__}")
    return value


def check_str_list(name: str, value: Any, *, empty: bool = False) -> list[str]:
    """Return a copy of ``value`` if it is a list of non-empty strings."""
    if not isinstance(value, (list, tuple)):
        raise TypeError(f"{name} must be a list of strings, got {type(value).__name__}")
    if not empty and not value:
        raise ValueError(f"{name} must not be empty")
    for i, item in enumerate(value):
        check_str(f"{name}[{i}]", item)
    return list(value)


def check_relative_path(name: str, value: Any) -> str:
    """Return ``value`` if it is a relative path that stays inside its root.

    Output folders are joined to the run directory; an absolute path or a
    ``..`` part would write outside it.
    """
    check_str(name, value)
    parts = value.replace("\\", "/").split("/")
    if value.startswith(("/", "\\")) or (len(value) > 1 and value[1] == ":"):
        raise ValueError(f"{name} must be a relative path, got {value!r}")
    if ".." in parts:
        raise ValueError(f"{name} must not contain '..', got {value!r}")
    return value


def check_file_name(name: str, value: Any) -> str:
    """Return ``value`` if it is a plain file name (no folder part)."""
    check_str(name, value)
    if "/" in value or "\\" in value or value in (".", ".."):
        raise ValueError(f"{name} must be a file name without a folder, got {value!r}")
    return value
