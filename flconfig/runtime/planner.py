"""Planning a run: from a checked job to its :class:`~flconfig.runtime.plan.RunPlan`.

This is the part of the runtime that resolves and checks configurations, so it imports the
validation code; the server and worker processes read the plan (:mod:`.plan`) and build
from it (:mod:`.build`) without importing this module (tests/runtime/test_plan.py).
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..config.job import VALIDATION_WORKSPACE
from ..errors import ConfigError, Problem, errors_only
from ..validate.loader import check_site_config, mentioned, resolves_alike
from ..validate.wiring import build_order
from .build import BuiltSite, build_from_plan
from .plan import ClassRef, ExecutorPlan, FilterPlan, PlannedComponent, RunPlan, SitePlan

if TYPE_CHECKING:
    from ..config.job import ComponentSpec, ConfigFile, Job


def plan_run(job: Job, sites: Sequence[str], workspace: str | Path, job_id: str, *,
             server: bool = True, environ: Mapping[str, str] | None = None,
             outside_files: bool = True, site_state: str | None = None) -> RunPlan:
    """Resolve the configuration of the server (with ``server``) and of each of ``sites``.

    ``job`` is a checked :class:`~flconfig.config.job.Job`. Each site's variables
    (``SITE_NAME``, ``WORKSPACE``, ``JOB_ID`` ...) are substituted for this run. A site's
    config is resolved and checked once: the job's own, as :func:`inspect_job` checked
    it, when it reads no value this run changes (:func:`resolves_alike`); otherwise
    resolved for the site and checked here (:func:`check_site_config`), and shared with
    every other site of its app when it does not read ``SITE_NAME``. Raises
    :class:`ConfigError` with every problem, at file:line:col, if any site's
    configuration is invalid. ``site_state`` ("keep" or "release": what a client site
    keeps between tasks) overrides the job's meta ``site_state``.
    """
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
                   tuple(configs), index, site_state=site_state or job.meta.site_state)


def _site_plan_of(config: ConfigFile, custom_dir: str | None = None,
                  allow_custom_code: bool = True, outside_files: bool = True) -> SitePlan:
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


def build_site(job: Job, site: str, *, workspace: str | Path | None = None,
               job_id: str = "simulate_job", environ: Mapping[str, str] | None = None) -> BuiltSite:
    """Plan ``site`` of a checked ``job`` for one run and build it (tests, notebooks).

    ``flconfig launch`` plans every site once, in the launcher, and its processes
    call :func:`build_from_plan` on that plan instead.
    """

    is_server = site == "server"
    run_plan = plan_run(job, [] if is_server else [site], workspace or VALIDATION_WORKSPACE,
                        job_id, server=is_server, environ=environ)
    return build_from_plan(run_plan, site)
