"""A job's meta file: which app goes to which site, and how many clients the job needs.

:func:`check_meta` reads a parsed meta document into a :class:`MetaInfo` and
reports every broken deploy rule NVIDIA FLARE enforces at submission
(``@ALL`` alone, one app for the server, one app per site, ``min_clients``,
``mandatory_clients``), plus site and app names that would not be safe
folder names. :func:`default_meta` is the meta of a legacy job folder that
has none.
"""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

from ..errors import JsonPath, Problem
from .documents import Document, type_name

ALL_SITES = "@ALL"
SERVER = "server"
MAX_CLIENTS = 1_000_000

#: Site and app names become folder names: no separators, no "..", no spaces.
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}\Z")

#: What a client site may keep between two tasks (meta ``site_state``, ``flconfig launch
#: --site-state``): "keep" its built components for the whole run, or "release" them.
SITE_STATES = ("keep", "release")

#: Where ``flconfig launch`` runs the sites (meta ``launch.backend``, ``--backend``).
BACKENDS = ("process", "ray")

_NAME_RULE = "use letters, digits, '.', '_' and '-', starting with a letter or digit"


@dataclass(frozen=True)
class LaunchDefaults:
    """The job's meta ``launch`` object: how ``flconfig launch`` runs its sites when the
    command line does not say. None: not given."""

    #: "process" or "ray" (see :data:`BACKENDS`).
    backend: str | None = None
    #: CPUs and GPUs each site needs while it trains (the ray backend); a site's own
    #: ``resource_spec`` entry wins.
    site_cpus: float | None = None
    site_gpus: float | None = None


@dataclass(frozen=True)
class MetaInfo:
    """What a job's meta says about placement: apps, sites and client counts.

    ``deploy_map`` maps each app folder to its site names, in the order
    written, with ``@ALL`` spelled in capitals whatever the file says.
    """

    name: str | None = None
    min_clients: int | None = None
    mandatory_clients: tuple[str, ...] = ()
    deploy_map: dict[str, tuple[str, ...]] = field(default_factory=dict, hash=False)
    deploy_all: bool = False
    #: What a client site keeps between tasks: "keep" (FLARE's semantics: its built
    #: components live for the whole run) or "release" (dropped after each task and
    #: built again before the next); see :data:`SITE_STATES`.
    site_state: str = "keep"
    #: How ``flconfig launch`` runs the sites unless its command line says (meta ``launch``).
    launch: LaunchDefaults = LaunchDefaults()
    #: Each site's resource needs as written (meta ``resource_spec``: site -> {key: value});
    #: the ray backend reads ``num_cpus`` and ``num_gpus``/``num_of_gpus``.
    resource_spec: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False)

    def server_app(self) -> str | None:
        """The app the server runs (the ``@ALL`` app under ``@ALL``)."""
        for app, sites in self.deploy_map.items():
            if SERVER in sites or ALL_SITES in sites:
                return app
        return None

    def client_sites(self) -> tuple[str, ...]:
        """The client sites named in the deploy map; empty under ``@ALL``."""
        if self.deploy_all:
            return ()
        seen: dict[str, None] = {}
        for sites in self.deploy_map.values():
            for site in sites:
                if site != SERVER:
                    seen.setdefault(site, None)
        return tuple(seen)

    def app_for(self, site: str) -> str | None:
        """The app ``site`` (a client name or ``"server"``) runs, if any."""
        for app, sites in self.deploy_map.items():
            if site in sites:
                return app
        if self.deploy_all:
            for app, sites in self.deploy_map.items():
                if ALL_SITES in sites:
                    return app
        return None

    def apps_needing(self, role: Literal["server", "client"]) -> set[str]:
        """The apps that need a ``role`` config: ``config_fed_server`` or ``config_fed_client``."""
        if role not in ("server", "client"):
            raise ValueError(f"role must be 'server' or 'client', not {role!r}")
        out = set()
        for app, sites in self.deploy_map.items():
            if ALL_SITES in sites:
                out.add(app)
            elif role == "server" and SERVER in sites:
                out.add(app)
            elif role == "client" and any(site != SERVER for site in sites):
                out.add(app)
        return out


