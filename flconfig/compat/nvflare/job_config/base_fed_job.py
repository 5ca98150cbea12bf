"""FLARE's ``nvflare.job_config.base_fed_job``: a FedJob with what every recipe's server has.

On the server: a ``ValidationJsonGenerator`` (``json_generator``), a model selector on
``key_metric`` (``model_selector``), FLARE 2.9's ``MetricsArtifactWriter``
(``metrics_artifact_writer``) and, if given, an analytics receiver (``receiver``); on each
client target, when first used, a ``ConvertToFedEvent`` of ``analytix_log_stats``
(``event_to_fed``), so that what the sites log reaches the server's receiver.
"""

from __future__ import annotations

from typing import Any

from ...jobapi.standins import make
from .api import FedJob

_W = "nvflare.app_common.widgets"


class BaseFedJob(FedJob):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, name: str = "fed_job", min_clients: int = 1, mandatory_clients: list[str] | None = None,
                 key_metric: str = "accuracy", key_metric_mode: str = "max", validation_json_generator: Any = None,
                 model_selector: Any = None, convert_to_fed_event: Any = None, analytics_receiver: Any = None,
                 metrics_artifact_writer: Any = None) -> None:
        super().__init__(name=name, min_clients=min_clients, mandatory_clients=mandatory_clients)
        if key_metric_mode not in ("min", "max"):
            raise ValueError(f"key_metric_mode must be 'min' or 'max', not {key_metric_mode!r}")
        self.to_server(validation_json_generator or make(f"{_W}.validation_json_generator.ValidationJsonGenerator",
                                                         kind="widget"), id="json_generator")
        if model_selector is not None:
            self.to_server(model_selector, id="model_selector")
        elif key_metric:
            selector_args: dict[str, Any] = {"key_metric": key_metric}
            if key_metric_mode == "min":
                selector_args["negate_key_metric"] = True
            self.to_server(make(f"{_W}.intime_model_selector.IntimeModelSelector", kind="widget", **selector_args),
                           id="model_selector")
        self.to_server(metrics_artifact_writer or make(f"{_W}.metrics_artifact_writer.MetricsArtifactWriter",
                                                       kind="widget"), id="metrics_artifact_writer")
        if analytics_receiver is not None:
            self.to_server(analytics_receiver, id="receiver")
        self._convert_to_fed_event = convert_to_fed_event or make(
            f"{_W}.convert_to_fed_event.ConvertToFedEvent", kind="widget", events_to_convert=["analytix_log_stats"])

    def set_up_client(self, target: str) -> None:
        if hasattr(self, "_convert_to_fed_event"):
            self.to(self._convert_to_fed_event, target, id="event_to_fed")
