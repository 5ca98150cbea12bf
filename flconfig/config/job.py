"""A job as flconfig holds it: its meta, apps and configs (:class:`Job`, :class:`App`,
:class:`ConfigFile`, :class:`ComponentSpec`), and the pieces that read it from files.

Immutable: :func:`flconfig.validate.loader.inspect_job` (the loader) reads a job into
these, resolves every class and runs every check, and nothing changes it afterwards.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError, JsonPath, Position, Problem, display_path, errors_only
from ..registry import ComponentInfo, Registry, ResolveError
from .documents import CONFIG_SUFFIXES, DEFAULT_SUFFIX, Document
from .parsers import load_document

if TYPE_CHECKING:
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
    #: What its variables were resolved with: the system variables (``SITE_NAME``,
    #: ``WORKSPACE``, ``JOB_ID`` ...) and the environment. A run whose values the config
    #: reads differently resolves it again (:func:`flconfig.validate.loader.resolves_alike`).
    #: Never shown (the environment may hold secrets), and not part of a config's equality.
    system: Mapping[str, Any] = field(default_factory=dict, repr=False, compare=False)
    environ: Mapping[str, str] = field(default_factory=dict, repr=False, compare=False)

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


def with_config(app: App, role: str, config: ConfigFile) -> App:
    return replace(app, server=config) if role == "server" else replace(app, client=config)


def _path_order(path: JsonPath) -> tuple[Any, ...]:
    return tuple((0, p, "") if isinstance(p, int) else (1, 0, p) for p in path)


@dataclass(frozen=True)
class Job:
    """A loaded job: its meta, apps and configs, and the problems found in them.

    Immutable and checked once: :func:`inspect_job` builds it, resolves every class and
    runs every check, and nothing changes it afterwards (the checks are pure functions
    of it). A run is planned from it (:func:`flconfig.runtime.planner.plan_run`)."""

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


def parse_file(file: Path, problems: list[Problem], *, root: Path | None = None,
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


def find_meta(folder: Path) -> tuple[Path | None, list[Problem]]:
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


def config_of(role: str, app: str, file: Path, raw: Document, doc: Document) -> ConfigFile:
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


def classify(path: Path) -> str:
    if path.is_file():
        return "file"
    if (path / "config").is_dir() and not find_meta(path)[0]:
        return "app"
    return "job"