def default_meta(folder_name: str) -> MetaInfo:
    """The meta FLARE assumes for a legacy job folder without one: the folder is the
    only app, deployed to every site, with at least one client."""
    return MetaInfo(name=folder_name, min_clients=1,
                    deploy_map={folder_name: (ALL_SITES,)}, deploy_all=True)


@dataclass(frozen=True)
class _Entry:
    site: str
    app: str
    path: JsonPath


def check_meta(doc: Document) -> tuple[MetaInfo, list[Problem]]:
    """Read a parsed meta document and report every rule it breaks.

    The document is expected to have passed the meta schema, but any shape is
    accepted: what cannot be read is reported and left out of the result.
    """
    problems: list[Problem] = []
    data = doc.data
    if not isinstance(data, dict):
        problems.append(doc.problem("meta", f"the meta file must hold an object, not {type_name(data)}",
                                    (), 'write e.g. {"name": "job", "deploy_map": {"app": ["@ALL"]}}'))
        return MetaInfo(), problems

    name = data.get("name") if isinstance(data.get("name"), str) else None
    min_clients = _min_clients(doc, problems)
    mandatory = _mandatory(doc, problems)
    deploy_map, entries = _deploy_map(doc, problems)

    alls = [e for e in entries if e.site == ALL_SITES]
    if alls:
        _check_all(doc, entries, alls[0], problems)
    elif "deploy_map" in data and isinstance(data["deploy_map"], dict) and data["deploy_map"]:
        clients = _check_sites(doc, entries, problems)
        if clients is not None:
            _check_clients(doc, clients, min_clients, mandatory, problems)

    site_state = data.get("site_state")
    if site_state not in SITE_STATES:  # the schema names the allowed values where it is wrong
        site_state = "keep"
    info = MetaInfo(name, min_clients, tuple(c for c, _ in mandatory), deploy_map, bool(alls),
                    site_state, _launch_defaults(data.get("launch")),
                    _resource_spec(data.get("resource_spec")))
    return info, problems


def _launch_defaults(value: object) -> LaunchDefaults:
    """The meta's ``launch`` object; what the schema refuses (reported there) is left out."""
    if not isinstance(value, dict):
        return LaunchDefaults()
    backend = value.get("backend")

    def amount(key: str, least: float) -> float | None:
        number = value.get(key)
        if isinstance(number, bool) or not isinstance(number, (int, float)):
            return None
        return float(number) if math.isfinite(number) and number >= least else None

    cpus = amount("site_cpus", 0.0)
    return LaunchDefaults(backend if backend in BACKENDS else None,
                          cpus if cpus else None, amount("site_gpus", 0.0))


def _resource_spec(value: object) -> dict[str, Mapping[str, Any]]:
    """The meta's ``resource_spec``, the entries that are objects (the schema reports others)."""
    if not isinstance(value, dict):
        return {}
    return {site: entry for site, entry in value.items() if isinstance(site, str) and isinstance(entry, dict)}


def _min_clients(doc: Document, problems: list[Problem]) -> int | None:
    if "min_clients" not in doc.data:
        return None
    value = doc.data["min_clients"]
    path: JsonPath = ("min_clients",)
    if isinstance(value, bool) or not isinstance(value, int):
        problems.append(doc.problem("meta", f"min_clients must be a whole number, not {type_name(value)}",
                                    path, "write a number of clients, e.g. \"min_clients\": 2"))
        return None
    if not 1 <= value <= MAX_CLIENTS:
        problems.append(doc.problem("meta", f"min_clients must be between 1 and {MAX_CLIENTS:,}, "
                                    f"not {value}", path, "a job needs at least one client"))
        return None
    return value


def _mandatory(doc: Document, problems: list[Problem]) -> list[tuple[str, JsonPath]]:
    value = doc.data.get("mandatory_clients")
    if value is None:
        return []
    if not isinstance(value, list):
        problems.append(doc.problem("meta", f"mandatory_clients must be a list of site names, "
                                    f"not {type_name(value)}", ("mandatory_clients",),
                                    'write e.g. "mandatory_clients": ["site-1"]'))
        return []
    out = []
    for i, item in enumerate(value):
        path: JsonPath = ("mandatory_clients", i)
        if isinstance(item, str):
            out.append((item, path))
        else:
            problems.append(doc.problem("meta", f"a mandatory client must be a site name, "
                                        f"not {type_name(item)}", path, 'write the name in quotes, e.g. "site-1"'))
    return out


