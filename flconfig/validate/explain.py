"""What a job will do, before anything runs (``flconfig explain``): for the server and each
client app, its workflows in order, the tasks each executor serves, its components and who
refers to whom by id, and the path of every event stream from the component that sends it
through the converters to the receivers that write it.

Read from the checked :class:`~flconfig.config.job.Job` (the same resolution validation
does); nothing is built or imported. :func:`explain` gives the :class:`Explanation`;
:func:`as_text` and :func:`as_mermaid` render it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from ..config.job import ComponentSpec, ConfigFile, Job
from ..registry.registry import MISSING
from .checks import EventUse, collect_events

#: Workflow arguments worth a word in the summary line, when written or defaulted.
_WORKFLOW_ARGS = ("num_rounds", "min_clients", "train_task_name", "task_name", "start_round")


@dataclass(frozen=True)
class Reference:
    """``source``'s argument ``arg`` names ``target`` by id (or holds it, nested)."""

    source: ComponentSpec
    arg: str
    target: ComponentSpec
    nested: bool = False


@dataclass
class Participant:
    """The server, or the client sites of one app: what they build and run."""

    #: "server" or "clients".
    role: str
    app: str
    #: The sites that run it (client apps); the server's is ("server",).
    sites: tuple[str, ...]
    config: ConfigFile
    references: list[Reference] = field(default_factory=list)


@dataclass(frozen=True)
class Hop:
    """One step of an event stream: who, on which participant, does what with which event."""

    where: str  # "site" | "server"
    #: The app of the config the component is in.
    app: str
    spec: ComponentSpec
    action: str  # "sends" | "converts" | "receives"
    event: str


@dataclass(frozen=True)
class Stream:
    """One event a client component sends, and where it goes: ``edges`` are (from, to, the
    event that passes), from the sender through converters to receivers."""

    sender: Hop
    edges: tuple[tuple[Hop, Hop, str], ...]

    @property
    def received(self) -> bool:
        """Whether some receiver gets it (else its metrics go nowhere)."""
        return any(to.action == "receives" for _, to, _ in self.edges)


@dataclass
class Explanation:
    """The whole job: its participants, and every event stream from sender to receivers."""

    name: str
    participants: list[Participant]
    streams: list[Stream]


def explain(job: Job) -> Explanation:
    """What ``job`` will do: read from its checked configs."""
    participants: list[Participant] = []
    server = job.server_config
    if server is not None:
        participants.append(Participant("server", server.app, ("server",), server))
    all_sites = job.client_sites()
    for app_name, app in job.apps.items():
        if app.client is None:
            continue
        named = [s for s in all_sites if job.meta.app_for(s) == app_name]
        sites = tuple(named) if named else ("every client site",)
        participants.append(Participant("clients", app_name, sites, app.client))
    for participant in participants:
        participant.references = references(participant.config)
    return Explanation(job.name, participants, streams(job))


def references(config: ConfigFile) -> list[Reference]:
    """Every id reference and nested component in ``config``, in document order."""
    by_id = {s.id: s for s in config.top_specs() if s.id}
    found: list[Reference] = []
    for spec in config.all_specs():
        for arg, child in spec.nested.items():
            found.append(Reference(spec, arg, child, nested=True))
        if spec.info is None:
            continue
        for arg, arg_spec in spec.info.args.items():
            if arg_spec.reference is None:
                continue
            value = spec.args.get(arg, None if arg_spec.default is MISSING else arg_spec.default)
            values = value if isinstance(value, list) else [value]
            for item in values:
                target = by_id.get(item) if isinstance(item, str) else None
                if target is not None and target is not spec:
                    found.append(Reference(spec, arg, target))
    return found


