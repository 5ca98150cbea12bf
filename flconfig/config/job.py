"""Load a job folder (or an app folder, or one config file) into a checked :class:`Job`.

Data flows one way: files → :class:`~flconfig.config.documents.Document` (with
positions) → variables resolved → schema-checked → component specs resolved
through the registry → wiring and event checks → a :class:`Job` whose
``build(site)`` instantiates a site's components.

:func:`inspect_job` never raises for bad input: it returns the job (as far as
it could be read) and every problem found. :func:`load_job` raises
:class:`~flconfig.errors.ConfigError` when there is any error.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, JsonPath, Position, Problem, display_path, errors_only
from .documents import CONFIG_SUFFIXES, DEFAULT_SUFFIX, Document, load_document

if TYPE_CHECKING:
    from ..registry import ComponentInfo, Registry
    from ..runtime.build import BuiltSite
    from .meta import MetaInfo

CLIENT_CONFIG = "config_fed_client"
SERVER_CONFIG = "config_fed_server"
META_NAME = "meta"
SPEC_KEYS = ("path", "class_path", "name")  # FLARE's precedence order

#: Placeholders for system variables while validating (no site is running yet).
VALIDATION_WORKSPACE = "/tmp/flconfig-workspace"
VALIDATION_JOB_ID = "simulate_job"


_EMPTY: Mapping[str, Any] = MappingProxyType({})


@dataclass(frozen=True)
class ComponentSpec:
    """One ``{id, path|name, args}`` entry of a config, resolved or not. Immutable: resolving
    its class gives a new spec (:meth:`ConfigFile.resolve_components`)."""

    doc: Document  # the resolved document it is written in (positions for messages)
    json_path: JsonPath
    role: str  # "component" | "executor" | "workflow" | "filter" | "nested"
    id: str | None
    key: str  # which of SPEC_KEYS named the class
    ref: str  # the class path or short name as written
    args: Mapping[str, Any]  # the constructor's args, as written (read-only)
    disabled: bool = False
    #: For a nested spec: how messages name the spec holding it, the arg holding it, and
    #: the id of the top-level spec it belongs to (its references count for that one).
    parent_label: str | None = None
    arg_name: str | None = None
    owner_id: str | None = None
    nested: Mapping[str, ComponentSpec] = field(default_factory=lambda: _EMPTY)
    info: ComponentInfo | None = None  # the class, once resolved through the registry

    @property
    def label(self) -> str:
        cls = self.ref.rsplit(".", 1)[-1]
        if self.id:
            return f"component '{self.id}' ({cls})"
        if self.parent_label is not None:
            return f"'{self.arg_name}' of {self.parent_label}"
        return f"{self.role} {cls}"

    @property
    def is_nested(self) -> bool:
        return self.parent_label is not None

    @property
    def args_path(self) -> JsonPath:
        return (*self.json_path, "args")

    @property
    def kind(self) -> str | None:
        return self.info.kind if self.info is not None else None

    def walk(self) -> Iterator[ComponentSpec]:
        """This spec and every spec nested in its args, parents first."""
        yield self
        for child in self.nested.values():
            yield from child.walk()

    def resolved(self, registry: Registry, problems: list[Problem]) -> ComponentSpec:
        """This spec and its nested ones with their classes resolved through ``registry``;
        what does not resolve is added to ``problems`` and keeps ``info`` None."""
        from ..registry import ResolveError

        info = None
        try:
            info = registry.resolve(self.key, self.ref)
        except ResolveError as exc:
            problems.append(self.doc.problem(exc.code, exc.message,
                                             (*self.json_path, self.key), exc.hint))
        # Args the class takes as plain dicts (``PLAIN_DICT_ARGS``: FedOpt's optimizer_args,
        # which FLARE exports without config_type) hold no component.
        plain = info.attributes.get("PLAIN_DICT_ARGS", ()) if info is not None else ()
        nested = {name: child.resolved(registry, problems) for name, child in self.nested.items()
                  if not (isinstance(plain, list) and name in plain) and child._is_component(registry)}
        return replace(self, info=info, nested=MappingProxyType(nested) if nested else _EMPTY)

    def _is_component(self, registry: Registry) -> bool:
        """FLARE's rule for a nested dict: a ``name`` that names no class leaves it a plain
        dict (W&B's ``wandb_args: {"name": "n"}``). A name written like a class (capitalized)
        stays a component, so that a misspelt one is reported; a path always names one."""
        from ..registry import ResolveError

        if self.key != "name" or self.ref[:1].isupper():
            return True
        try:
            registry.resolve(self.key, self.ref)
        except ResolveError as exc:
            return exc.code != "unknown-component"
        return True


#: An executor entry: the tasks it handles and its spec.
ExecutorEntry = tuple[tuple[str, ...], ComponentSpec]
#: A filter: its section (``task_data_filters`` | ``task_result_filters``), its chain's tasks
#: and direction, and its spec.
FilterEntry = tuple[str, tuple[str, ...], str, ComponentSpec]


@dataclass(frozen=True)
class ConfigFile:
    """A client or server config of one app, after variables are resolved. Immutable."""

    role: str  # "client" | "server"
    app: str
    file: Path
    raw: Document
    doc: Document  # resolved
    executors: tuple[ExecutorEntry, ...] = ()
    components: tuple[ComponentSpec, ...] = ()
    workflows: tuple[ComponentSpec, ...] = ()
    filters: tuple[FilterEntry, ...] = ()

    def top_specs(self) -> list[ComponentSpec]:
        """Every top-level spec in document order."""
        specs = [s for _, s in self.executors] + [s for *_, s in self.filters]
        specs += [*self.components, *self.workflows]
        return sorted(specs, key=lambda s: _path_order(s.json_path))

    def all_specs(self) -> list[ComponentSpec]:
        return [spec for top in self.top_specs() for spec in top.walk()]

    def resolve_components(self, registry: Registry) -> tuple[ConfigFile, list[Problem]]:
        """This config with the class of every spec resolved through ``registry`` (a part of
        loading, before any check), and the problems of the specs that do not resolve."""
        problems: list[Problem] = []
        config = replace(
            self,
            executors=tuple((tasks, spec.resolved(registry, problems)) for tasks, spec in self.executors),
            components=tuple(spec.resolved(registry, problems) for spec in self.components),
            workflows=tuple(spec.resolved(registry, problems) for spec in self.workflows),
            filters=tuple((section, tasks, direction, spec.resolved(registry, problems))
                          for section, tasks, direction, spec in self.filters),
        )
        problems.sort(key=Problem.sort_key)
        return config, problems

    def by_id(self) -> dict[str, ComponentSpec]:
        """Components (and, on the server, workflows) addressable by id."""
        out: dict[str, ComponentSpec] = {}
        for spec in (*self.components, *self.workflows):
            if spec.id and spec.id not in out:
                out[spec.id] = spec
        return out


@dataclass(frozen=True)
class App:
    name: str
    folder: Path | None
    client: ConfigFile | None = None
    server: ConfigFile | None = None
    #: False when custom/ (or a link in it) leads outside the job folder: then no
    #: class of it is "custom" and nothing in it is ever imported.
    custom_allowed: bool = True
    #: False when the participant the job is checked for runs no custom code: nothing of
    #: the job folder is imported, and a class or script of custom/ is an error.
    runs_custom_code: bool = True

    @property
    def custom_dir(self) -> Path | None:
        """The app's ``custom/`` folder, when it exists and stays inside the job folder."""
        if self.folder is None or not self.custom_allowed:
            return None
        custom = self.folder / "custom"
        return custom if custom.is_dir() else None


def _with_config(app: App, role: str, config: ConfigFile) -> App:
    return replace(app, server=config) if role == "server" else replace(app, client=config)


def _checked_app(name: str, folder: Path, root: Path, problems: list[Problem]) -> App:
    """The app in ``folder``, its custom/ refused (and why, in ``problems``) if it, or a
    link in it, leaves the job folder ``root``."""
    from ..validate.containment import check_custom_dir

    found = check_custom_dir(folder / "custom", root)
    problems.extend(found)
    return App(name, folder, custom_allowed=not found)


def _path_order(path: JsonPath) -> tuple[Any, ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


@dataclass(frozen=True)
class Job:
    """A loaded job: its meta, apps and configs, and the problems found in them.

    Immutable and checked once: :func:`inspect_job` builds it, resolves every class and
    runs every check, and nothing changes it afterwards (the checks are pure functions
    of it). A run is planned from it (:func:`flconfig.runtime.plan.plan_run`)."""

    name: str
    folder: Path
    meta: MetaInfo
    meta_doc: Document | None
    apps: Mapping[str, App]
    #: One registry per app: it resolves classes from that app's ``custom/`` only.
    registries: Mapping[str, Registry]
    problems: tuple[Problem, ...] = ()
    allowed_modules: tuple[str, ...] = ()
    #: Folders the user put on the job's import path (``--python-path``), resolved.
    python_path: tuple[Path, ...] = ()

    @property
    def errors(self) -> list[Problem]:
        return errors_only(self.problems)

    def registry_for(self, app: str) -> Registry:
        """The registry of the participants ``app`` is deployed to: built-ins, FLARE
        aliases, plugins, allowed modules and that app's own ``custom/`` folder."""
        return self.registries[app]

    def configs(self) -> list[ConfigFile]:
        """Every app's server and client config that was read."""
        return [c for app in self.apps.values() for c in (app.server, app.client) if c is not None]

    @property
    def server_config(self) -> ConfigFile | None:
        app = self.meta.server_app()
        return self.apps[app].server if app is not None and app in self.apps else None

    def client_sites(self, num_clients: int | None = None) -> list[str]:
        """The client sites to run: named in deploy_map, else ``site-1..site-N``."""
        named = list(self.meta.client_sites())
        if named:
            return named if num_clients is None else named[:num_clients]
        count = num_clients or max(self.meta.min_clients or 0, self.workflow_min_clients(), 2)
        return [f"site-{i}" for i in range(1, count + 1)]

    def workflow_min_clients(self) -> int:
        """The most sites any enabled server workflow waits for (its ``min_clients`` as
        written; 0 when none says). FLARE schedules a job on meta's ``min_clients``, but a
        workflow may wait for more, so an ``@ALL`` launch starts at least this many sites."""
        server = self.server_config
        values = [spec.args.get("min_clients") for spec in (server.workflows if server else ())
                  if not spec.disabled]
        return max((v for v in values if isinstance(v, int) and not isinstance(v, bool)), default=0)

    def config_for(self, site: str) -> ConfigFile:
        app_name = self.meta.app_for(site)
        app = self.apps.get(app_name) if app_name else None
        config = None if app is None else (app.server if site == "server" else app.client)
        if config is None:
            raise ConfigError.single("deploy-map", f"no app is deployed to site '{site}'",
                                     Position(str(self.folder)))
        return config

    def build(self, site: str, *, workspace: str | Path | None = None, job_id: str = VALIDATION_JOB_ID,
              environ: Mapping[str, str] | None = None) -> BuiltSite:
        """Instantiate the server's (``site="server"``) or a client site's components."""
        from ..runtime.build import build_site

        return build_site(self, site, workspace=workspace, job_id=job_id, environ=environ)


# --- discovery -------------------------------------------------------------------------------


_display = display_path


def find_config(folder: Path, basename: str) -> tuple[Path | None, list[Problem]]:
    """The one file ``basename.{json,conf,yaml,yml}`` in ``folder``; two of them is an error.

    As in FLARE, ``basename.json.default`` (``.conf.default`` ...) is read when there is no
    such file: a default that the file of the same name, once written, replaces."""
    found = [folder / f"{basename}{suffix}" for suffix in CONFIG_SUFFIXES
             if (folder / f"{basename}{suffix}").is_file()]
    if not found:
        found = [folder / f"{basename}{suffix}{DEFAULT_SUFFIX}" for suffix in CONFIG_SUFFIXES
                 if (folder / f"{basename}{suffix}{DEFAULT_SUFFIX}").is_file()]
    if len(found) > 1:
        names = ", ".join(p.name for p in found)
        return found[0], [Problem("error", "duplicate-config",
                                  f"two files for one config: {names}", Position(_display(found[1])),
                                  hint=f"keep one of {names}; flconfig never picks one silently")]
    return (found[0] if found else None), []


def _load(file: Path, problems: list[Problem], *, root: Path | None = None,
          environ: Mapping[str, str] | None = None) -> Document | None:
    """Parse a file, adding its syntax errors and warnings to ``problems``; None when unreadable.
    ``root`` is the job folder a HOCON include stays inside; ``environ`` what a HOCON
    ``${X}`` the file does not define may read (None: nothing)."""
    try:
        doc = load_document(file, _display(file), root=root, environ=environ)
    except ConfigError as exc:
        problems.extend(exc.problems)
        return None
    problems.extend(doc.problems)
    return doc


def _find_meta(folder: Path) -> tuple[Path | None, list[Problem]]:
    return find_config(folder, META_NAME)


#: Where a site reaches the server, for configs that name FLARE's ``{ROOT_URL}``, ``{CP_URL}``
#: and ``{RELAY_URL}``: flconfig's simulator serves on this machine.
LOCAL_ROOT_URL = "grpc://127.0.0.1"


def system_variables(site: str, workspace: str | Path, job_id: str, custom_dir: Path | None,
                     config_dir: Path | None = None,
                     environ: Mapping[str, str] | None = None) -> dict[str, Any]:
    """The variables FLARE defines for every config (its ``SystemVarName``), as this run has
    them: a client also gets the server's URLs and its app's config folder; ``SECURE_MODE``
    is false (the simulator is not provisioned); ``PYTHONPATH`` is ``environ``'s (None: no
    environment, so ""), never this process's."""
    env: Mapping[str, str] = {} if environ is None else environ
    found: dict[str, Any] = {
        "SITE_NAME": site,
        "WORKSPACE": str(workspace),
        "JOB_ID": job_id,
        "SECURE_MODE": False,
        "JOB_CUSTOM_DIR": str(custom_dir) if custom_dir else "",
        "PYTHONPATH": env.get("PYTHONPATH", ""),
    }
    if site != "server":
        found.update(ROOT_URL=LOCAL_ROOT_URL, CP_URL=LOCAL_ROOT_URL, RELAY_URL=LOCAL_ROOT_URL,
                     JOB_CONFIG_DIR=str(config_dir) if config_dir else "")
    return found


def read_config(file: Path, role: str, app: App, site: str, problems: list[Problem], *,
                workspace: str | Path = VALIDATION_WORKSPACE, job_id: str = VALIDATION_JOB_ID,
                environ: Mapping[str, str] | None = None, root: Path | None = None) -> ConfigFile | None:
    """Parse, resolve variables and schema-check one config; extract its component specs.
    ``root`` is the job folder (a HOCON include stays inside it; default: the file's folder);
    ``environ`` is all of the environment the config may read (None: none)."""
    raw = _load(file, problems, root=root, environ=environ)
    if raw is None:
        return None
    return resolve_config(raw, file, role, app, site, problems, workspace=workspace,
                          job_id=job_id, environ=environ)


def resolve_config(raw: Document, file: Path, role: str, app: App, site: str,
                   problems: list[Problem], *, workspace: str | Path = VALIDATION_WORKSPACE,
                   job_id: str = VALIDATION_JOB_ID, environ: Mapping[str, str] | None = None,
                   check: bool = True) -> ConfigFile | None:
    """Resolve the variables of a parsed config for ``site`` and schema-check it (``check``);
    extract its component specs. ``raw`` is not changed."""
    from ..schemas import check_document
    from .variables import resolve

    if not isinstance(raw.data, dict):
        problems.append(raw.problem("schema", "a config file must hold a mapping (an object) at the top", (),
                                    "start the file with '{' (JSON) or 'key: value' lines (YAML)"))
        return None
    env: Mapping[str, str] = {} if environ is None else environ
    config_dir = app.folder / "config" if app.folder is not None else None
    doc, var_problems = resolve(raw, system_variables(site, workspace, job_id, app.custom_dir,
                                                      config_dir, env), env)
    problems.extend(var_problems)
    if any(p.code == "too-large" for p in var_problems):
        return None  # nothing of it is usable: the one problem says why
    if check:
        problems.extend(check_document(doc, role))
    return _config_of(role, app.name, file, raw, doc)


def _spec_from(doc: Document, value: Any, path: JsonPath, role: str, *,
               parent: ComponentSpec | None = None, arg_name: str | None = None,
               default_id: str | None = None) -> ComponentSpec | None:
    """A ComponentSpec from a dict, or None when it is not a usable spec (schema reports why)."""
    if not isinstance(value, dict):
        return None
    key = next((k for k in SPEC_KEYS if k in value), None)
    if key is None or not isinstance(value.get(key), str) or not value[key]:
        return None
    args = value.get("args", {})
    if not isinstance(args, dict):
        args = {}
    args_path = (*path, "args")
    if "class_attributes" in args and isinstance(args["class_attributes"], dict):
        args, args_path = args["class_attributes"], (*path, "args", "class_attributes")
    raw_id = value.get("id")
    spec_id = raw_id if isinstance(raw_id, str) and raw_id else default_id
    spec = ComponentSpec(
        doc=doc, json_path=path, role=role, id=spec_id, key=key, ref=value[key], args=args,
        disabled=value.get("disabled") is True,
        parent_label=None if parent is None else parent.label, arg_name=arg_name,
        owner_id=spec_id if parent is None else parent.owner_id,
    )
    nested: dict[str, ComponentSpec] = {}
    for name, arg in args.items():
        if is_nested_spec(arg):
            child = _spec_from(doc, arg, (*args_path, name), "nested", parent=spec, arg_name=name)
            if child is not None:
                nested[name] = child
    return replace(spec, nested=MappingProxyType(nested)) if nested else spec


def is_nested_spec(value: Any) -> bool:
    """FLARE's rule: a dict arg value with path/class_path/name is a component, unless
    config_type is dict. FLARE takes a dict with only a ``name`` for a component when the
    name resolves to a class; one that cannot be a class name (``"name": "hello-pt"`` in
    W&B's run settings) leaves it a plain dict."""
    if not isinstance(value, Mapping) or value.get("config_type", "component") != "component":
        return False
    if isinstance(value.get("path"), str) or isinstance(value.get("class_path"), str):
        return True
    name = value.get("name")
    return isinstance(name, str) and name.isidentifier()


def _config_of(role: str, app: str, file: Path, raw: Document, doc: Document) -> ConfigFile:
    """The config with its component specs (not resolved yet)."""
    data = doc.data
    executors: list[ExecutorEntry] = []
    filters: list[FilterEntry] = []
    components: list[ComponentSpec] = []
    workflows: list[ComponentSpec] = []
    for i, entry in enumerate(_list(data.get("executors"))):
        if isinstance(entry, dict):
            tasks = tuple(t for t in _list(entry.get("tasks")) if isinstance(t, str))
            spec = _spec_from(doc, entry.get("executor"), ("executors", i, "executor"), "executor")
            if spec is not None:
                executors.append((tasks, spec))
    for section in ("task_data_filters", "task_result_filters"):
        for i, chain in enumerate(_list(data.get(section))):
            if not isinstance(chain, dict):
                continue
            tasks = tuple(t for t in _list(chain.get("tasks")) if isinstance(t, str))
            for j, f in enumerate(_list(chain.get("filters"))):
                spec = _spec_from(doc, f, (section, i, "filters", j), "filter")
                if spec is not None:
                    filters.append((section, tasks, str(chain.get("direction", "")), spec))
    for i, entry in enumerate(_list(data.get("components"))):
        spec = _spec_from(doc, entry, ("components", i), "component")
        if spec is not None:
            components.append(spec)
    if role == "server":
        for i, entry in enumerate(_list(data.get("workflows"))):
            # FLARE: a workflow's id defaults to its class name
            ref = entry.get(next((k for k in SPEC_KEYS if k in entry), ""), "") if isinstance(entry, dict) else ""
            default_id = ref.rsplit(".", 1)[-1] if isinstance(ref, str) and ref else None
            spec = _spec_from(doc, entry, ("workflows", i), "workflow", default_id=default_id)
            if spec is not None:
                workflows.append(spec)
    return ConfigFile(role, app, file, raw, doc, tuple(executors), tuple(components),
                      tuple(workflows), tuple(filters))


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def _classify(path: Path) -> str:
    if path.is_file():
        return "file"
    if (path / "config").is_dir() and not _find_meta(path)[0]:
        return "app"
    return "job"


def inspect_job(path: str | Path, *, allowed_modules: Sequence[str] = (),
                environ: Mapping[str, str] | None = None,
                python_path: Sequence[str | Path] = (),
                participant: str | None = None,
                allow_custom_code: bool = True) -> tuple[Job | None, list[Problem]]:
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
    """
    from ..validate.checks import check_job

    target = Path(path)
    if not target.exists():
        return None, [Problem("error", "io", "no such file or folder", Position(str(path)))]
    kind = _classify(target)
    problems: list[Problem] = []
    folders = []
    for entry in python_path:
        folder = Path(entry)
        if folder.is_dir():
            folders.append(folder.resolve())
        else:
            problems.append(Problem("error", "usage", "the --python-path folder does not exist",
                                    Position(str(entry)), hint="give a folder that holds Python modules"))
    policy = _Policy(allowed_modules, tuple(folders), allow_custom_code, participant)
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
    python-path folders), and whether the participant it is checked for runs custom code."""

    allowed_modules: Sequence[str]
    python_path: tuple[Path, ...]
    allow_custom_code: bool = True
    participant: str | None = None  # None: every participant

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
    from ..registry import Registry

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
        "does not run custom code", Position(_display(custom)),
        hint="remove custom/ and use built-in components, FLARE classes flconfig provides or "
             "installed plugins; or its operator allows the job's code with "
             '"allow_custom_code": true in its kit')]