def _deploy_map(doc: Document, problems: list[Problem]) -> tuple[dict[str, tuple[str, ...]], list[_Entry]]:
    """The deploy map as app -> site names, and every site entry with its path."""
    path: JsonPath = ("deploy_map",)
    if "deploy_map" not in doc.data:
        problems.append(doc.problem("deploy-map", "the meta has no deploy_map", (),
                                    'add "deploy_map": {"app": ["@ALL"]} to run the app "app" '
                                    "on the server and every client"))
        return {}, []
    value = doc.data["deploy_map"]
    if not isinstance(value, dict):
        problems.append(doc.problem("deploy-map", f"deploy_map must be an object mapping app "
                                    f"folders to site lists, not {type_name(value)}", path,
                                    'write e.g. "deploy_map": {"app": ["@ALL"]}'))
        return {}, []
    if not value:
        problems.append(doc.problem("deploy-map", "deploy_map is empty: no app runs anywhere", path,
                                    'add an app, e.g. "deploy_map": {"app": ["@ALL"]}'))
        return {}, []

    deploy_map: dict[str, tuple[str, ...]] = {}
    entries: list[_Entry] = []
    for app, sites in value.items():
        app_path: JsonPath = (*path, app)
        app = app if isinstance(app, str) else str(app)
        if not NAME_RE.match(app):
            problems.append(doc.problem("deploy-map", f"app name {app!r} is not a plain folder name",
                                        app_path, _NAME_RULE, at_key=True))
        found: list[_Entry] = []
        if isinstance(sites, (dict, str)):  # FLARE main: "app": {"targets": [...]} or "app": "@ALL"
            found += _sites_of(doc, app, sites, app_path, problems)
        elif not isinstance(sites, list):
            problems.append(doc.problem("deploy-map", f"the sites of app '{app}' must be a list of site names, "
                                        f"not {type_name(sites)}", app_path,
                                        f'write e.g. "{app}": ["server", "site-1"]'))
        else:
            for i, item in enumerate(sites):
                found += _sites_of(doc, app, item, (*app_path, i), problems)
            if not sites:
                problems.append(doc.problem(
                    "deploy-map", f"app '{app}' is deployed to no site", app_path,
                    "list the sites that run it, or remove it", severity="warning"))
        deploy_map[app] = tuple(e.site for e in found)
        entries += found
    return deploy_map, entries


def _sites_of(doc: Document, app: str, item: Any, path: JsonPath,
              problems: list[Problem]) -> list[_Entry]:
    """The site names of one deploy_map entry: "site", {"sites": [...]} or {"targets": [...]}."""
    if isinstance(item, str):
        site = ALL_SITES if item.casefold() == ALL_SITES.casefold() else item
        return [_Entry(site, app, path)]
    if isinstance(item, dict):
        out: list[_Entry] = []
        keys = [k for k in ("sites", "targets") if k in item]
        if not keys:
            problems.append(doc.problem("deploy-map", f"a deploy_map entry of app '{app}' that is an "
                                        "object needs \"sites\" or \"targets\"", path,
                                        'write e.g. {"sites": ["site-1", "site-2"]}'))
        for key in keys:
            names = item[key]
            if not isinstance(names, list):
                problems.append(doc.problem("deploy-map", f"\"{key}\" must be a list of site names, "
                                            f"not {type_name(names)}", (*path, key),
                                            f'write e.g. {{"{key}": ["site-1"]}}'))
                continue
            for j, name in enumerate(names):
                out += _sites_of(doc, app, name, (*path, key, j), problems) \
                    if isinstance(name, str) else _not_a_site(doc, name, (*path, key, j), problems)
        return out
    return _not_a_site(doc, item, path, problems)


def _not_a_site(doc: Document, item: Any, path: JsonPath, problems: list[Problem]) -> list[_Entry]:
    problems.append(doc.problem("deploy-map", f"a site must be a name, not {type_name(item)}", path,
                                'write the site name in quotes, e.g. "site-1", or "@ALL"'))
    return []


