"""flconfig: run federated-learning jobs from NVIDIA FLARE-style config folders.

The public API (imported lazily, so ``import flconfig`` stays light):

- :func:`load_job` / :func:`inspect_job`: read and check a job once (every problem at
  file:line:col); :class:`Job` is the checked job.
- :func:`plan_run`: resolve every site's configuration for one run into a
  serialisable :class:`RunPlan`; :func:`build_from_plan` instantiates a site's components from it.
- :class:`ConfigError` (a job is invalid) and :class:`JobError` (a run failed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config.job import Job, inspect_job, load_job
    from .errors import ConfigError, JobError
    from .runtime.build import build_from_plan
    from .runtime.plan import RunPlan, plan_run

_PUBLIC = {
    "Job": ".config.job", "load_job": ".config.job", "inspect_job": ".config.job",
    "RunPlan": ".runtime.plan", "plan_run": ".runtime.plan", "build_from_plan": ".runtime.build",
    "ConfigError": ".errors", "JobError": ".errors",
}  # fmt: skip
__all__ = [
    "Job", "load_job", "inspect_job", "RunPlan", "plan_run", "build_from_plan", "ConfigError",
    "JobError",
    "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module, __name__), name)
