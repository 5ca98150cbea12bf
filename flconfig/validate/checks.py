"""Checks that need the registry or more than one file: components, wiring, events, clients.

Every check is a function of what it is given: it returns problems, never changes the
job, never raises for bad input and never imports a component's module. The classes
the specs name are resolved before, as part of loading
(:meth:`~flconfig.config.job.ConfigFile.resolve_components`); a spec that did not
resolve has no ``info`` and is skipped here.
"""

from __future__ import annotations

import fnmatch
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ..config.job import ComponentSpec, ConfigFile, Job
from ..errors import JsonPath, Position, Problem, closest, did_you_mean, display_path
from ..files import find_script, python_command
from ..registry.flare_modules import COMPAT_ROOT, component_modules, provides, served
from ..registry.introspect import installed_location, parse_module
from ..schemas import check_args
from .wiring import check_wiring


def check_job(job: Job) -> list[Problem]:
    """The problems of a loaded job: each component's kind and args, the wiring, then the
    job as a whole."""

    problems: list[Problem] = []
    configs = job.configs()
    for config in configs:
        problems.extend(check_components(config))
    for config in configs:
        problems.extend(check_wiring(config))
    problems.extend(check_event_flow(job))
    problems.extend(check_clients_and_tasks(job))
    problems.extend(check_custom_imports(job))
    problems.extend(check_task_scripts(job))
    return problems


def check_components(config: ConfigFile) -> list[Problem]:
    """Check each resolved, enabled spec's kind for its place, and its args against its
    own schema."""

    doc = config.doc
    problems: list[Problem] = []
    for spec in config.all_specs():
        if spec.info is None or spec.disabled:
            continue
        expected = _expected_kind(spec)
        if expected and not spec.info.accepts(expected):
            problems.append(doc.problem(
                "wrong-kind", f"{spec.label} is {_a(spec.info.kind)}, but {_ROLE_TEXT[spec.role]}",
                (*spec.json_path, spec.key), f"use {_a(expected)} class here"))
        args_path = spec.args_path
        written_args = doc.data_at(args_path, {})
        if not spec.is_nested and isinstance(written_args, dict) and "class_attributes" in written_args:
            args_path = (*args_path, "class_attributes")
        problems.extend(check_args(doc, args_path, spec.args, spec.info.args_schema, spec.info.name))
        problems.extend(_not_supported_yet(config, spec))
    return problems


def _not_supported_yet(config: ConfigFile, spec: ComponentSpec) -> list[Problem]:
    """Args whose value FLARE accepts and flconfig cannot run yet (a class's literal
    ``NOT_SUPPORTED_YET``: ``{"arg": {"value": "why", "*": "why, for any value"}}``)."""
    table = spec.info.attributes.get("NOT_SUPPORTED_YET") if spec.info is not None else None
    if not isinstance(table, dict):
        return []
    problems = []
    for arg, reasons in table.items():
        if arg not in spec.args or not isinstance(reasons, dict):
            continue
        value = spec.args[arg]
        reason = reasons.get(value) if isinstance(value, str) else None
        if reason is None and value is not None:
            reason = reasons.get("*")
        if reason is None:
            continue
        shown = f"{arg} = {value!r}" if isinstance(value, str) else arg
        problems.append(config.doc.problem(
            "not-supported", f"{spec.label}: {shown} is not supported yet", (*spec.args_path, arg),
            str(reason)))
    return problems


_ROLE_KIND = {"executor": "executor", "workflow": "workflow", "filter": "filter"}
_ROLE_TEXT = {
    "executor": "an executor entry needs an Executor",
    "workflow": "a workflow entry needs a workflow (Controller)",
    "filter": "a filter entry needs a Filter",
}


def _expected_kind(spec: ComponentSpec) -> str | None:
    return _ROLE_KIND.get(spec.role)


