"""FLARE's ``nvflare.apis.analytix``: the kinds of record a Client API script logs."""

from __future__ import annotations

from enum import Enum


class AnalyticsDataType(Enum):
    """What ``nvflare.client.log`` is given (FLARE's names and values)."""

    SCALARS = "SCALARS"
    SCALAR = "SCALAR"
    IMAGE = "IMAGE"
    TEXT = "TEXT"
    LOG_RECORD = "LOG_RECORD"
    PARAMETER = "PARAMETER"
    PARAMETERS = "PARAMETERS"
    METRIC = "METRIC"
    METRICS = "METRICS"
    MODEL = "MODEL"
    TAG = "TAG"
    TAGS = "TAGS"
    INIT_DATA = "INIT_DATA"
