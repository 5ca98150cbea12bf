"""Experiment tracking: senders that fire metric events, the converter that makes
them federated, and receivers that write them out.

Constructors only; the streaming behaviour lives with the transport. The
class attributes ``EMITS_ARG``, ``CONVERTS_ARG``/``PREFIX_ARG`` and
``LISTENS_ARG``/``DEFAULT_EVENTS`` tell the validator which arguments carry
event names (see :mod:`flconfig.components.base`).
"""

from __future__ import annotations

from typing import ClassVar

from .base import (
    Widget,
    check_file_name,
    check_optional_str,
    check_relative_path,
    check_str,
    check_str_list,
)

#: The local event a sender fires for each metric (FLARE's name).
ANALYTICS_EVENT = "analytix_log_stats"


class AnalyticsSender(Widget):
    """What a learner logs metrics with: each call fires the local event
    ``event_type`` carrying the record (FLARE's ``AnalyticsSender``).
    """

    kind = "analytics_sender"
    EMITS_ARG: ClassVar[str] = "event_type"

    def __init__(self, event_type: str = "analytix_log_stats") -> None:
        """
        Args:
            event_type: the local event fired for each record.
        """
        self.event_type = check_str("event_type", event_type)


class TBWriter(AnalyticsSender):
    """An :class:`AnalyticsSender` under FLARE's TensorBoard-writer name, with
    SummaryWriter's method names (FLARE's ``TBWriter``).
    """


class ConvertToFedEvent(Widget):
    """Re-fires the listed local events as federated events, named with a
    prefix, so they reach the server (FLARE's ``ConvertToFedEvent``).
    """

    CONVERTS_ARG: ClassVar[str] = "events_to_convert"
    PREFIX_ARG: ClassVar[str] = "fed_event_prefix"

    def __init__(self, events_to_convert: list[str], fed_event_prefix: str = "fed.") -> None:
        """
        Args:
            events_to_convert: the local events to forward.
            fed_event_prefix: prefix of the federated events' names:
                ``analytix_log_stats`` becomes ``fed.analytix_log_stats``.
        """
        self.events_to_convert = check_str_list("events_to_convert", events_to_convert)
        self.fed_event_prefix = check_str("fed_event_prefix", fed_event_prefix)


class AnalyticsReceiver(Widget):
    """Base of the receivers: handles the listed events, local or federated, and
    saves each record with the site it came from (FLARE's ``AnalyticsReceiver``).
    """

    kind = "receiver"
    LISTENS_ARG: ClassVar[str] = "events"
    DEFAULT_EVENTS: ClassVar[list[str]] = ["analytix_log_stats", "fed.analytix_log_stats"]

    def __init__(self, events: list[str] | None = None) -> None:
        """
        Args:
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        self.events = (
            list(self.DEFAULT_EVENTS) if events is None else check_str_list("events", events)
        )


class TBAnalyticsReceiver(AnalyticsReceiver):
    """Writes the records into TensorBoard event files, one folder per site
    (FLARE's ``TBAnalyticsReceiver``).
    """

    def __init__(self, tb_folder: str = "tb_events", events: list[str] | None = None) -> None:
        """
        Args:
            tb_folder: folder, relative to the run directory, holding one
                sub-folder of event files per site.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        super().__init__(events)
        self.tb_folder = check_relative_path("tb_folder", tb_folder)


class JsonLinesReceiver(AnalyticsReceiver):
    """Appends each record as one JSON line, with its site, to a file in the
    run directory: a tracker that needs no extra package.
    """

    def __init__(self, file_name: str = "analytics.jsonl", events: list[str] | None = None) -> None:
        """
        Args:
            file_name: name of the file in the run directory.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        super().__init__(events)
        self.file_name = check_file_name("file_name", file_name)


class MLflowReceiver(AnalyticsReceiver):
    """Logs the records to MLflow, one run per site (FLARE's ``MLflowReceiver``;
    needs the ``mlflow`` extra at run time).

    As in FLARE, it receives only the federated event unless told otherwise.
    """

    DEFAULT_EVENTS: ClassVar[list[str]] = ["fed.analytix_log_stats"]

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment_name: str = "flconfig",
        events: list[str] | None = None,
    ) -> None:
        """
        Args:
            tracking_uri: MLflow tracking server or store; None for MLflow's
                default (``./mlruns`` in the run directory).
            experiment_name: MLflow experiment the runs are logged to.
            events: the events to receive; None for ``DEFAULT_EVENTS``.
        """
        super().__init__(events)
        self.tracking_uri = check_optional_str("tracking_uri", tracking_uri)
        self.experiment_name = check_str("experiment_name", experiment_name)