def _a(word: str) -> str:
    """``an executor``, ``a learner``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


# --- events -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class EventUse:
    """An event name a component sends, converts or listens to, and where it is written."""

    event: str
    spec: ComponentSpec
    json_path: JsonPath
    explicit: bool


def _arg_value(spec: ComponentSpec, arg: str) -> tuple[Any, bool]:
    if arg in spec.args:
        return spec.args[arg], True
    arg_spec = spec.info.args.get(arg) if spec.info is not None else None
    default = getattr(arg_spec, "default", None)
    return (default if isinstance(default, (str, list)) else None), False


def _names(spec: ComponentSpec, arg: str, fallback: Any = None) -> list[EventUse]:
    value, explicit = _arg_value(spec, arg)
    if value is None:
        value, explicit = fallback, False
    base = (*spec.args_path, arg)
    if isinstance(value, str):
        return [EventUse(value, spec, base if explicit else spec.json_path, explicit)]
    if isinstance(value, list):
        return [EventUse(v, spec, (*base, i) if explicit else spec.json_path, explicit)
                for i, v in enumerate(value) if isinstance(v, str)]
    return []


@dataclass
class SiteEvents:
    """The events of one config: sent, converted to fed events, received, fed ones sent as such."""

    sent: list[EventUse]
    converted: list[tuple[EventUse, str]]  # (local event converted, its fed name)
    received: list[EventUse]
    fed: list[EventUse] = field(default_factory=list)  # fed events fired as such (MetricRelay)
    #: A class of the job's code fires events itself (``send_analytic_dxo``, ``fire_event``):
    #: any event may come from it.
    dynamic: bool = False
    #: Events sent here only by a class that may send them (a Client API script may log
    #: nothing), never by a component configured to send them.
    maybe: set[str] = field(default_factory=set)
    #: Converters written exactly as FLARE's BaseFedJob adds them to every client.
    default_converters: list[ComponentSpec] = field(default_factory=list)


#: The events FLARE 2.9 writes out for a receiver left to its default (``AnalyticsReceiver``'s:
#: the local event and its fed twin). A receiver listing them waits for no event in particular.
FLARE_DEFAULT_RECEIVER_EVENTS = ("analytix_log_stats", "fed.analytix_log_stats")
#: ``events_to_convert`` of the ConvertToFedEvent FLARE 2.9's BaseFedJob adds to every client.
FLARE_DEFAULT_CONVERTED = ("analytix_log_stats",)


def collect_events(config: ConfigFile) -> SiteEvents:
    """What ``config``'s resolved, enabled components send, convert and listen to."""
    out = SiteEvents([], [], [])
    specs = [s for s in config.all_specs() if s.info is not None and not s.disabled]
    for spec in specs:
        attrs = spec.info.attributes  # type: ignore[union-attr]
        if isinstance(attrs.get("CONVERTS_ARG"), str):
            prefix, prefix_given = _arg_value(spec, str(attrs.get("PREFIX_ARG", "")))
            prefix = prefix if isinstance(prefix, str) else "fed."
            uses = _names(spec, attrs["CONVERTS_ARG"])
            out.converted += [(use, prefix + use.event) for use in uses]
            if tuple(u.event for u in uses) == FLARE_DEFAULT_CONVERTED and prefix == "fed.":
                out.default_converters.append(spec)
    converted = {use.event for use, _ in out.converted}
    configured: set[str] = set()
    for spec in specs:
        info = spec.info
        assert info is not None
        out.dynamic = out.dynamic or _fires_events(info)
        attrs = info.attributes
        if isinstance(attrs.get("EMITS_ARG"), str):
            uses = _names(spec, attrs["EMITS_ARG"])
            out.sent += uses
            configured |= {u.event for u in uses}
        direct = _fed_emitted_if(spec, attrs.get("FED_EMITS_IF"))
        emits = attrs.get("EMITS") if isinstance(attrs.get("EMITS"), str) else ""
        # It sends this fed event itself (the Client API's processes), unless a converter on the
        # site takes its local event: then the local one, converted (as the runtime does).
        if direct and emits not in converted:
            out.fed += direct
        elif emits:  # a constant event name
            out.sent.append(EventUse(emits, spec, spec.json_path, False))
            out.maybe.add(emits)
        if isinstance(attrs.get("FED_EMITS_ARG"), str):
            out.fed += _names(spec, attrs["FED_EMITS_ARG"])
        if isinstance(attrs.get("LISTENS_ARG"), str):
            out.received += [_as_default(use, attrs.get("DEFAULT_EVENTS"))
                             for use in _names(spec, attrs["LISTENS_ARG"], attrs.get("DEFAULT_EVENTS"))]
    out.maybe -= configured
    return out


