"""Instantiate a site's components from a checked job, in dependency order.

This is the first place that imports component modules (and so, for
learners and models, torch).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from .errors import ConfigError, Problem, errors_only
from .job import VALIDATION_WORKSPACE, ComponentSpec, ConfigFile, Job, read_config
from .registry import ResolveError


@dataclass
class FilterChain:
    """Filters applied to the data (``task_data_filters``) or results of some tasks."""

    section: str
    tasks: list[str]
    direction: str
    filters: list[Any]


@dataclass
class BuiltSite:
    """A site's live components: by id, its executors or workflows, filters, and event handlers."""

    site: str
    role: str
    config: ConfigFile
    components: dict[str, Any] = field(default_factory=dict)
    executors: list[tuple[list[str], Any]] = field(default_factory=list)
    workflows: list[Any] = field(default_factory=list)
    filters: list[FilterChain] = field(default_factory=list)
    #: Every built object, nested ones included, in build order: they receive events in this order.
    handlers: list[Any] = field(default_factory=list)

    def executor_for(self, task: str) -> Any | None:
        """The executor whose task list names ``task`` (exact names first, then patterns)."""
        import fnmatch

        for tasks, executor in self.executors:
            if task in tasks:
                return executor
        for tasks, executor in self.executors:
            if any("*" in t and fnmatch.fnmatchcase(task, t) for t in tasks):
                return executor
        return None


def build_site(job: Job, site: str, *, workspace: str | Path | None = None, job_id: str = "simulate_job",
               environ: Mapping[str, str] | None = None) -> BuiltSite:
    """Build the components of ``site`` ("server" or a client name); raises ConfigError on failure."""
    from .checks import check_components
    from .wiring import build_order, check_wiring

    template = job.config_for(site)
    app = job.apps[template.app]
    problems: list[Problem] = []
    config = read_config(template.file, template.role, app, site, problems,
                         workspace=workspace or VALIDATION_WORKSPACE, job_id=job_id, environ=environ)
    if config is not None:
        problems += check_components(job, config)
        problems += check_wiring(config)
    if config is None or errors_only(problems):
        raise ConfigError(errors_only(problems) or problems)

    built = BuiltSite(site, config.role, config)
    by_id = config.by_id()
    for component_id in build_order(config):
        spec = by_id[component_id]
        obj = _instantiate(job, spec, built)
        built.components[component_id] = obj
        if spec.role == "workflow" and obj is not None:
            built.workflows.append(obj)
    built.workflows.sort(key=lambda w: [s.id for s in config.workflows].index(getattr(w, "id", "")))
    for tasks, spec in config.executors:
        built.executors.append((tasks, _instantiate(job, spec, built)))
    chains: dict[tuple[str, str | int], FilterChain] = {}
    for section, tasks, direction, spec in config.filters:
        key = (section, spec.json_path[1])
        chain = chains.setdefault(key, FilterChain(section, tasks, direction, []))
        chain.filters.append(_instantiate(job, spec, built))
    built.filters = list(chains.values())
    return built


def _instantiate(job: Job, spec: ComponentSpec, built: BuiltSite) -> Any:
    if spec.disabled:
        return None
    kwargs = dict(spec.args)
    for arg, child in spec.nested.items():
        kwargs[arg] = _instantiate(job, child, built)
    try:
        cls = job.registry.load_class(spec.info)
    except ResolveError as exc:  # its module failed to import: the real cause, not the args
        raise ConfigError(spec.config.doc.problem(
            "import-failed", f"{spec.label}: {exc.message}", spec.json_path, exc.hint)) from None
    try:
        obj = cls(**kwargs)
    except ConfigError:
        raise
    except Exception as exc:  # a constructor rejected its arguments: say which component
        raise ConfigError(spec.config.doc.problem(
            "build-failed", f"building {spec.label} failed: {type(exc).__name__}: {exc}",
            spec.json_path, "check this component's args")) from exc
    if spec.id:
        try:
            obj.id = spec.id
        except AttributeError:
            pass
    if callable(getattr(obj, "handle_event", None)):  # e.g. a nested torch model receives no events
        built.handlers.append(obj)
    return obj
