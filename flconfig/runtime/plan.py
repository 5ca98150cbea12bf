"""From a checked job to a run plan: every site's resolved configuration, ready to build.

The launcher checks a job once (:func:`~flconfig.validate.loader.inspect_job`), then
:func:`plan_run` gives each site its configuration for this run — its site
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
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, Position, Problem, errors_only

if TYPE_CHECKING:
    from ..config.job import ComponentSpec, ConfigFile, Job

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
    )


def load_plan(path: str | Path) -> RunPlan:
    """Read the plan file at ``path``."""
    return plan_from_json(Path(path).read_text(encoding="utf-8"))


# --------------------------------------------------------------------------- making a plan


def plan_run(job: Job, sites: Sequence[str], workspace: str | Path, job_id: str, *,
             server: bool = True, environ: Mapping[str, str] | None = None,
             outside_files: bool = True) -> RunPlan:
    """Resolve the configuration of the server (with ``server``) and of each of ``sites``.

    ``job`` is a checked :class:`~flconfig.config.job.Job`. Each site's variables
    (``SITE_NAME``, ``WORKSPACE``, ``JOB_ID`` ...) are substituted for this run. A site's
    config is resolved and checked once: the job's own, as :func:`inspect_job` checked
    it, when it reads no value this run changes (:func:`resolves_alike`); otherwise
    resolved for the site and checked here (:func:`check_site_config`), and shared with
    every other site of its app when it does not read ``SITE_NAME``. Raises
    :class:`ConfigError` with every problem, at file:line:col, if any site's
    configuration is invalid.
    """
    # Here, not at the top: the processes that read a plan import this module, and never
    # the validation code or the registry (tests/runtime/test_plan.py).
    from ..validate.loader import check_site_config, mentioned, resolves_alike

    configs: list[SitePlan] = []
    index: dict[str, int] = {}
    problems: list[Problem] = []
    by_key: dict[tuple[str, str, str], int] = {}  # (role, app, resolved data) -> configs index
    checked = not job.errors  # the job's own configs passed every check

    def add(site: str) -> None:
        template = job.config_for(site)
        config: ConfigFile | None = template
        found: list[Problem] = []
        if not (checked and resolves_alike(job, template, site, workspace=workspace,
                                           job_id=job_id, environ=environ)):
            config, found = check_site_config(job, site, workspace=workspace, job_id=job_id,
                                              environ=environ)
        problems.extend(found)
        if config is None or errors_only(found):
            return
        key = (config.role, config.app, json.dumps(config.doc.data, sort_keys=True, default=str))
        if key not in by_key:  # sites whose resolved configuration is the same share one plan
            by_key[key] = len(configs)
            app = job.apps[config.app]
            custom = app.custom_dir if app.runs_custom_code else None
            configs.append(_site_plan_of(config, str(custom.resolve()) if custom else None,
                                         app.runs_custom_code, outside_files))
        index[site] = by_key[key]

    if server:
        add("server")
    site_free: dict[tuple[str, str], bool] = {}  # (app, role) -> resolves the same for any name
    first_of: dict[tuple[str, str], str] = {}
    for site in sites:
        template = job.config_for(site)
        key = (template.app, template.role)
        if key not in first_of:  # the first site of each app is always resolved in full
            first_of[key] = site
            site_free[key] = not mentioned(template.raw.data, ("SITE_NAME",))
            add(site)
        elif site_free[key] and first_of[key] in index:
            index[site] = index[first_of[key]]
        elif not errors_only(problems):
            add(site)
    errors = errors_only(problems)
    if errors:
        raise ConfigError(errors)
    python_path = tuple(str(folder) for folder in job.python_path)
    return RunPlan(job.name, job_id, str(workspace), str(job.folder.resolve()), python_path,
                   tuple(configs), index)


def _site_plan_of(config: ConfigFile, custom_dir: str | None = None,
                  allow_custom_code: bool = True, outside_files: bool = True) -> SitePlan:
    from ..validate.wiring import build_order

    by_id = config.by_id()
    return SitePlan(
        role=config.role,
        app=config.app,
        file=config.raw.file,
        components=tuple(_planned(by_id[i]) for i in build_order(config)),
        workflows=tuple(s.id for s in config.workflows if s.id),
        executors=tuple(ExecutorPlan(tuple(tasks), _planned(spec))
                        for tasks, spec in config.executors),
        filters=tuple(FilterPlan(section, int(spec.json_path[1]), tuple(tasks), direction,
                                 _planned(spec))
                      for section, tasks, direction, spec in config.filters),
        custom_dir=custom_dir,
        allow_custom_code=allow_custom_code,
        outside_files=outside_files,
    )


def _planned(spec: ComponentSpec) -> PlannedComponent:
    info = spec.info
    assert info is not None, spec.label  # plans are made only of configs without errors
    cls = ClassRef(info.path, info.module, info.qualname, info.origin, info.file)
    args = {k: v for k, v in spec.args.items() if k not in spec.nested}
    return PlannedComponent(
        id=spec.id, role=spec.role, label=spec.label,
        position=spec.doc.position(spec.json_path), json_path=tuple(spec.json_path),
        cls=cls, args=args,
        nested={name: _planned(child) for name, child in spec.nested.items()},
        disabled=spec.disabled,
    )  # fmt: skip


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