def _as_default(use: EventUse, default: Any) -> EventUse:
    """A receiver's event as not chosen by the user when its list is the default written out:
    the class's own, or what FLARE 2.9 exports for a receiver left to its default."""
    if not use.explicit:
        return use
    written = use.spec.args.get(use.spec.info.attributes.get("LISTENS_ARG", "")) if use.spec.info else None
    if isinstance(written, list) and (tuple(written) == FLARE_DEFAULT_RECEIVER_EVENTS
                                      or (isinstance(default, list) and written == default)):
        return EventUse(use.event, use.spec, use.json_path, False)
    return use


#: FLARE's calls that fire an event named at run time.
_FIRING_CALLS = frozenset({"send_analytic_dxo", "fire_event", "fire_fed_event"})


def _fires_events(info: Any) -> bool:
    """Whether a class of the job's (or an allowed) code calls FLARE's event API in its
    module: its events are known only at run time. Read from the module's syntax tree
    (parsed once, cached), never imported."""
    import ast


    file = getattr(info, "file", None)
    if getattr(info, "origin", None) not in ("custom", "allowed") or not file:
        return False
    tree = parse_module(file)
    if tree is None:
        return False
    for node in ast.walk(tree):
        if isinstance(node, ast.Call):
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", None)
            if name in _FIRING_CALLS:
                return True
    return False


def _fed_emitted_if(spec: ComponentSpec, table: Any) -> list[EventUse]:
    """The fed events a class's literal ``FED_EMITS_IF`` (``{"arg": {"value": "event"}}``)
    says this spec sends itself, given its args."""
    if not isinstance(table, dict):
        return []
    out = []
    for arg, events in table.items():
        value, _ = _arg_value(spec, arg)
        event = events.get(value) if isinstance(events, dict) and isinstance(value, str) else None
        if isinstance(event, str):
            out.append(EventUse(event, spec, spec.json_path, False))
    return out


def _unresolved(config: ConfigFile | None) -> bool:
    """Whether some component of ``config`` could not be resolved: its events are not known."""
    return config is not None and any(s.info is None and not s.disabled for s in config.all_specs())


