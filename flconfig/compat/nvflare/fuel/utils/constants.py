"""FLARE's ``nvflare.fuel.utils.constants``: the frameworks a job script's model may be."""

from __future__ import annotations

from enum import Enum


class FrameworkType(str, Enum):
    """What a training script's model is: it decides the parameters' exchange format."""

    RAW = "raw"
    NUMPY = "numpy"
    PYTORCH = "pytorch"
    TENSORFLOW = "tensorflow"
