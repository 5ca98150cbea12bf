"""A run plan: every site's resolved configuration for one run, ready to build.

The launcher checks a job once (:func:`~flconfig.validate.loader.inspect_job`), then
:func:`flconfig.runtime.planner.plan_run` gives each site its configuration for this run — its site
name, the workspace and the job id substituted, every component resolved to
a class through the registry, its arguments checked against that class's
argument schema — in a :class:`RunPlan`. Each site's configuration is resolved and
checked once: the check of the job stands for a site whose configuration reads none
of the values this run changes, and the others are resolved and checked here. The plan is plain data: it is
written as JSON (:meth:`RunPlan.to_json`), and the server and worker
processes build their components from it (:func:`flconfig.runtime.build.build_from_plan`)
without parsing, resolving or validating the job again, and without
importing the registry.

Sites whose configuration does not depend on their name (the usual case)
share one :class:`SitePlan`, so a plan for a thousand sites is as small, and
as quick to make, as one for two.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Position

if TYPE_CHECKING:
    pass

#: Version of the JSON form; a plan of another version is refused when read.
PLAN_FORMAT = 2


@dataclass(frozen=True)
class ClassRef:
    """Where a component's class lives, as the registry resolved it."""

    path: str  # the canonical dotted path
    module: str
    qualname: str
    origin: str  # builtin | plugin | custom | allowed
    file: str | None  # the module's file; for a custom class, checked again at import


@dataclass(frozen=True)
class PlannedComponent:
    """One component to build: its class, its resolved JSON args, its nested components."""

    id: str | None
    role: str  # component | executor | workflow | filter | nested
    label: str  # how messages name it: "component 'persistor' (PTFileModelPersistor)"
    position: Position  # where it is written, for messages at build time
    json_path: tuple[str | int, ...]  # where in its config file
    cls: ClassRef
    args: Mapping[str, Any]  # JSON values; nested components are in ``nested``
    nested: Mapping[str, PlannedComponent] = field(default_factory=dict)
    disabled: bool = False


@dataclass(frozen=True)
class ExecutorPlan:
    tasks: tuple[str, ...]
    executor: PlannedComponent


@dataclass(frozen=True)
class FilterPlan:
    section: str  # task_data_filters | task_result_filters
    chain: int  # index of the chain in its section
    tasks: tuple[str, ...]
    direction: str
    filter: PlannedComponent


@dataclass(frozen=True)
class SitePlan:
    """The resolved configuration of the server or of one or more client sites."""

    role: str  # server | client
    app: str
    file: str  # the config file it came from (as shown in messages)
    components: tuple[PlannedComponent, ...]  # components and workflows, in build order
    workflows: tuple[str, ...]  # workflow ids, in the config's order
    executors: tuple[ExecutorPlan, ...] = ()
    filters: tuple[FilterPlan, ...] = ()
    #: The app's custom/ folder (resolved), where its classes and scripts are; None when
    #: it has none, or when the participant runs no custom code.
    custom_dir: str | None = None
    #: Whether the participant runs the job's own code: with False, building imports
    #: nothing from the job folder (:func:`flconfig.runtime.build.build_from_plan`).
    allow_custom_code: bool = True
    #: Whether the participant lets the job's components read files outside the job by
    #: absolute path (FLARE's pretrained checkpoints and model folders): true for a run
    #: on the user's own machine; on a deployed participant, only where its kit allows it.
    outside_files: bool = True


@dataclass(frozen=True)
class RunPlan:
    """Everything the processes of one run build from; see the module docstring."""

    job: str  # the job's name
    job_id: str
    workspace: str
    #: The job folder (resolved): with custom code off, nothing in it is imported.
    job_root: str
    #: --python-path folders, appended to sys.path after the site's own custom/ folder.
    python_path: tuple[str, ...]
    configs: tuple[SitePlan, ...]
    sites: Mapping[str, int]  # "server" and each client site -> index into ``configs``
    #: What a client site keeps between two tasks: "keep" its built components for the
    #: whole run (FLARE's semantics), or "release" them after each task and build them
    #: again before the next (the learner starts afresh; a waiting site holds nothing).
    site_state: str = "keep"

    def for_site(self, site: str) -> SitePlan:
        """The plan of ``site`` ("server" or a client site)."""
        index = self.sites.get(site)
        if index is None:
            raise ConfigError.single("plan", f"the run plan has no site '{site}'",
                                     Position(self.job))
        return self.configs[index]

    def to_json(self) -> str:
        """The plan as JSON text (see :func:`plan_from_json`)."""
        return json.dumps({"format": PLAN_FORMAT, **_to_data(self)}, separators=(",", ":"))


def plan_from_json(text: str) -> RunPlan:
    """Read a plan written by :meth:`RunPlan.to_json`; ``ValueError`` if it is not one."""
    data = json.loads(text)
    if not isinstance(data, dict) or data.get("format") != PLAN_FORMAT:
        raise ValueError(f"not a flconfig run plan of format {PLAN_FORMAT}")
    return RunPlan(
        job=data["job"],
        job_id=data["job_id"],
        workspace=data["workspace"],
        job_root=data["job_root"],
        python_path=tuple(data["python_path"]),
        configs=tuple(_site_plan(c) for c in data["configs"]),
        sites=dict(data["sites"]),
        site_state=data.get("site_state", "keep"),
    )


def load_plan(path: str | Path) -> RunPlan:
    """Read the plan file at ``path``."""
    return plan_from_json(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- JSON form


def _to_data(value: Any) -> Any:
    if isinstance(value, Position):
        return [value.file, value.line, value.column]
    if hasattr(value, "__dataclass_fields__"):
        return {name: _to_data(getattr(value, name)) for name in value.__dataclass_fields__}
    if isinstance(value, Mapping):
        return {k: _to_data(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_to_data(v) for v in value]
    return value


def _component(data: Mapping[str, Any]) -> PlannedComponent:
    return PlannedComponent(
        id=data["id"], role=data["role"], label=data["label"],
        position=Position(*data["position"]), json_path=tuple(data["json_path"]),
        cls=ClassRef(**data["cls"]), args=data["args"],
        nested={k: _component(v) for k, v in data["nested"].items()}, disabled=data["disabled"],
    )  # fmt: skip


def _site_plan(data: Mapping[str, Any]) -> SitePlan:
    return SitePlan(
        role=data["role"], app=data["app"], file=data["file"],
        components=tuple(_component(c) for c in data["components"]),
        workflows=tuple(data["workflows"]),
        executors=tuple(ExecutorPlan(tuple(e["tasks"]), _component(e["executor"]))
                        for e in data["executors"]),
        filters=tuple(FilterPlan(f["section"], f["chain"], tuple(f["tasks"]), f["direction"],
                                 _component(f["filter"])) for f in data["filters"]),
        custom_dir=data.get("custom_dir"), allow_custom_code=bool(data["allow_custom_code"]),
        outside_files=bool(data.get("outside_files", False)),
    )  # fmt: skip