def check_event_flow(job: Job) -> list[Problem]:
    """Follow event names from senders through converters to receivers, across files.

    A name that nearly matches is reported once, where it is used downstream (the
    converter, the server's receiver), with the name it probably means. Nothing is
    said to be missing when a component whose events are unknown (an unresolved path)
    could be the one sending it.
    """
    problems: list[Problem] = []
    server = job.server_config
    clients = [app.client for app in job.apps.values() if app.client is not None]
    server_events = collect_events(server) if server is not None else SiteEvents([], [], [])
    fed_sent: list[tuple[EventUse, str, ConfigFile]] = []
    implicit: list[EventUse] = []  # fed events a component sends by itself (FED_EMITS_IF)
    # What FLARE's BaseFedJob converts on every client, when only a script may send it: with
    # no receiver on the server the recipe simply tracks nothing (not a mistake).
    optional: list[EventUse] = []
    unknown_client = any(_unresolved(c) for c in clients)
    explained: set[str] = set()  # fed events missing because a converter's error says why

    for client in clients:
        site = collect_events(client)
        local = {u.event for u in site.sent}
        if site.dynamic:  # the job's code may send what the converters forward
            local |= {u.event for u, _ in site.converted}
        misspelt: set[str] = set()  # sent events a converter names nearly right
        for use, fed_name in site.converted:
            if use.event.startswith("fed."):
                continue  # already federated: not converted again
            if use.event not in local and site.sent and not _unresolved(client):
                close = closest(use.event, local)
                if close:
                    misspelt.add(close)
                    explained.add(fed_name[: len(fed_name) - len(use.event)] + close)
                problems.append(client.doc.problem(
                    "event-mismatch",
                    f"{use.spec.label} converts '{use.event}', but no component on the site sends it",
                    use.json_path, f"did you mean '{close}'?" if close else
                    f"events sent here: {', '.join(sorted(local))}"))
            elif use.event in local:
                fed_sent.append((use, fed_name, client))
                if use.spec in site.default_converters and use.event in site.maybe:
                    optional.append(use)
        fed_sent += [(use, use.event, client) for use in site.fed]
        implicit.extend(use for use in site.fed if not use.explicit)
        converted = {u.event for u, _ in site.converted}
        listened = {u.event for u in site.received}
        for use in site.sent:
            if _unresolved(client) or use.event in misspelt:
                continue
            if use.event not in converted and use.event not in listened:
                problems.append(client.doc.problem(
                    "event-mismatch",
                    f"{use.spec.label} sends '{use.event}', but nothing converts or receives it: "
                    "its metrics go nowhere", use.json_path,
                    did_you_mean(use.event, converted | listened) or
                    "add a ConvertToFedEvent for it, or a receiver on this site", severity="warning"))
        if not _unresolved(client):
            problems += _unheard(client, site.received, local)

    if server is not None and not _unresolved(server):
        listened = {u.event for u in server_events.received}
        produced = {name for _, name, _ in fed_sent} | {u.event for u in server_events.sent}
        awaited = {u.event for u in server_events.received if u.explicit and u.event not in produced}
        for use, fed_name, client in fed_sent:
            if use in implicit:
                continue  # sent whether or not anyone listens (a script may log nothing)
            if use in optional and not server_events.received:
                continue  # FLARE's default converter, and the job tracks nothing
            # A receiver waiting for a near miss of this name is reported on the server.
            if fed_name not in listened and (unknown_client or not closest(fed_name, awaited)):
                problems.append(client.doc.problem(
                    "event-mismatch",
                    f"{use.spec.label} sends '{fed_name}' to the server, but no server receiver listens to it",
                    use.json_path,
                    did_you_mean(fed_name, listened) or
                    "add a receiver (e.g. TBAnalyticsReceiver) with this event to the server config"))
        unconverted = {"fed." + u.event: u.event for c in clients for u in collect_events(c).sent}
        if clients and not unknown_client:
            received = [u for u in server_events.received if u.event not in explained]
            problems += _unheard(server, received, produced, unconverted)
    return problems


def _unheard(config: ConfigFile, received: list[EventUse], produced: set[str],
             unconverted: dict[str, str] | None = None) -> list[Problem]:
    out = []
    for use in received:
        if use.explicit and use.event not in produced:
            where = "the server" if config.role == "server" else "this site"
            local = (unconverted or {}).get(use.event)
            if local:
                hint = f"clients send '{local}' but never convert it: list it in a ConvertToFedEvent's events_to_convert"
            else:
                hint = did_you_mean(use.event, produced) or (
                    f"events produced: {', '.join(sorted(produced))}" if produced else "no component sends events")
            out.append(config.doc.problem(
                "event-mismatch", f"{use.spec.label} waits for '{use.event}', but nothing on {where} produces it",
                use.json_path, hint))
    return out


# --- clients and tasks ------------------------------------------------------------------------


