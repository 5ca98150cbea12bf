"""The component interfaces: the base classes that give each component its kind, the
events the built-in workflows fire, and the name of the global model in a context's props.

Every layer may import them (job code, the built-in components, FLARE's API, tracking);
this module imports only :mod:`flconfig.types`. Job code may keep
importing them from :mod:`flconfig.components.base`.

The kind decides where a reference may point: a ``learner_id`` must name a
:class:`Learner`, an ``aggregator_id`` an :class:`Aggregator`, and so on.

Declaring a component to the validator
--------------------------------------
``flconfig validate`` describes components from their source code, without
importing them (see :mod:`flconfig.registry.introspect`). It reads the ``__init__``
signature with its type hints, and these class attributes, which must
therefore be plain literals (strings, lists, dicts) written in the class body:

``kind``
    What the component is (``"learner"``, ``"aggregator"`` ...). Inherited
    from the base classes below; a subclass rarely sets it.
``REFERENCES``
    ``{"arg": "kind"}`` for arguments that name another component but do not
    end in ``_id``. ``PTFileModelPersistor`` declares ``{"model": "model"}``:
    a string ``model`` is the id of a component of kind ``model``. ``{"arg_id": ""}``
    says an argument ending in ``_id`` names no component (ClientAPIExecutor's
    ``attach_id``).
``ARGS_SCHEMA``
    ``{"arg": {...JSON schema...}}`` to say more about an argument than its
    type hint can: ``{"minimum": 0}``, ``{"minLength": 1}``, a ``pattern``
    with a ``patternErrorMessage``, ``{"format": "regex"}``. It refines the
    schema derived from the hint (the hint's type, the docstring's
    description and the default stay); an entry that states the type itself
    (``type``, ``anyOf``, ``enum`` ...) replaces the hint's typing. A
    subclass's entries are added to its bases'.

    This is the one description of an argument: ``flconfig validate`` checks
    the config's args with it, and ``flconfig launch`` checks them again once
    every site's variables are resolved, before anything is built. The
    built-in constructors therefore do not check their args again; they
    check only what one argument's schema cannot say (two task names that
    must differ ...), and paths joined to the run directory are checked
    where they are joined (:func:`flconfig.files.inside`), whatever built
    the component.
``EMITS_ARG``
    On event senders: the argument holding the event type the component
    fires (``AnalyticsSender``: ``"event_type"``).
``CONVERTS_ARG`` / ``PREFIX_ARG``
    On converters: the argument listing the local events turned into fed
    events, and the one holding the prefix they get (``ConvertToFedEvent``).
``LISTENS_ARG`` / ``DEFAULT_EVENTS``
    On receivers: the argument listing the events received, and the events
    received when the config leaves it out.
``DEFAULT_REF_OPTIONAL``
    ``{"arg_id": "other_arg"}``: the default of ``arg_id`` may name no component when
    ``other_arg`` is written (``"*"``: always) — the class does without it (FedAvg's
    ``persistor_id`` when its ``model`` is given).
``PLAIN_DICT_ARGS``
    Arguments that take a plain dict even when it holds a ``path`` (FedOpt's
    ``optimizer_args``): never built as a nested component.

The event checker follows event names through these attributes, so a sender
whose event no converter or receiver handles is reported before anything runs.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import Any, ClassVar

from .types import Event, FLModel, ReturnCode, RunContext, Signal

#: The key of ``RunContext.props`` under which a server workflow keeps the current global
#: model (an :class:`FLModel`); shareable generators and FLARE-API controllers read it.
GLOBAL_MODEL_PROP = "global_model"


class AppEventType:
    """Events the built-in workflows fire on the server, under FLARE's names.

    Every component on the server receives them through ``handle_event``;
    ``event.data`` is described with each one.
    """

    #: The initial global model is loaded; data: the model (:class:`FLModel`).
    INITIAL_MODEL_LOADED = "_initial_model_loaded"
    #: A site's train result is about to be given to the aggregator; data:
    #: ``{"site": str, "result": FLModel}``.
    BEFORE_CONTRIBUTION_ACCEPT = "_before_contribution_accept"
    #: The aggregator took or refused a result; data: ``{"site", "result", "accepted": bool}``.
    AFTER_CONTRIBUTION_ACCEPT = "_after_contribution_accept"
    #: The round's results are in; aggregation starts. Data: ``{"current_round", "sites"}``.
    BEFORE_AGGREGATION = "_before_aggregation"
    #: Aggregation is done; data: the aggregated :class:`FLModel`.
    END_AGGREGATION = "_end_aggregation"
    #: Fired right after ``END_AGGREGATION`` with the same data, under the name FLARE 2.9's
    #: workflows use (``MetricsArtifactWriter`` and FLARE-API widgets listen to it).
    AFTER_AGGREGATION = "_after_aggregation"
    #: The global model sent this round validated better than any before;
    #: data: that model, with ``meta["validation_metric"]`` set. Persistors save it as "best".
    GLOBAL_BEST_MODEL_AVAILABLE = "_global_best_model_available"
    #: A site returned the validation of one model in cross-site evaluation;
    #: data: ``{"model_owner": str, "data_client": str, "result": FLModel}``.
    VALIDATION_RESULT_RECEIVED = "_validation_result_received"


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
        """Called for every event on this component's site, in build order.

        ``event.type`` is one of :class:`flconfig.types.EventType`,
        :class:`AppEventType` or a job's own event name. An exception is
        logged and does not stop the other handlers.
        """


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


class Executor(Component, ABC):
    """Runs the tasks a site is given.

    The client calls :meth:`execute` for each task whose name the config's
    ``executors[].tasks`` routes to this executor, one task at a time, and
    sends the returned model back to the server.
    """

    kind = "executor"

    @abstractmethod
    def execute(
        self, task_name: str, data: FLModel, ctx: RunContext, abort_signal: Signal
    ) -> FLModel:
        """Run task ``task_name`` on ``data`` and return its result.

        A failure the server should hear about is a result whose ``rc`` is not
        ``OK`` (``FLModel.error(ReturnCode..., message)``); ``abort_signal``
        is triggered when the task is cancelled.
        """


class Controller(Component, ABC):
    """A server workflow; workflows run one after another, in config order.

    For each workflow the server calls :meth:`start_controller`, then
    :meth:`control_flow`, then :meth:`stop_controller` (also when
    ``control_flow`` raised), after firing ``START_RUN``. Tasks go to the
    sites through ``ctx.comm`` (``broadcast_and_wait`` / ``send_and_wait``).
    A workflow that cannot go on raises :class:`~flconfig.errors.JobError`.
    """

    kind = "workflow"

    @abstractmethod
    def start_controller(self, ctx: RunContext) -> None:
        """Look up the components this workflow uses and prepare its state."""

    @abstractmethod
    def control_flow(self, abort_signal: Signal, ctx: RunContext) -> None:
        """Run the workflow; return early once ``abort_signal`` is triggered."""

    @abstractmethod
    def stop_controller(self, ctx: RunContext) -> None:
        """Release what :meth:`start_controller` set up."""


class Aggregator(Component, ABC):
    """Combines the results sites send back into one model.

    Per round: :meth:`reset`, then :meth:`accept` for each site's result as
    it arrives, then :meth:`aggregate` once.
    """

    kind = "aggregator"

    @abstractmethod
    def accept(self, site: str, result: FLModel, ctx: RunContext) -> bool:
        """Take ``site``'s result into this round's aggregate; False (logged why) to refuse it."""

    @abstractmethod
    def aggregate(self, ctx: RunContext) -> FLModel:
        """The aggregate of the accepted results; raises JobError when there are none."""

    @abstractmethod
    def reset(self, ctx: RunContext) -> None:
        """Forget the accepted results (a new round starts)."""


class ShareableGenerator(Component, ABC):
    """Turns the global model into task data, and aggregated results back into a model."""

    kind = "shareable_generator"

    @abstractmethod
    def learnable_to_shareable(self, model: FLModel, ctx: RunContext) -> FLModel:
        """The task data that sends the global ``model`` to the sites."""

    @abstractmethod
    def shareable_to_learnable(self, aggregated: FLModel, ctx: RunContext) -> FLModel:
        """The next global model from an aggregate and the current global
        model (``ctx.props["global_model"]``)."""


class ModelPersistor(Component, ABC):
    """Loads the initial global model and saves it as training goes.

    :meth:`get_model` and :meth:`model_names` offer the saved models to
    cross-site evaluation (through a :class:`ModelLocator`); a persistor
    that keeps no files can leave them as they are.
    """

    kind = "persistor"

    @abstractmethod
    def load(self, ctx: RunContext) -> FLModel:
        """The initial global model (empty ``params`` if there is none)."""

    @abstractmethod
    def save(self, model: FLModel, ctx: RunContext) -> None:
        """Persist the global ``model``."""

    def get_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The saved model called ``name`` (one of :meth:`model_names`), or None."""
        return None

    def model_names(self, ctx: RunContext) -> list[str]:
        """Names of the models saved so far."""
        return []


class ModelLocator(Component, ABC):
    """Finds the server's models for cross-site evaluation."""

    kind = "model_locator"

    @abstractmethod
    def get_model_names(self, ctx: RunContext) -> list[str]:
        """Names of the server's models that can be evaluated."""

    @abstractmethod
    def locate_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The model called ``name``, or None if it cannot be found."""


class Filter(Component):
    """Transforms task data or task results on their way in or out."""

    kind = "filter"

    def process(self, data: FLModel, ctx: RunContext) -> FLModel:
        return data


class Widget(Component):
    """A helper that only reacts to events."""

    kind = "widget"