def streams(job: Job) -> list[Stream]:
    """Every event a client component sends, followed through its site's converters and
    receivers to the server's receivers."""
    server = job.server_config
    received = collect_events(server).received if server is not None else []
    server_app = server.app if server is not None else ""
    out: list[Stream] = []
    for name, app in job.apps.items():
        if app.client is None:
            continue
        site = collect_events(app.client)
        for use in site.sent:
            sender = Hop("site", name, use.spec, "sends", use.event)
            edges = [(sender, hop, use.event) for hop in _receivers("site", name, site.received, use.event)]
            for converted, fed_name in site.converted:
                if converted.event == use.event:
                    converter = Hop("site", name, converted.spec, "converts", fed_name)
                    edges.append((sender, converter, use.event))
                    edges += [(converter, hop, fed_name)
                              for hop in _receivers("server", server_app, received, fed_name)]
            out.append(Stream(sender, tuple(edges)))
        for use in site.fed:  # fed events a component sends as such (a Client API script's relay)
            sender = Hop("site", name, use.spec, "sends", use.event)
            out.append(Stream(sender, tuple((sender, hop, use.event)
                                            for hop in _receivers("server", server_app, received, use.event))))
    return out


def _receivers(where: str, app: str, received: list[EventUse], event: str) -> list[Hop]:
    return [Hop(where, app, r.spec, "receives", event) for r in received if r.event == event]


# --- text ---------------------------------------------------------------------------------------


def _name(spec: ComponentSpec) -> str:
    cls = _class(spec)
    if spec.id:
        return f"{spec.id} ({cls})"
    if spec.arg_name:
        return f"{spec.owner_id or '?'}.{spec.arg_name} ({cls})"
    return cls


def _class(spec: ComponentSpec) -> str:
    return spec.info.name if spec.info is not None else spec.ref.rsplit(".", 1)[-1]


def _writes(hop: Hop) -> str:
    """Where a receiver puts what it receives, where its arguments say (TensorBoard files)."""
    info = hop.spec.info
    if hop.action != "receives" or info is None or "tb_folder" not in info.args:
        return ""
    folder = hop.spec.args.get("tb_folder", info.args["tb_folder"].default)
    return f": TensorBoard files in {folder}/<site>/" if isinstance(folder, str) and folder else ""


def _summary(spec: ComponentSpec) -> str:
    """A workflow's settings that say what it does: rounds, clients, task."""
    words = []
    for arg in _WORKFLOW_ARGS:
        value = spec.args.get(arg)
        if value is None and spec.info is not None and arg in spec.info.args:
            default = spec.info.args[arg].default
            value = None if default is MISSING else default
        if value is not None and value != "":
            words.append(f"{arg.replace('_', ' ')} {value}")
    return ", ".join(words)


def _file(config: ConfigFile) -> str:
    return config.doc.file


def as_text(ex: Explanation) -> str:
    """The explanation as a person reads it in a terminal."""
    lines = [f"job {ex.name}"]
    for part in ex.participants:
        config = part.config
        who = "server" if part.role == "server" else f"client sites {', '.join(part.sites)}"
        lines += ["", f"{who}: app '{part.app}' ({_file(config)})"]
        workflows = [w for w in config.workflows if not w.disabled]
        if workflows:
            lines.append("  workflows, in order:")
            for i, spec in enumerate(workflows, 1):
                summary = _summary(spec)
                lines.append(f"    {i}. {_name(spec)}" + (f": {summary}" if summary else ""))
        if config.executors:
            lines.append("  tasks:")
            for tasks, spec in config.executors:
                lines.append(f"    {', '.join(tasks) or '*'} -> {_name(spec)}")
        others = [s for s in config.components if not s.disabled]
        if others:
            lines.append("  components:")
            for spec in others:
                kind = f" [{spec.kind}]" if spec.kind else ""
                lines.append(f"    {_name(spec)}{kind}")
        for section, tasks, direction, spec in config.filters:
            lines.append(f"  filter ({section.replace('_', ' ')}, {direction}, tasks {', '.join(tasks) or '*'}): "
                         f"{_name(spec)}")
        if part.references:
            lines.append("  references:")
            for ref in part.references:
                if ref.nested:
                    lines.append(f"    {_name(ref.source)}.{ref.arg} = {_class(ref.target)}, built inside it")
                else:
                    lines.append(f"    {_name(ref.source)}.{ref.arg} -> {_name(ref.target)}")
    lines += ["", "event streams:" if ex.streams else "event streams: none (no component sends events)"]
    for stream in ex.streams:
        lines.append(f"  site {_name(stream.sender.spec)} sends '{stream.sender.event}'")
        for source, hop, _ in stream.edges:
            indent = "    " if source is stream.sender else "      "
            verb = {"converts": "converts it to", "receives": "receives"}[hop.action]
            lines.append(f"{indent}-> {hop.where} {_name(hop.spec)} {verb} '{hop.event}'{_writes(hop)}")
        if not stream.received:
            lines.append("    -> nothing receives it: its metrics go nowhere")
    return "\n".join(lines)