def _task_args(spec: ComponentSpec) -> list[tuple[str, str]]:
    """(arg, task name) pairs of a workflow: args named like ``*task_name``."""
    if spec.info is None:
        return []
    out = []
    for arg in spec.info.args:
        if arg.endswith("task_name"):
            value, _ = _arg_value(spec, arg)
            if isinstance(value, str) and value:
                out.append((arg, value))
    return out


def _tasks_known(client: ConfigFile) -> bool:
    """Whether every executor entry lists its tasks readably (the schema reports it if not)."""
    entries = client.doc.data.get("executors") if isinstance(client.doc.data, dict) else None
    return bool(client.executors) and isinstance(entries, list) and all(
        isinstance(e, dict) and isinstance(e.get("tasks"), list)
        and all(isinstance(t, str) for t in e["tasks"]) for e in entries)


def _from_variable(config: ConfigFile, path: JsonPath) -> str:
    """`` (the variable 'x' at line N)`` when the value at ``path`` is written as "{x}"."""
    written = config.raw.data_at(path)
    if not isinstance(written, str):
        return ""
    name = written.strip()[1:-1] if written.strip().startswith("{") and written.strip().endswith("}") else ""
    if not name or not isinstance(config.raw.data, dict) or name not in config.raw.data:
        return ""
    return f" (the variable '{name}' at line {config.raw.key_position((name,)).line})"


def _handles(client: ConfigFile, task: str) -> bool:
    for tasks, _ in client.executors:
        for pattern in tasks:
            if pattern == task or ("*" in pattern and fnmatch.fnmatchcase(task, pattern)):
                return True
    return False


def check_clients_and_tasks(job: Job) -> list[Problem]:
    """Workflow min_clients against the deployment; every task a workflow sends has an executor."""
    problems: list[Problem] = []
    server = job.server_config
    if server is None:
        return problems
    named = list(job.meta.client_sites())
    meta_min = job.meta.min_clients
    clients = [app.client for app in job.apps.values() if app.client is not None]
    for spec in server.workflows:
        if spec.info is None or spec.disabled:
            continue
        value, explicit = _arg_value(spec, "min_clients") if "min_clients" in spec.info.args else (None, False)
        if isinstance(value, int) and not isinstance(value, bool):
            path = (*spec.args_path, "min_clients") if explicit else spec.json_path
            # a value a reference gave is named by the reference, never shown
            shown = server.doc.shown(path, value, str) if explicit else str(value)
            if named and value > len(named):
                problems.append(server.doc.problem(
                    "min-clients", f"{spec.label} waits for {shown} clients{_from_variable(server, path)}, "
                    "but the deploy_map deploys "
                    f"only {len(named)}: {', '.join(named)}", path,
                    f"set min_clients to at most {len(named)}, or deploy more sites"))
            # Without a meta file, min_clients 1 is only FLARE's assumption: nothing to disagree with.
            # Meta's min_clients is only what the job needs to be scheduled (FLARE), so a workflow
            # asking for more is valid; `launch` then starts as many sites as the workflow waits for.
            elif meta_min is not None and value < meta_min and job.meta_doc is not None:
                meta_where = f" at {job.meta_doc.position(('min_clients',))}"
                problems.append(server.doc.problem(
                    "min-clients", f"{spec.label} has min_clients {shown}{_from_variable(server, path)}, "
                    f"but meta says {meta_min}{meta_where}",
                    path, "make them agree: the job starts with meta's min_clients sites, the workflow "
                    "waits for its own", severity="warning"))
        for arg, task in _task_args(spec):
            for client in clients:
                if _tasks_known(client) and not _handles(client, task):
                    explicit = arg in spec.args
                    known = sorted({t for tasks, _ in client.executors for t in tasks})
                    problems.append(server.doc.problem(
                        "unknown-task", f"{spec.label} sends task '{task}' ({arg}), but no executor of app "
                        f"'{client.app}' handles it", (*spec.args_path, arg) if explicit else spec.json_path,
                        did_you_mean(task, known) or f"tasks handled by the clients: {', '.join(known)}"))
    return problems


