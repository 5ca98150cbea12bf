"""The loader: a job folder (or an app folder, or one config file) into a checked :class:`Job`.

Data flows one way: files → :class:`~flconfig.config.documents.Document` (with
positions) → variables resolved → schema-checked → component specs resolved
through the registry → wiring and event checks → an immutable :class:`Job`, from which
a run is planned (:func:`flconfig.runtime.planner.plan_run`).

:func:`inspect_job` never raises for bad input: it returns the job (as far as
it could be read) and every problem found. :func:`load_job` raises
:class:`~flconfig.errors.ConfigError` when there is any error.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from dataclasses import dataclass, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any

from ..config.documents import Document
from ..config.job import (
    CLIENT_CONFIG,
    META_NAME,
    SERVER_CONFIG,
    VALIDATION_JOB_ID,
    VALIDATION_WORKSPACE,
    App,
    ConfigFile,
    Job,
    classify,
    config_of,
    find_config,
    find_meta,
    parse_file,
    system_variables,
    with_config,
)
from ..config.meta import NAME_RE, MetaInfo, check_meta, default_meta
from ..config.parsers import load_document
from ..config.variables import resolve
from ..errors import ConfigError, Position, Problem, display_path, errors_only
from ..registry import Registry
from ..schemas import check_document
from .checks import check_components, check_job
from .containment import check_custom_dir, check_path
from .wiring import check_wiring


def _checked_app(name: str, folder: Path, root: Path, problems: list[Problem]) -> App:
    """The app in ``folder``, its custom/ refused (and why, in ``problems``) if it, or a
    link in it, leaves the job folder ``root``."""
    found = check_custom_dir(folder / "custom", root)
    problems.extend(found)
    return App(name, folder, custom_allowed=not found)


def read_config(file: Path, role: str, app: App, site: str, problems: list[Problem], *,
                workspace: str | Path = VALIDATION_WORKSPACE, job_id: str = VALIDATION_JOB_ID,
                environ: Mapping[str, str] | None = None, root: Path | None = None) -> ConfigFile | None:
    """Parse, resolve variables and schema-check one config; extract its component specs.
    ``root`` is the job folder (a HOCON include stays inside it; default: the file's folder);
    ``environ`` is all of the environment the config may read (None: none)."""
    raw = parse_file(file, problems, root=root, environ=environ)
    if raw is None:
        return None
    return resolve_config(raw, file, role, app, site, problems, workspace=workspace,
                          job_id=job_id, environ=environ)


def resolve_config(raw: Document, file: Path, role: str, app: App, site: str,
                   problems: list[Problem], *, workspace: str | Path = VALIDATION_WORKSPACE,
                   job_id: str = VALIDATION_JOB_ID,
                   environ: Mapping[str, str] | None = None) -> ConfigFile | None:
    """Resolve the variables of a parsed config for ``site`` and schema-check it; extract
    its component specs. ``raw`` is not changed."""
    if not isinstance(raw.data, dict):
        problems.append(raw.problem("schema", "a config file must hold a mapping (an object) at the top", (),
                                    "start the file with '{' (JSON) or 'key: value' lines (YAML)"))
        return None
    env: Mapping[str, str] = {} if environ is None else environ
    system = _system_of(app, site, workspace, job_id, env)
    doc, var_problems = resolve(raw, system, env)
    problems.extend(var_problems)
    if any(p.code == "too-large" for p in var_problems):
        return None  # nothing of it is usable: the one problem says why
    problems.extend(check_document(doc, role))
    return replace(config_of(role, app.name, file, raw, doc),
                   system=MappingProxyType(system), environ=MappingProxyType(dict(env)))


def _system_of(app: App, site: str, workspace: str | Path, job_id: str,
               environ: Mapping[str, str]) -> dict[str, Any]:
    """The system variables of ``app``'s configs on ``site`` in a run."""
    config_dir = app.folder / "config" if app.folder is not None else None
    return system_variables(site, workspace, job_id, app.custom_dir, config_dir, environ)


def check_site_config(job: Job, site: str, *, workspace: str | Path, job_id: str,
                      environ: Mapping[str, str] | None = None) -> tuple[ConfigFile | None, list[Problem]]:
    """The config of ``site`` ("server" or a client site) of the checked ``job`` resolved
    for one run and checked as :func:`inspect_job` checks each config: variables resolved
    with this run's values and the document schema-checked, every class resolved through
    its app's registry, each component's kind and args and the wiring checked. Returns
    (the config or None, every problem found), never raises for bad input. Planning a run
    calls it only for a site whose config the run resolves differently from the job's
    own (:func:`resolves_alike`), once per site."""
    template = job.config_for(site)
    problems: list[Problem] = []
    config = resolve_config(template.raw, template.file, template.role, job.apps[template.app],
                            site, problems, workspace=workspace, job_id=job_id, environ=environ)
    if config is not None:
        config, found = config.resolve_components(job.registry_for(template.app))
        problems += found
        problems += check_components(config)
        problems += check_wiring(config)
    return config, problems


def resolves_alike(job: Job, config: ConfigFile, site: str, *, workspace: str | Path,
                   job_id: str, environ: Mapping[str, str] | None = None) -> bool:
    """Whether ``config`` (a config of the checked ``job``) is already what resolving it
    for ``site`` in this run gives: resolved with the same environment, and every system
    variable that its text mentions having the same value for this run. Then the checks
    :func:`inspect_job` ran on it hold for the run as they are."""
    env: Mapping[str, str] = {} if environ is None else environ
    if dict(env) != dict(config.environ):
        return False
    now = _system_of(job.apps[config.app], site, workspace, job_id, env)
    names = mentioned(config.raw.data, {*now, *config.system})
    return all(now.get(name) == config.system.get(name) for name in names)


def mentioned(data: Any, names: Collection[str]) -> set[str]:
    """Which of ``names`` occur in the text of any key or string of ``data``: every
    variable a config's resolution can read is among them (a name written nowhere in
    the config is never looked up)."""
    found: set[str] = set()
    stack = [data]
    while stack and len(found) < len(names):
        value = stack.pop()
        if isinstance(value, dict):
            stack.extend(value.values())
            stack.extend(k for k in value if isinstance(k, str))
        elif isinstance(value, list):
            stack.extend(value)
        elif isinstance(value, str):
            found.update(name for name in names if name in value)
    return found


def inspect_job(path: str | Path, *, allowed_modules: Sequence[str] = (),
                environ: Mapping[str, str] | None = None,
                python_path: Sequence[str | Path] = (),
                participant: str | None = None,
                allow_custom_code: bool = True,
                workspace: str | Path = VALIDATION_WORKSPACE,
                job_id: str = VALIDATION_JOB_ID) -> tuple[Job | None, list[Problem]]:
    """Read and check everything about a job, app folder or config file; never raises for bad input.

    ``allowed_modules`` are module prefixes (installed packages) whose classes the job may
    name; ``python_path`` are folders whose modules it may import, as FLARE finds them on
    ``PYTHONPATH`` (missing folders are reported). Each app's configs resolve classes
    from that app's own ``custom/`` folder only. With ``allow_custom_code`` False the job
    is checked for a participant that runs no custom code (``participant``: ``"server"``
    or a site name; None: every participant): custom code in the app deployed to it, a
    class it names from the job folder, is an error. ``environ`` is all of the environment
    the job may read (HOCON ``${X}``, FLARE ``{$X}``, ``PYTHONPATH``, and flconfig's own
    ``FLCONFIG_ALLOW_MODULES`` and ``FLCONFIG_KEEP_UNDEFINED``): None reads none, never
    this process's environment, as a submitted job is checked on the server and the sites.
    ``workspace`` and ``job_id`` are the run's when it is known (``{WORKSPACE}`` and
    ``{JOB_ID}`` resolve to them, and planning that run resolves those configs no second
    time); by default, placeholders.
    """
    target = Path(path)
    if not target.exists():
        return None, [Problem("error", "io", "no such file or folder", Position(str(path)))]
    kind = classify(target)
    problems: list[Problem] = []
    folders = []
    for entry in python_path:
        folder = Path(entry)
        if folder.is_dir():
            folders.append(folder.resolve())
        else:
            problems.append(Problem("error", "usage", "the --python-path folder does not exist",
                                    Position(str(entry)), hint="give a folder that holds Python modules"))
    policy = _Policy(allowed_modules, tuple(folders), allow_custom_code, participant, workspace, job_id)
    if kind == "file":
        job = _single_file_job(target, problems, policy, environ)
    else:
        job = _folder_job(target, kind, problems, policy, environ)
    if job is not None:
        job = _resolved(job, problems)
        problems.extend(check_job(job))
    problems = _dedupe(problems)
    problems.sort(key=Problem.sort_key)
    if job is not None:
        job = replace(job, problems=tuple(problems))
    return job, problems


def _resolved(job: Job, problems: list[Problem]) -> Job:
    """``job`` with every config's classes resolved through its registry."""
    apps: dict[str, App] = {}
    for name, app in job.apps.items():
        configs: dict[str, ConfigFile | None] = {}
        for role in ("server", "client"):
            config = getattr(app, role)
            if config is not None:
                config, found = config.resolve_components(job.registry_for(name))
                problems.extend(found)
            configs[role] = config
        apps[name] = replace(app, server=configs["server"], client=configs["client"])
    return replace(job, apps=MappingProxyType(apps))


def _dedupe(problems: list[Problem]) -> list[Problem]:
    """Each problem once; one mistake that two checks flag, reported by the more telling one.

    A warning whose hint an error at the same place repeats (a YAML 1.1 spelling that
    also fails a type check) adds nothing; nor does a generic schema error at a value a
    later, specific check explains (a path with no module, which the registry explains).
    """
    seen: set[tuple[Any, ...]] = set()
    out = []
    for p in problems:
        key = (p.position, p.code, p.message)
        if key not in seen:
            seen.add(key)
            out.append(p)
    errors = [p for p in out if p.is_error]
    explained = {(p.position, p.hint) for p in errors if p.hint}
    specific = {(p.position, p.json_path) for p in errors if p.code != "schema" and p.json_path}
    return [p for p in out
            if not (not p.is_error and (p.position, p.hint) in explained)
            and not (p.is_error and p.code == "schema" and (p.position, p.json_path) in specific)]


@dataclass(frozen=True)
class _Policy:
    """What a job may import besides its apps' own custom/ folders (allowed module prefixes,
    python-path folders), whether the participant it is checked for runs custom code, and
    the run it is checked for (its workspace and job id; placeholders when not known)."""

    allowed_modules: Sequence[str]
    python_path: tuple[Path, ...]
    allow_custom_code: bool = True
    participant: str | None = None  # None: every participant
    workspace: str | Path = VALIDATION_WORKSPACE
    job_id: str = VALIDATION_JOB_ID

    def runs_custom_code(self, meta: MetaInfo, app: str) -> bool:
        """Whether the participants of ``app`` run custom code under this policy."""
        if self.allow_custom_code:
            return True
        return self.participant is not None and meta.app_for(self.participant) != app


#: Most folders of a job folder looked at for other apps' custom/ folders.
_MAX_APP_FOLDERS = 200


def _participants_of(meta: MetaInfo, app: str, policy: _Policy) -> str:
    """How messages name the participants ``app`` is deployed to."""
    if policy.participant is not None and meta.app_for(policy.participant) == app:
        return "the server" if policy.participant == "server" else f"site {policy.participant!r}"
    if app == meta.server_app() and app in meta.apps_needing("client"):
        return f"the server and the sites of app {app!r}"
    if app == meta.server_app():
        return "the server"
    return f"the sites of app {app!r}"


def _other_custom_dirs(folder: Path, apps: Mapping[str, App], own: str) -> dict[str, Path]:
    """The custom/ folders of the job's other app folders (deployed or not), by app name."""
    others = {name: app.folder / "custom" for name, app in apps.items()
              if name != own and app.folder is not None and app.folder != apps[own].folder}
    try:
        entries = sorted(folder.iterdir())[:_MAX_APP_FOLDERS]
    except OSError:
        entries = []
    for entry in entries:
        if entry.name not in others and entry.name != own and entry != apps[own].folder \
                and (entry / "custom").is_dir():
            others[entry.name] = entry / "custom"
    return others


def _make_job(name: str, folder: Path, meta: MetaInfo, meta_doc: Document | None,
              apps: Mapping[str, App], policy: _Policy, environ: Mapping[str, str] | None,
              problems: list[Problem]) -> Job:
    registries: dict[str, Registry] = {}
    checked: dict[str, App] = {}
    for app_name, app in apps.items():
        runs = policy.runs_custom_code(meta, app_name)
        who = _participants_of(meta, app_name, policy)
        if not runs:
            problems.extend(_custom_code_problems(app, who))
        checked[app_name] = replace(app, runs_custom_code=runs)
        registries[app_name] = Registry.create(
            custom_dirs=[app.custom_dir] if app.custom_dir else [],
            allowed_modules=policy.allowed_modules, environ=environ, job_root=folder,
            python_path=policy.python_path, allow_custom_code=runs, participant=who,
            other_custom=_other_custom_dirs(folder, apps, app_name))
    return Job(name, folder, meta, meta_doc, MappingProxyType(checked), MappingProxyType(registries),
               allowed_modules=tuple(policy.allowed_modules), python_path=policy.python_path)


#: Most files of a custom/ folder named in a message.
_NAMED_FILES = 3


def _custom_code_problems(app: App, who: str) -> list[Problem]:
    """An error when ``app`` holds custom code and ``who`` (its participant) runs none."""
    custom = app.custom_dir
    if custom is None:
        return []
    files = sorted(p.relative_to(custom).as_posix() for p in custom.rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts)
    if not files:
        return []
    named = ", ".join(files[:_NAMED_FILES]) + (f" and {len(files) - _NAMED_FILES} more"
                                                if len(files) > _NAMED_FILES else "")
    return [Problem(
        "error", "custom-code-not-allowed",
        f"app {app.name!r} holds custom code ({len(files)} file(s) in custom/: {named}), and {who} "
        "does not run custom code", Position(display_path(custom)),
        hint="remove custom/ and use built-in components, FLARE classes flconfig provides or "
             "installed plugins; or its operator allows the job's code with "
             '"allow_custom_code": true in its kit')]


def _single_file_job(file: Path, problems: list[Problem], policy: _Policy,
                     environ: Mapping[str, str] | None) -> Job | None:
    stem = file.name.split(".", 1)[0]
    if stem == META_NAME:
        problems.append(Problem("error", "usage", "a meta file alone is not a job", Position(display_path(file)),
                                hint="validate the job folder that holds it"))
        return None
    role = "server" if "server" in stem else "client" if "client" in stem else None
    if role is None:
        try:
            probe = load_document(file, display_path(file), root=file.parent, environ=environ)
            role = "server" if isinstance(probe.data, dict) and "workflows" in probe.data else "client"
        except ConfigError:
            role = "client"
    folder = file.parent.parent if file.parent.name == "config" else file.parent
    app = _checked_app(folder.name or "app", folder, folder, problems)
    meta = default_meta(app.name)
    config = read_config(file, role, app, "server" if role == "server" else "site-1", problems, environ=environ,
                         workspace=policy.workspace, job_id=policy.job_id,
                         root=file.parent)
    if config is not None:
        app = with_config(app, role, config)
    return _make_job(app.name, folder, meta, None, {app.name: app}, policy, environ, problems)


def _folder_job(folder: Path, kind: str, problems: list[Problem], policy: _Policy,
                environ: Mapping[str, str] | None) -> Job | None:
    meta_doc: Document | None = None
    if kind == "app":  # a legacy app folder without meta: deploy it everywhere
        meta = default_meta(folder.resolve().name)
        app_folders = {meta.server_app() or folder.name: folder}
    else:
        meta_file, found = find_meta(folder)
        problems.extend(found)
        if meta_file is None:
            problems.append(Problem("error", "missing-file", "no meta.json (or meta.yaml) in the job folder",
                                    Position(display_path(folder)),
                                    hint="a job folder holds meta.json and one folder per app; "
                                         "an app folder holds config/"))
            return None
        linked = check_path(meta_file, "the meta file", folder)
        if linked:
            problems.extend(linked)
            return None
        meta_doc = parse_file(meta_file, problems, root=folder, environ=environ)
        if meta_doc is None:
            return None
        schema_problems = check_document(meta_doc, "meta")
        meta, meta_problems = check_meta(meta_doc)
        # The schema and the deploy_map rules may both flag one bad value: report it once.
        # (By position and path: a YAML mapping starts where its first key does.)
        flagged = {(p.position, p.json_path) for p in schema_problems}
        problems.extend(schema_problems)
        problems.extend(p for p in meta_problems if (p.position, p.json_path) not in flagged)
        # An app name that failed the checks never becomes a path we touch.
        app_folders = {name: folder / name for name in meta.deploy_map if NAME_RE.match(name)}

    apps: dict[str, App] = {}
    first_client = next(iter(meta.client_sites()), "site-1")
    for name, app_folder in app_folders.items():
        apps[name] = App(name, app_folder)
        roles = _roles_needed(meta, name)
        where = meta_doc.key_position(("deploy_map", name)) if meta_doc else Position(display_path(folder))
        if not app_folder.is_dir():
            problems.append(Problem("error", "missing-file", f"app folder '{name}' does not exist",
                                    where, ("deploy_map", name) if meta_doc else (),
                                    _app_folder_hint(folder, app_folder)))
            continue
        linked = check_path(app_folder, f"app folder '{name}'", folder)
        if linked:
            problems.extend(linked)
            continue
        app = apps[name] = _checked_app(name, app_folder, folder, problems)
        if not roles:
            continue
        config_dir = app_folder / "config"
        if not config_dir.is_dir():
            problems.append(Problem("error", "missing-file",
                                    f"app '{name}' has no config folder: {display_path(config_dir)} does not exist",
                                    where, ("deploy_map", name) if meta_doc else (),
                                    "each app folder named in deploy_map holds config/config_fed_*.json"))
            continue
        for role in roles:
            basename = SERVER_CONFIG if role == "server" else CLIENT_CONFIG
            file, dup = find_config(config_dir, basename)
            problems.extend(dup)
            if file is None:
                problems.append(Problem(
                    "error", "missing-file",
                    f"app '{name}' is deployed to {'the server' if role == 'server' else 'client sites'} "
                    f"but has no {basename}.json (or .yaml)", where, ("deploy_map", name) if meta_doc else (),
                    f"add {display_path(config_dir / (basename + '.json'))}"))
                continue
            linked = check_path(file, f"config file {file.name}", folder)
            if linked:
                problems.extend(linked)
                continue
            site = "server" if role == "server" else first_client
            config = read_config(file, role, app, site, problems, environ=environ, root=folder,
                                 workspace=policy.workspace, job_id=policy.job_id)
            if config is not None:
                app = apps[name] = with_config(app, role, config)
    name = meta.name or folder.resolve().name
    return _make_job(name, folder, meta, meta_doc, apps, policy, environ, problems)


def _app_folder_hint(job_folder: Path, app_folder: Path) -> str:
    try:
        apps = sorted(p.name for p in job_folder.iterdir() if (p / "config").is_dir())
    except OSError:
        apps = []
    hint = f"create {display_path(app_folder)}/config/, or name an existing app folder in deploy_map"
    return hint + (f"; app folders here: {', '.join(apps)}" if apps else "")


def _roles_needed(meta: MetaInfo, app: str) -> list[str]:
    roles = []
    if app in meta.apps_needing("server"):
        roles.append("server")
    if app in meta.apps_needing("client"):
        roles.append("client")
    return roles


def load_job(path: str | Path, *, allowed_modules: Sequence[str] = (),
             environ: Mapping[str, str] | None = None,
             python_path: Sequence[str | Path] = (),
             participant: str | None = None,
             allow_custom_code: bool = True,
             workspace: str | Path = VALIDATION_WORKSPACE,
             job_id: str = VALIDATION_JOB_ID) -> Job:
    """Load and check a job; raises :class:`ConfigError` listing every error found
    (the arguments are :func:`inspect_job`'s)."""
    job, problems = inspect_job(path, allowed_modules=allowed_modules, environ=environ,
                                python_path=python_path, participant=participant,
                                allow_custom_code=allow_custom_code, workspace=workspace, job_id=job_id)
    errors = errors_only(problems)
    if errors or job is None:
        raise ConfigError(errors or problems)
    return job
