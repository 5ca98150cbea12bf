"""FLARE's PyTorch Lightning integration: ``patch(trainer)`` (needs ``pytorch_lightning``)."""

from __future__ import annotations

from .api import FLCallback, patch

__all__ = ["FLCallback", "patch"]