#: Most ``.py`` files of a job's custom/ folders read for imports.
MAX_CUSTOM_FILES = 300


def check_custom_imports(job: Job) -> list[Problem]:
    """Top-level imports in the job's custom/ code that cannot be found, at file:line.
    Found by looking, never by importing.

    Job code always gets flconfig's FLARE API where flconfig runs it, FLARE installed or
    not. A FLARE module (or name) flconfig does not serve is an **error** in a file the
    sites import when the job starts (the module of a custom
    class the configs name, a Client API script, and what those import at their top
    level): that import will fail at run time. Elsewhere in custom/ it is a warning. A
    package that is not installed here is a warning: the sites may have it.

    Imports guarded by ``try:`` (optional dependencies) and relative imports are
    left alone.
    """
    import ast
    import sys


    folders = [app.custom_dir for app in job.apps.values() if app.custom_dir is not None]
    searched = [*folders, *job.python_path]
    problems: list[Problem] = []
    cache: dict[str, bool] = {}

    def findable(top: str) -> bool:
        if top not in cache:
            if top in sys.stdlib_module_names or top in sys.builtin_module_names:
                cache[top] = True
            elif any((f / f"{top}.py").is_file() or (f / top).is_dir() for f in searched):
                cache[top] = True
            elif top == "nvflare":  # flconfig serves 'import nvflare...' to job code
                cache[top] = True
            else:
                cache[top] = installed_location(top) is not None
        return cache[top]

    files = sorted({file for folder in folders for file in folder.rglob("*.py")})
    run = files_imported_at_start(job)
    for file in files[:MAX_CUSTOM_FILES]:
        tree = parse_module(file)
        if tree is None:
            continue
        fails = file.resolve() in run
        for node in tree.body:  # top level only: not inside try, if, def
            if isinstance(node, ast.Import):
                names = [alias.name for alias in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            else:
                continue
            for name in names:
                top = name.split(".", 1)[0]
                if top == "nvflare":
                    missing = (None if not flare_module_served(name) else
                               _names_not_served(name, node) if isinstance(node, ast.ImportFrom) else [])
                    if missing is None or missing:
                        what = (f"{name!r} is imported here" if missing is None else
                                f"{', '.join(repr(n) for n in missing)} {'is' if len(missing) == 1 else 'are'} "
                                f"imported here from {name!r}")
                        problems.append(Problem(
                            "error" if fails else "warning", "flare-api-not-supported",
                            f"{what}, but flconfig's FLARE API does not provide it yet"
                            + (": the sites fail when they import this file" if fails else ""),
                            Position(display_path(file), node.lineno, node.col_offset + 1),
                            hint="docs/flare-support.md lists the FLARE modules and classes flconfig serves",
                        ))  # fmt: skip
                    continue
                if findable(top):
                    continue
                problems.append(Problem(
                    "warning", "import-not-found",
                    f"{top!r} is imported here but is not installed in this environment",
                    Position(display_path(file), node.lineno, node.col_offset + 1),
                    hint=f"the job fails on any site without {top!r}: install it there "
                         "(and here, to launch the job on this machine)",
                ))  # fmt: skip
    return problems


def files_imported_at_start(job: Job) -> set[Path]:
    """The custom/ files a participant imports when the job starts, resolved: the modules of
    the custom classes the configs name, the Client API scripts (``SCRIPT_ARG``, the
    ``COMMAND_ARG`` command's script), and, transitively, the custom/ modules and packages
    those import at their top level (not inside ``try:``, ``if`` or a function)."""

    reached: set[Path] = set()
    for name, app in job.apps.items():
        custom = app.custom_dir
        if custom is None:
            continue
        root = custom.resolve()
        entries: set[Path] = set()
        for config in job.configs():
            if config.app != name:
                continue
            for spec in config.all_specs():
                if spec.disabled or spec.info is None:
                    continue
                if spec.info.origin == "custom" and spec.info.file:
                    entries.add(Path(spec.info.file).resolve())
                script_arg = spec.info.attributes.get("SCRIPT_ARG")
                value = spec.args.get(script_arg) if isinstance(script_arg, str) else None
                if isinstance(value, str) and value.endswith(".py"):
                    found = find_script(custom, Path(value))
                    if found is not None:
                        entries.add(found.resolve())
                command_arg = spec.info.attributes.get("COMMAND_ARG")
                command = spec.args.get(command_arg) if isinstance(command_arg, str) else None
                if command and isinstance(command, (str, list)):
                    try:
                        entries.add(python_command(command, custom)[1].resolve())
                    except ValueError:
                        pass  # check_task_scripts says why
        # a script's folder is on sys.path while it runs, as custom/ is for every module
        bases = [root, *sorted({e.parent for e in entries if e.parent != root})]
        todo = sorted(e for e in entries if e == root or root in e.parents)
        while todo:
            file = todo.pop()
            if file in reached:
                continue
            reached.add(file)
            tree = parse_module(file)
            if tree is None:
                continue
            for module in _top_level_imports(tree, file, root):
                todo.extend(f for f in _module_files(module, bases) if f not in reached)
    return reached


def _top_level_imports(tree: Any, file: Path, root: Path) -> list[str]:
    """The dotted modules a file imports at its top level (``from a import b`` gives ``a``
    and ``a.b``: b may be a module); relative imports resolved inside ``root``."""
    import ast

    modules: list[str] = []
    for node in tree.body:
        if isinstance(node, ast.Import):
            modules.extend(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                package = file.parent
                for _ in range(node.level - 1):
                    package = package.parent
                if package != root and root not in package.parents:
                    continue
                prefix = ".".join(package.relative_to(root).parts)
                base = ".".join(p for p in (prefix, base) if p)
            if base:
                modules.append(base)
            modules.extend(f"{base}.{alias.name}" if base else alias.name
                           for alias in node.names if alias.name != "*")
    return modules


def _module_files(module: str, bases: list[Path]) -> list[Path]:
    """The files importing ``module`` runs, in the first of ``bases`` that holds it: each
    package's ``__init__.py`` on the way, then the module itself."""
    parts = module.split(".")
    for base in bases:
        folder, files = base, []
        for i, part in enumerate(parts):
            if i == len(parts) - 1 and (folder / f"{part}.py").is_file():
                files.append((folder / f"{part}.py").resolve())
            elif (folder / part / "__init__.py").is_file():
                files.append((folder / part / "__init__.py").resolve())
            elif not (folder / part).is_dir():  # not here (a namespace package's folder goes on)
                files = []
                break
            folder = folder / part
        if files:
            return files
    return []


def flare_module_served(module: str) -> bool:
    """Whether job code can import the FLARE module ``module`` where flconfig runs it: a
    module of flconfig's FLARE API, or one holding FLARE components flconfig runs
    (``nvflare.app_common.workflows.fedavg``), served from the registry's aliases."""

    return served(module)


def _names_not_served(module: str, node: Any) -> list[str]:
    """The names ``from module import ...`` takes that flconfig's module of that name
    does not define (read from its source, never imported) and that are not FLARE
    components flconfig runs."""

    components = component_modules().get(module, {})
    if not provides(module):  # a module of components only
        return [alias.name for alias in node.names
                if alias.name != "*" and alias.name not in components
                and not flare_module_served(f"{module}.{alias.name}")]
    path = COMPAT_ROOT.joinpath(*module.split(".")[1:])
    file = path / "__init__.py" if (path / "__init__.py").is_file() else path.with_suffix(".py")
    tree = parse_module(file)
    if tree is None:
        return []
    defined = _top_level_names(tree) | set(components)
    return [alias.name for alias in node.names
            if alias.name != "*" and alias.name not in defined and not flare_module_served(f"{module}.{alias.name}")]


def _top_level_names(tree: Any) -> set[str]:
    """The names a module defines at its top level; with a module ``__getattr__``, the
    literal ``__all__`` too (names it makes on first use, as FLARE's packages import them)."""
    import ast

    names: set[str] = set()
    lazy = any(isinstance(s, ast.FunctionDef) and s.name == "__getattr__" for s in tree.body)
    for stmt in tree.body if lazy else ():
        if (isinstance(stmt, ast.Assign) and any(isinstance(t, ast.Name) and t.id == "__all__" for t in stmt.targets)
                and isinstance(stmt.value, (ast.List, ast.Tuple))):
            names.update(e.value for e in stmt.value.elts if isinstance(e, ast.Constant) and isinstance(e.value, str))
    for stmt in tree.body:
        if isinstance(stmt, (ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            names.add(stmt.name)
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            names.update((a.asname or a.name).split(".")[0] for a in stmt.names)
        elif isinstance(stmt, ast.Assign):
            names.update(t.id for t in stmt.targets if isinstance(t, ast.Name))
        elif isinstance(stmt, ast.AnnAssign) and isinstance(stmt.target, ast.Name):
            names.add(stmt.target.id)
        elif isinstance(stmt, (ast.If, ast.Try)):
            names |= _top_level_names(stmt)
    return names


def check_task_scripts(job: Job) -> list[Problem]:
    """A component's script (a class's literal ``SCRIPT_ARG``, e.g. the Client API's
    ``task_script_path``) must be a file of its app's custom/ folder, as FLARE looks it up."""

    problems: list[Problem] = []
    for config in job.configs():
        app = job.apps.get(config.app)
        custom = app.custom_dir if app is not None else None
        for spec in config.all_specs():
            if spec.disabled or spec.info is None:
                continue
            problems.extend(_command_problems(config, spec, custom))
            arg = spec.info.attributes.get("SCRIPT_ARG")
            if not isinstance(arg, str) or not arg:
                continue
            value = spec.args.get(arg)
            if not isinstance(value, str) or not value.endswith(".py"):
                continue  # missing or not a script: the args schema says so
            path = (*spec.args_path, arg)
            if custom is None:
                problems.append(config.doc.problem(
                    "script-not-found", f"{spec.label}: {arg} '{value}' is not in the app's "
                    "custom/ folder: the app has none", path,
                    f"put {Path(value).name} in {display_path(config.file.parent.parent / 'custom')}"))
            elif find_script(custom, Path(value)) is None:
                scripts = sorted(p.relative_to(custom).as_posix() for p in custom.rglob("*.py"))
                close = closest(value, scripts)
                problems.append(config.doc.problem(
                    "script-not-found", f"{spec.label}: {arg} '{value}' is not in the app's "
                    f"custom/ folder ({display_path(custom)})", path,
                    f"did you mean '{close}'?" if close else
                    "the script must be a file inside custom/ (FLARE finds it there too)"))
    return problems


def _command_problems(config: ConfigFile, spec: ComponentSpec, custom: Path | None) -> list[Problem]:
    """A launch command (a class's literal ``COMMAND_ARG``) must run a Python script of custom/."""

    arg = spec.info.attributes.get("COMMAND_ARG") if spec.info is not None else None
    if not isinstance(arg, str) or not arg:
        return []
    value = spec.args.get(arg)
    if not value or not isinstance(value, (str, list)):
        return []
    path = (*spec.args_path, arg)
    if custom is None:
        return [config.doc.problem("script-not-found", f"{spec.label}: {arg} runs a script, but the "
                                   "app has no custom/ folder", path)]
    try:
        python_command(value, custom)
    except ValueError as exc:
        code = "script-not-found" if "is not a file" in str(exc) else "not-supported"
        return [config.doc.problem(code, f"{spec.label}: {exc}", path,
                                   "write it as FLARE's jobs do: python3 -u custom/<script>.py [args]")]
    return []