# --- mermaid ------------------------------------------------------------------------------------


def _node_id(prefix: str, spec: ComponentSpec) -> str:
    """A node id unique in the chart: the participant's prefix and where the spec is written
    (two executors of one class without ids are two nodes)."""
    where = "_".join(str(part) for part in spec.json_path)
    return f"{prefix}_{re.sub(r'[^A-Za-z0-9_]', '_', where)}"


def _text(text: str) -> str:
    """``text`` safe inside a Mermaid label's quotes."""
    return (text.replace("&", "#amp;").replace('"', "#quot;").replace("<", "#lt;")
            .replace(">", "#gt;").replace("|", "#124;"))


def _label(spec: ComponentSpec) -> str:
    cls = _class(spec)
    title = spec.id or spec.arg_name or cls
    return f'"{_text(title)}<br/><small>{_text(cls)}</small>"' if title != cls else f'"{_text(cls)}"'


def as_mermaid(ex: Explanation) -> str:
    """The explanation as a Mermaid flowchart (GitHub and the docs render it): one box per
    participant, its workflows in order, tasks to executors, references between
    components (dotted), and event streams (thick, labelled with the event)."""
    lines = ["flowchart LR"]
    prefixes: dict[int, str] = {}
    for n, part in enumerate(ex.participants):
        prefix = "server" if part.role == "server" else f"c{n}"
        prefixes[id(part.config)] = prefix
        title = "server" if part.role == "server" else f"client sites: {', '.join(part.sites)}"
        lines.append(f'  subgraph {prefix}["{_text(title)} (app {_text(part.app)})"]')
        seen: set[str] = set()
        for spec in part.config.all_specs():
            if spec.disabled:
                continue
            node = _node_id(prefix, spec)
            if node not in seen:
                seen.add(node)
                lines.append(f"    {node}[{_label(spec)}]")
        for tasks, spec in part.config.executors:
            task_node = f"{_node_id(prefix, spec)}_tasks"
            lines.append(f'    {task_node}(["tasks: {_text(", ".join(tasks) or "*")}"]) --> {_node_id(prefix, spec)}')
        workflows = [w for w in part.config.workflows if not w.disabled]
        for before, after in zip(workflows, workflows[1:], strict=False):
            lines.append(f'    {_node_id(prefix, before)} -->|"then"| {_node_id(prefix, after)}')
        for ref in part.references:
            arrow = "-.->" if not ref.nested else "-->"
            lines.append(f'    {_node_id(prefix, ref.source)} {arrow}|"{_text(ref.arg)}"| {_node_id(prefix, ref.target)}')
        lines.append("  end")
    client_prefix = {p.app: prefixes[id(p.config)] for p in ex.participants if p.role == "clients"}
    for stream in ex.streams:
        for a, b, event in stream.edges:
            lines.append(f'  {_hop_node(a, client_prefix)} ==>|"{_text(event)}"| {_hop_node(b, client_prefix)}')
    return "\n".join(lines)


def _hop_node(hop: Hop, client_prefix: dict[str, str]) -> str:
    prefix = "server" if hop.where == "server" else client_prefix.get(hop.app, "c")
    return _node_id(prefix, hop.spec)