def _single_file_job(file: Path, problems: list[Problem], policy: _Policy,
                     environ: Mapping[str, str] | None) -> Job | None:
    from .meta import default_meta

    stem = file.name.split(".", 1)[0]
    if stem == META_NAME:
        problems.append(Problem("error", "usage", "a meta file alone is not a job", Position(_display(file)),
                                hint="validate the job folder that holds it"))
        return None
    role = "server" if "server" in stem else "client" if "client" in stem else None
    if role is None:
        try:
            probe = load_document(file, _display(file), root=file.parent, environ=environ)
            role = "server" if isinstance(probe.data, dict) and "workflows" in probe.data else "client"
        except ConfigError:
            role = "client"
    folder = file.parent.parent if file.parent.name == "config" else file.parent
    app = _checked_app(folder.name or "app", folder, folder, problems)
    meta = default_meta(app.name)
    config = read_config(file, role, app, "server" if role == "server" else "site-1", problems, environ=environ,
                         root=file.parent)
    if config is not None:
        app = _with_config(app, role, config)
    return _make_job(app.name, folder, meta, None, {app.name: app}, policy, environ, problems)


def _folder_job(folder: Path, kind: str, problems: list[Problem], policy: _Policy,
                environ: Mapping[str, str] | None) -> Job | None:
    from ..schemas import check_document
    from ..validate.containment import check_path
    from .meta import NAME_RE, check_meta, default_meta

    meta_doc: Document | None = None
    if kind == "app":  # a legacy app folder without meta: deploy it everywhere
        meta = default_meta(folder.resolve().name)
        app_folders = {meta.server_app() or folder.name: folder}
    else:
        meta_file, found = _find_meta(folder)
        problems.extend(found)
        if meta_file is None:
            problems.append(Problem("error", "missing-file", "no meta.json (or meta.yaml) in the job folder",
                                    Position(_display(folder)),
                                    hint="a job folder holds meta.json and one folder per app; "
                                         "an app folder holds config/"))
            return None
        linked = check_path(meta_file, "the meta file", folder)
        if linked:
            problems.extend(linked)
            return None
        meta_doc = _load(meta_file, problems, root=folder, environ=environ)
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
        where = meta_doc.key_position(("deploy_map", name)) if meta_doc else Position(_display(folder))
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
                                    f"app '{name}' has no config folder: {_display(config_dir)} does not exist",
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
                    f"add {_display(config_dir / (basename + '.json'))}"))
                continue
            linked = check_path(file, f"config file {file.name}", folder)
            if linked:
                problems.extend(linked)
                continue
            site = "server" if role == "server" else first_client
            config = read_config(file, role, app, site, problems, environ=environ, root=folder)
            if config is not None:
                app = apps[name] = _with_config(app, role, config)
    name = meta.name or folder.resolve().name
    return _make_job(name, folder, meta, meta_doc, apps, policy, environ, problems)


def _app_folder_hint(job_folder: Path, app_folder: Path) -> str:
    try:
        apps = sorted(p.name for p in job_folder.iterdir() if (p / "config").is_dir())
    except OSError:
        apps = []
    hint = f"create {_display(app_folder)}/config/, or name an existing app folder in deploy_map"
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
             allow_custom_code: bool = True) -> Job:
    """Load and check a job; raises :class:`ConfigError` listing every error found
    (the arguments are :func:`inspect_job`'s)."""
    job, problems = inspect_job(path, allowed_modules=allowed_modules, environ=environ,
                                python_path=python_path, participant=participant,
                                allow_custom_code=allow_custom_code)
    errors = errors_only(problems)
    if errors or job is None:
        raise ConfigError(errors or problems)
    return job
