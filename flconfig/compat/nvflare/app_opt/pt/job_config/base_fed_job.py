"""FLARE's ``nvflare.app_opt.pt.job_config.base_fed_job``: BaseFedJob with a PyTorch model."""

from __future__ import annotations

from typing import Any

from .....nvflare.job_config.base_fed_job import BaseFedJob as _BaseFedJob
from .model import PTModel


class BaseFedJob(_BaseFedJob):
    """FLARE's BaseFedJob, plus ``initial_model`` (an ``nn.Module``) as a PTModel on the server."""

    def __init__(self, initial_model: Any = None, name: str = "fed_job", min_clients: int = 1,
                 mandatory_clients: list[str] | None = None, key_metric: str = "accuracy",
                 validation_json_generator: Any = None, model_selector: Any = None,
                 convert_to_fed_event: Any = None, analytics_receiver: Any = None,
                 metrics_artifact_writer: Any = None, model_persistor: Any = None, model_locator: Any = None,
                 key_metric_mode: str = "max") -> None:
        super().__init__(name=name, min_clients=min_clients, mandatory_clients=mandatory_clients,
                         key_metric=key_metric, key_metric_mode=key_metric_mode,
                         validation_json_generator=validation_json_generator, model_selector=model_selector,
                         convert_to_fed_event=convert_to_fed_event, analytics_receiver=analytics_receiver,
                         metrics_artifact_writer=metrics_artifact_writer)
        if initial_model is not None:
            self.comp_ids.update(self.to_server(PTModel(model=initial_model, persistor=model_persistor,
                                                        locator=model_locator)))
