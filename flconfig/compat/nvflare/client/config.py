"""FLARE's ``nvflare.client.config``: how a script exchanges parameters with its site."""

from __future__ import annotations

from enum import Enum


class ExchangeFormat(str, Enum):
    """The form the parameters take in the script (and the server expects)."""

    RAW = "raw"
    PYTORCH = "pytorch"
    NUMPY = "numpy"
    KERAS_LAYER_WEIGHTS = "keras_layer_weights"


class TransferType(str, Enum):
    """Whether a result carries the whole model or its difference from the global one."""

    FULL = "FULL"
    DIFF = "DIFF"
