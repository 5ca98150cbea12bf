"""Instantiate a site's components from its :class:`~flconfig.runtime.plan.SitePlan`, in dependency order.

This is the first place that imports component modules (and so, for
learners and models, torch). Building reads nothing from disk and checks
nothing again: the plan holds each component's class, as the registry
resolved it, and its args, as checked for this run.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from ..common.loader import import_class
from ..compat import install
from ..compat.component_adapter import adapt
from ..errors import ConfigError, ImportFailure, Problem

if TYPE_CHECKING:
    from ..components.base import Executor, Filter
    from .plan import ClassRef, PlannedComponent, RunPlan, SitePlan


@dataclass
class FilterChain:
    """Filters applied to the data (``task_data_filters``) or results of some tasks."""

    section: str
    tasks: list[str]
    direction: str
    filters: list[Filter]


@dataclass
class BuiltSite:
    """A site's live components: by id, its executors or workflows, filters, and event handlers."""

    site: str
    role: str
    plan: SitePlan
    components: dict[str, Any] = field(default_factory=dict)
    executors: list[tuple[list[str], Executor]] = field(default_factory=list)
    workflows: list[Any] = field(default_factory=list)
    filters: list[FilterChain] = field(default_factory=list)
    #: Every built object, nested ones included, in build order: they receive events in this order.
    handlers: list[Any] = field(default_factory=list)

    def executor_for(self, task: str) -> Executor | None:
        """The executor whose task list names ``task`` (exact names first, then patterns)."""
        for tasks, executor in self.executors:
            if task in tasks:
                return executor
        for tasks, executor in self.executors:
            if any("*" in t and fnmatch.fnmatchcase(task, t) for t in tasks):
                return executor
        return None


def build_from_plan(run_plan: RunPlan, site: str) -> BuiltSite:
    """Build the components of ``site`` ("server" or a client site) from ``run_plan``.

    Raises :class:`ConfigError` at the component's file:line:col when its class
    cannot be imported or its constructor refuses its args.
    """
    plan = run_plan.for_site(site)
    classes: dict[ClassRef, type] = {}
    built = BuiltSite(site, plan.role, plan)

    def make(component: PlannedComponent) -> Any:
        if component.disabled:
            return None
        kwargs = dict(component.args)
        for arg, child in component.nested.items():
            kwargs[arg] = make(child)
        cls = classes.get(component.cls)
        if cls is None:
            cls = classes[component.cls] = _import(component, run_plan, plan)
        try:
            obj = cls(**kwargs)
        except ConfigError:
            raise
        except Exception as exc:  # a constructor rejected its arguments: say which component
            raise ConfigError([Problem(
                "error", "build-failed",
                f"building {component.label} failed: {type(exc).__name__}: {exc}",
                component.position, component.json_path,
                "check this component's args")]) from exc
        if component.id:
            try:
                obj.id = component.id
            except AttributeError:
                pass
        if callable(getattr(obj, "handle_event", None)):  # a nested torch model gets no events
            built.handlers.append(obj)
        return obj

    workflows: dict[str, Any] = {}
    for component in plan.components:
        assert component.id is not None  # components in build order are those with ids
        obj = flare_adapted(make(component))
        built.components[component.id] = obj
        if component.role == "workflow" and obj is not None:
            workflows[component.id] = obj
    built.workflows = [workflows[i] for i in plan.workflows if i in workflows]
    for executor in plan.executors:
        built.executors.append((list(executor.tasks), flare_adapted(make(executor.executor))))
    chains: dict[tuple[str, int], FilterChain] = {}
    for entry in plan.filters:
        chain = chains.setdefault((entry.section, entry.chain),
                                  FilterChain(entry.section, list(entry.tasks), entry.direction, []))
        chain.filters.append(flare_adapted(make(entry.filter)))
    built.filters = list(chains.values())
    return built


def flare_adapted(component: Any) -> Any:
    """A component of the job's code written against FLARE's API (an executor, persistor,
    aggregator ...) behind flconfig's interface; any other component as it is."""
    if component is None or not getattr(type(component), "_flare_component", False):
        return component

    return adapt(component)


def prepare_job_code() -> None:
    """Before job code is imported: ``import nvflare`` in it is flconfig's FLARE API, the one
    that talks to this site, even where FLARE is installed."""

    install(force=True)


def _import(component: PlannedComponent, run_plan: RunPlan, plan: SitePlan) -> type:
    """The class of ``component``: from built-ins, plugins, allowed modules and the site's
    own ``custom/`` folder; nothing of the job folder when the site runs no custom code."""

    ref = component.cls
    folders = ([plan.custom_dir] if plan.custom_dir and plan.allow_custom_code else []) + list(run_plan.python_path)
    try:
        return import_class(ref.path, ref.module, ref.qualname, ref.origin, ref.file, folders,
                            job_root=run_plan.job_root, allow_job_code=plan.allow_custom_code,
                            prepare_job_code=prepare_job_code)
    except ImportFailure as exc:  # its module failed to import: the real cause, not the args
        raise ConfigError([Problem("error", "import-failed", f"{component.label}: {exc.message}",
                                   component.position, component.json_path, exc.hint)]) from None