def _check_all(doc: Document, entries: list[_Entry], first: _Entry, problems: list[Problem]) -> None:
    """With @ALL, nothing else may be deployed anywhere."""
    for entry in entries:
        if entry is first:
            continue
        if entry.site == ALL_SITES:
            message = f"@ALL is listed again (app '{first.app}' already goes to every site)"
            hint = "list @ALL once: it deploys one app to the server and every client"
        else:
            message = (f"site '{entry.site}' cannot be listed when @ALL is used "
                       f"(app '{first.app}' already goes to every site)")
            hint = (f"remove '{entry.site}', or replace @ALL with the explicit sites: "
                    '"server" and each client name')
        problems.append(doc.problem("deploy-map", message, entry.path, hint))


def _check_sites(doc: Document, entries: list[_Entry], problems: list[Problem]) -> list[str] | None:
    """One app per site, exactly one for the server, safe names. Returns the client
    sites, or None when no site at all is listed (reported once)."""
    if not entries:
        problems.append(doc.problem("deploy-map", "deploy_map deploys no app to any site",
                                    ("deploy_map",), 'list the sites of each app, e.g. '
                                    '"app": ["@ALL"] or "app": ["server", "site-1"]', at_key=True))
        return None
    first: dict[str, _Entry] = {}
    misnamed: list[str] = []
    for entry in entries:
        site = entry.site
        if site != SERVER and not NAME_RE.match(site):
            hint = _NAME_RULE
            if site.startswith("@"):
                hint += "; the only special name is @ALL"
            problems.append(doc.problem("bad-site-name",
                                        f"site name {site!r} cannot be used as a folder name",
                                        entry.path, hint))
            misnamed.append(site)  # still a client the author meant: counted for min_clients
            continue
        previous = first.get(site)
        if previous is None:
            first[site] = entry
            continue
        if previous.app == entry.app:
            message = f"site '{site}' is listed twice for app '{entry.app}'"
            hint = "remove one of the two"
        elif site == SERVER:
            message = f"the server already runs app '{previous.app}': exactly one app goes to the server"
            hint = f"remove \"server\" from app '{entry.app}' or from app '{previous.app}'"
        else:
            message = f"site '{site}' already runs app '{previous.app}': a site runs one app of a job"
            hint = f"remove '{site}' from app '{entry.app}' or from app '{previous.app}'"
        problems.append(doc.problem("deploy-map", message, entry.path, hint))
    if SERVER not in first:
        hint = ('add "server" to the sites of the app that holds config_fed_server, '
                'e.g. "app": ["server", "site-1"], or deploy one app to "@ALL"')
        lookalike = next((e.site for e in entries if e.site.casefold() == SERVER), None)
        if lookalike:
            hint = f"'{lookalike}' is read as a client name: write \"server\" in lower case"
        problems.append(doc.problem("deploy-map", "no app is deployed to the server",
                                    ("deploy_map",), hint, at_key=True))
    return [site for site in first if site != SERVER] + list(dict.fromkeys(misnamed))


def _check_clients(doc: Document, clients: list[str], min_clients: int | None,
                   mandatory: list[tuple[str, JsonPath]], problems: list[Problem]) -> None:
    if min_clients is not None and len(clients) < min_clients:
        if not clients:
            deployed = "no client site"
        elif len(clients) == 1:
            deployed = f"1 client site: {clients[0]}"
        else:
            deployed = f"{len(clients)} client sites: {', '.join(clients)}"
        hint = "deploy the apps to more client sites"
        if clients:
            hint += f", or lower min_clients to {len(clients)}"
        problems.append(doc.problem("meta", f"min_clients is {min_clients} but the deploy_map "
                                    f"deploys {deployed}", ("min_clients",), hint))
    for site, path in mandatory:
        if site == SERVER:
            problems.append(doc.problem("meta", "mandatory_clients lists 'server', which is not a client",
                                        path, "list client site names only"))
        elif site not in clients:
            problems.append(doc.problem("meta", f"mandatory client '{site}' is not in the deploy_map",
                                        path, f"deploy an app to '{site}', or remove it from "
                                        "mandatory_clients"))
