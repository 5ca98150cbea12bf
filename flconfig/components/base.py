"""Base classes that give each component its kind.

The kind decides where a reference may point: a ``learner_id`` must name a
:class:`Learner`, an ``aggregator_id`` an :class:`Aggregator`, and so on.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

from ..api import Event, FLModel, ReturnCode, RunContext, Signal


class Component:
    """Anything a config can build. Receives every event fired on its site."""

    kind: ClassVar[str] = "component"
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
