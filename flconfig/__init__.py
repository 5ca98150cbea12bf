"""flconfig: run federated-learning jobs from NVIDIA FLARE-style config folders."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .job import Job, load_job

__all__ = ["Job", "load_job", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("Job", "load_job"):
        from . import job

        return getattr(job, name)
    raise AttributeError(name)
