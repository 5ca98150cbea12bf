"""FLARE's Client API writers: ``SummaryWriter``, ``MLflowWriter``, ``WandBWriter``.

Each call becomes a record on flconfig's lossless path to the server (checked at
the call: a wrong value raises here, never later). Scalars, series and text reach
every receiver (TensorBoard, MLflow, JSON lines); MLflow parameters and tags go as
text records under ``params/<key>`` and ``tags/<key>``.
"""

from __future__ import annotations

from typing import Any

from ..apis.analytix import AnalyticsDataType
from . import log


class SummaryWriter:
    """TensorBoard's ``SummaryWriter`` surface, sending to the server."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        """Arguments (a log_dir ...) are accepted and ignored: the server writes the files."""

    def add_scalar(self, tag: str, scalar: float, global_step: int | None = None, **kwargs: Any) -> None:
        """Log one number."""
        log(tag, scalar, AnalyticsDataType.SCALAR, global_step=global_step, **kwargs)

    def add_scalars(self, tag: str, scalars: dict[str, float], global_step: int | None = None,
                    **kwargs: Any) -> None:
        """Log several series under one main tag."""
        log(tag, scalars, AnalyticsDataType.SCALARS, global_step=global_step, **kwargs)

    def add_text(self, tag: str, text: str, global_step: int | None = None, **kwargs: Any) -> None:
        """Log a text."""
        log(tag, text, AnalyticsDataType.TEXT, global_step=global_step, **kwargs)

    def add_image(self, tag: str, image: Any, global_step: int | None = None, **kwargs: Any) -> None:
        """Log an image (an array or tensor, CHW unless ``dataformats`` says otherwise)."""
        log(tag, image, AnalyticsDataType.IMAGE, global_step=global_step, **kwargs)

    def flush(self) -> None:
        """Nothing to do: records are sent as they come."""

    def close(self) -> None:
        """Nothing to do: records are sent as they come."""


class WandBWriter:
    """Weights & Biases' ``log`` surface, sending to the server."""

    def log(self, metrics: dict[str, float], step: int | None = None) -> None:
        """Log several metrics at one step."""
        log("metrics", metrics, AnalyticsDataType.METRICS, global_step=step)


class MLflowWriter:
    """MLflow's logging surface, sending to the server."""

    def log_param(self, key: str, value: Any) -> None:
        log(key, value, AnalyticsDataType.PARAMETER)

    def log_params(self, values: dict[str, Any]) -> None:
        log("params", values, AnalyticsDataType.PARAMETERS)

    def log_metric(self, key: str, value: float, step: int | None = None) -> None:
        log(key, value, AnalyticsDataType.METRIC, global_step=step)

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        log("metrics", metrics, AnalyticsDataType.METRICS, global_step=step)

    def log_text(self, text: str, artifact_file_path: str) -> None:
        log("text", text, AnalyticsDataType.TEXT, path=artifact_file_path)

    def set_tag(self, key: str, tag: Any) -> None:
        log(key, tag, AnalyticsDataType.TAG)

    def set_tags(self, tags: dict[str, Any]) -> None:
        log("tags", tags, AnalyticsDataType.TAGS)
