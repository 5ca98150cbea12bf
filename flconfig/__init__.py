"""flconfig: run federated-learning jobs from NVIDIA FLARE-style config folders.

The public API (imported lazily, so ``import flconfig`` stays light):

- :func:`load_job` / :func:`inspect_job`: read and check a job once (every problem at
  file:line:col); :class:`Job` is the checked job.
- :func:`plan_run`: resolve every site's configuration for one run into a
  serialisable :class:`RunPlan`; :func:`build_from_plan` instantiates a site's components from it,
  and :func:`build_site` plans and builds one site of a job in one call (tests, notebooks).
- :class:`ConfigError` (a job is invalid) and :class:`JobError` (a run failed).
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

if TYPE_CHECKING:
    from .config.job import Job
    from .errors import ConfigError, JobError
    from .runtime.build import build_from_plan
    from .runtime.plan import RunPlan
    from .runtime.planner import build_site, plan_run
    from .validate.loader import inspect_job, load_job

_PUBLIC = {
    "Job": ".config.job", "load_job": ".validate.loader", "inspect_job": ".validate.loader",
    "RunPlan": ".runtime.plan", "plan_run": ".runtime.planner", "build_from_plan": ".runtime.build",
    "build_site": ".runtime.planner",
    "ConfigError": ".errors", "JobError": ".errors",
}  # fmt: skip
__all__ = [
    "Job", "load_job", "inspect_job", "RunPlan", "plan_run", "build_from_plan", "build_site", "ConfigError",
    "JobError",
    "__version__",
]  # fmt: skip


def __getattr__(name: str) -> Any:
    module = _PUBLIC.get(name)
    if module is None:
        raise AttributeError(name)
    return getattr(importlib.import_module(module, __name__), name)
