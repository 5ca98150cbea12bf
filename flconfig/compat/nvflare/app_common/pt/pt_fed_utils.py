"""FLARE's old path of ``PTModelPersistenceFormatManager``."""

from __future__ import annotations

from ...app_opt.pt.model_persistence_format_manager import PTModelPersistenceFormatManager

__all__ = ["PTModelPersistenceFormatManager"]
