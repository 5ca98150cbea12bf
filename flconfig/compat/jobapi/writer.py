"""A ``FedJob``'s apps written as a job folder, as FLARE writes it.

``job_root/<name>/meta.json`` and, per app, ``config/config_fed_server.json`` and/or
``config/config_fed_client.json`` and the ``custom/`` files its components need. With
``@ALL`` among the targets there is one app, ``app``, deployed to ``@ALL`` (the server and
every client); else ``app_server`` and one ``app_<site>`` per site. The folder is written
beside its final place and renamed into it, so a failed export leaves the last one whole.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ...errors import Problem
from .checking import JobInvalid
from .export import Authored, Exporter, Provenance, Resources, copy_resources, write_json
from .roots import job_roots

if TYPE_CHECKING:
    from ..nvflare.job_config.api import FedApp, FedJob

ALL_SITES, SERVER = "@ALL", "server"


def write_job(job: FedJob, job_root: Path) -> tuple[Path, dict[str, Provenance], list[Problem]]:
    """Write ``job``; ``(its folder, where each config entry was authored, export problems)``."""
    problems: list[Problem] = []
    apps = job._apps
    server = apps.get(SERVER)
    if server is None:
        raise ValueError("Missing server components! The job needs a controller on the server "
                         "(job.to_server(...) or a recipe)")
    if ALL_SITES in apps:
        layout: dict[str, list[FedApp]] = {"app": [server, apps[ALL_SITES]]}
        deploy_map: dict[str, list[str]] = {"app": [ALL_SITES]}
        dropped = [t for t in apps if t not in (SERVER, ALL_SITES)]
        if dropped:
            problems.append(Problem(
                "warning", "sites-dropped",
                f"components added to {', '.join(dropped)} are not in the job: with @ALL clients "
                "FLARE writes one app for every site (as flconfig does)",
                Authored(*job.site).position() if job.site else None,
                hint="add per-site components through per-site apps only (set_per_site_config)"))
    else:
        layout = {"app_server": [server]}
        deploy_map = {"app_server": [SERVER]}
        for target, app in apps.items():
            if target != SERVER:
                layout[f"app_{target}"] = [app]
                deploy_map[f"app_{target}"] = [target]
    job_root.mkdir(parents=True, exist_ok=True)
    final = job_root / job.name
    if final.exists():
        _check_replaceable(final, job.name)
    staging = Path(tempfile.mkdtemp(prefix=f".{job.name}.", dir=job_root))
    provenance: dict[str, Provenance] = {}
    try:
        for app_name, fed_apps in layout.items():
            resources = Resources()
            exporter = Exporter(resources, job_roots(), problems)
            for fed_app in fed_apps:
                config, where = _config(fed_app, exporter, job)
                name = "config_fed_server.json" if fed_app.target == SERVER else "config_fed_client.json"
                write_json(staging / app_name / "config" / name, config)
                provenance[f"{app_name}/config/{name}"] = where
                _resources(fed_app, exporter, resources)
            copy_resources(staging / app_name, resources)
        meta: dict[str, Any] = {"name": job.name, "resource_spec": job.resource_specs,
                                "min_clients": job.min_clients, "deploy_map": deploy_map}
        if job.mandatory_clients:
            meta["mandatory_clients"] = job.mandatory_clients
        meta.update(job.meta_props)
        write_json(staging / "meta.json", meta)
        if final.exists():
            shutil.rmtree(final)
        os.replace(staging, final)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    return final, provenance, problems


@contextlib.contextmanager
def staged(job: FedJob) -> Iterator[tuple[Path, dict[str, Provenance], list[Problem]]]:
    """``job`` written into a new temporary folder, for checking and running: removed
    afterwards, unless the job was found invalid (its report points into it: kept)."""

    tmp = Path(tempfile.mkdtemp(prefix="flconfig-job-"))
    keep = False
    try:
        yield write_job(job, tmp)
    except JobInvalid:
        keep = True
        raise
    finally:
        if not keep:
            shutil.rmtree(tmp, ignore_errors=True)


def _check_replaceable(folder: Path, name: str) -> None:
    try:
        meta = json.loads((folder / "meta.json").read_text())
    except (OSError, ValueError):
        meta = None
    if not isinstance(meta, dict) or meta.get("name") != name:
        raise RuntimeError(f"{folder} exists and is not an export of job {name!r}: not replaced")


def _config(app: FedApp, exporter: Exporter, job: FedJob) -> tuple[dict[str, Any], Provenance]:
    where: Provenance = {}
    config: dict[str, Any] = {"format_version": 2}
    if app.target == SERVER:
        config["workflows"] = []
        for i, (comp_id, obj, authored) in enumerate(app.workflows):
            config["workflows"].append({"id": comp_id, **exporter.spec(obj, authored)})
            where[("workflows", i)] = authored
    else:
        config["executors"] = []
        for i, (tasks, obj, authored) in enumerate(app.executors):
            config["executors"].append({"tasks": list(tasks), "executor": exporter.spec(obj, authored)})
            where[("executors", i)] = authored
    config["components"] = []
    for i, (comp_id, obj, authored) in enumerate(app.components):
        config["components"].append({"id": comp_id, **exporter.spec(obj, authored)})
        where[("components", i)] = authored
    for section in ("task_data_filters", "task_result_filters"):
        chains = []
        for i, (tasks, filters, authored) in enumerate(app.filters.get(section, [])):
            chains.append({"tasks": list(tasks), "filters": [exporter.spec(f, authored) for f in filters]})
            where[(section, i)] = authored
        config[section] = chains
    params = dict(app.params)
    if app.target == SERVER and job.fail_fast:
        params["dead_client_grace_period"] = 0
    for key, value in params.items():
        config[key] = exporter.value(value, Authored(*job.site) if job.site else Authored(), f"{key!r}")
    return config, where


def _resources(app: FedApp, exporter: Exporter, resources: Resources) -> None:
    """The scripts, folders and files ``app`` names, for its app folder."""
    roots = job_roots()
    for script, authored in app.scripts:
        path = _find(script, roots)
        if path is None:
            exporter.problems.append(Problem("error", "missing-file", f"{script}: no such file",
                                             authored.position(), hint="give the script's path, "
                                             "relative to the working folder or the job script"))
            continue
        exporter.copy_script(path, _custom_name(script, path))
    for folder, _authored in app.folders:
        resources.folders.append((Path(folder).resolve(), "custom", "."))
    for source, dest_dir, kind in app.file_sources:
        path = Path(source).resolve()
        base = Path(dest_dir) if dest_dir else Path()
        if path.is_dir():
            resources.folders.append((path, kind, str(base)))
        else:
            resources.add(str(base / path.name), path, kind)


def _find(script: str, roots: list[Path]) -> Path | None:
    path = Path(script)
    if path.is_absolute():
        return path if path.is_file() else None
    for root in [Path.cwd(), *roots]:
        candidate = root / path
        if candidate.is_file():
            return candidate.resolve()
    return None


def _custom_name(script: str, path: Path) -> str:
    """Where a script goes in ``custom/``: its relative path as given (``src/train.py``), or
    its name alone when it was given by an absolute path or one leading out."""
    given = Path(script)
    if given.is_absolute() or ".." in given.parts:
        return path.name
    return given.as_posix()
