"""Wiring by id: which component names which, and in what order to build them.

Args ending in ``_id`` (and args a component lists in ``REFERENCES``) name
other components of the same config. This module finds those references,
checks that each one exists and has a fitting kind, that no id is defined
twice and that references form no cycle, and gives the build order.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

from ..config.job import ComponentSpec, ConfigFile
from ..errors import JsonPath, Problem, closest


@dataclass(frozen=True)
class Reference:
    """``source`` names ``target_id`` through its arg ``arg`` (written, or by default)."""

    source: ComponentSpec
    arg: str
    target_id: str
    expected_kind: str  # "any" when only existence matters
    json_path: JsonPath
    by_default: bool


def references(config: ConfigFile) -> Iterator[Reference]:
    """Every reference in a config, including those made by argument defaults."""
    for spec in config.all_specs():
        if spec.info is None or spec.disabled:
            continue
        arg_specs = dict(spec.info.args)
        names = list(arg_specs)
        if spec.info.var_kwargs:  # unknown extra args: fall back to the naming convention
            names += [a for a in spec.args if a not in arg_specs and a.endswith("_id")]
        for arg in names:
            arg_spec = arg_specs.get(arg)
            expected = arg_spec.reference if arg_spec is not None else "any"
            if not expected:
                continue
            if arg in spec.args:
                value, by_default = spec.args[arg], False
            elif arg_spec is not None and isinstance(arg_spec.default, str):
                value, by_default = arg_spec.default, True
            else:
                continue
            if not isinstance(value, str) or not value:
                continue  # "" means "none" (FLARE: persistor_id=""); nested specs are not ids
            path = (*spec.args_path, arg) if not by_default else spec.json_path
            yield Reference(spec, arg, value, expected, path, by_default)


def _a(word: str) -> str:
    """``an aggregator``, ``a learner``."""
    return f"{'an' if word[:1].lower() in 'aeiou' else 'a'} {word}"


def check_wiring(config: ConfigFile) -> list[Problem]:
    """Duplicate ids, dangling or wrong-kind references, cycles and duplicate task names."""
    doc = config.doc
    problems: list[Problem] = []
    seen: dict[str, ComponentSpec] = {}
    for spec in config.components + config.workflows:
        if spec.id is None:
            continue
        if spec.id in seen:
            first = doc.position((*seen[spec.id].json_path, "id"))
            problems.append(doc.problem(
                "duplicate-id", f"duplicate id '{spec.id}' (first defined at line {first.line})",
                (*spec.json_path, "id") if "id" in doc.data_at(spec.json_path, {}) else spec.json_path,
                "give each component and workflow its own id"))
        else:
            seen[spec.id] = spec

    by_id = config.by_id()
    ids = sorted(by_id)
    for ref in references(config):
        target = by_id.get(ref.target_id)
        what = f"{ref.source.label}: '{ref.arg}'"
        if target is None:
            guess = closest(ref.target_id, ids)
            hint = f"did you mean '{guess}'?" if guess else (
                f"ids defined in this file: {', '.join(ids)}" if ids else "this file defines no components")
            severity = "error"
            optional = (ref.source.info.attributes.get("DEFAULT_REF_OPTIONAL") or {}) if ref.source.info else {}
            when = optional.get(ref.arg) if isinstance(optional, dict) else None
            if ref.by_default and (when == "*" or (isinstance(when, str) and when in ref.source.args)):
                continue  # the class does without it (FedAvg given its initial model)
            if ref.by_default:
                message = (f"{what} defaults to '{ref.target_id}', but no component has that id")
                hint = (f"set '{ref.arg}' to the id of {_a(ref.expected_kind)}, "
                        f"or add a component with id '{ref.target_id}'")
                info = ref.source.info
                if info is not None and info.origin != "builtin":
                    # FLARE hands job code None for a component that is not there (the
                    # learners use ``parts.get(id)``/``get_component(id)`` and go on without
                    # it): a default the user never wrote is worth a word, not a refusal.
                    severity = "warning"
                    message += f": {info.name} gets None for it"
            else:
                message = f"{what} names '{ref.target_id}', but no component has that id"
            problems.append(doc.problem("dangling-ref", message, ref.json_path, hint, severity=severity))
            continue
        if target.disabled:
            problems.append(doc.problem("dangling-ref", f"{what} names '{ref.target_id}', which is disabled",
                                        ref.json_path, "enable the component or remove the reference"))
            continue
        if ref.expected_kind != "any" and target.info is not None and not target.info.accepts(ref.expected_kind):
            fitting = [i for i, s in by_id.items() if s.info is not None and ref.expected_kind in s.info.kinds]
            hint = (f"components of kind {ref.expected_kind} here: {', '.join(fitting)}" if fitting
                    else f"add {_a(ref.expected_kind)} component and name it here")
            problems.append(doc.problem(
                "wrong-kind-ref",
                f"{what} names '{ref.target_id}', {_a(target.info.kind)} ({target.info.name}), "
                f"but it needs {_a(ref.expected_kind)}", ref.json_path, hint))

    problems.extend(_check_cycles(config, by_id))
    problems.extend(_check_tasks(config))
    return problems


def dependency_graph(config: ConfigFile) -> dict[str, list[str]]:
    """Top-level id → ids it references (references from nested specs count for their owner)."""
    by_id = config.by_id()
    graph: dict[str, list[str]] = {i: [] for i in by_id}
    for ref in references(config):
        owner = ref.source.owner_id
        if owner in graph and ref.target_id in by_id and ref.target_id not in graph[owner]:
            graph[owner].append(ref.target_id)
    return graph


def _check_cycles(config: ConfigFile, by_id: dict[str, ComponentSpec]) -> list[Problem]:
    graph = dependency_graph(config)
    state: dict[str, int] = {}
    problems: list[Problem] = []
    reported: set[frozenset[str]] = set()

    def visit(node: str, stack: list[str]) -> None:
        state[node] = 1
        stack.append(node)
        for nxt in graph[node]:
            if state.get(nxt) == 1:
                cycle = stack[stack.index(nxt):] + [nxt]
                key = frozenset(cycle)
                if key not in reported:
                    reported.add(key)
                    spec = by_id[cycle[0]]
                    problems.append(config.doc.problem(
                        "cycle", "components reference each other in a cycle: " + " -> ".join(cycle),
                        (*spec.json_path, "id"), "break the cycle: a component cannot depend on itself"))
            elif state.get(nxt) is None:
                visit(nxt, stack)
        stack.pop()
        state[node] = 2

    for node in graph:
        if node not in state:
            visit(node, [])
    return problems


def _check_tasks(config: ConfigFile) -> list[Problem]:
    problems: list[Problem] = []
    owner: dict[str, int] = {}
    for index, (tasks, spec) in enumerate(config.executors):
        exec_index = spec.json_path[1]
        for t, task in enumerate(tasks):
            path = ("executors", exec_index, "tasks", t)
            if task in owner and owner[task] != index:
                first = config.doc.position(("executors", config.executors[owner[task]][1].json_path[1]))
                problems.append(config.doc.problem(
                    "duplicate-task", f"task '{task}' is handled by two executors (the first at line {first.line})",
                    path, "a task name may appear in one executor only: remove it from one of them"))
            owner.setdefault(task, index)
    return problems


def build_order(config: ConfigFile) -> list[str]:
    """Top-level ids ordered so that every component comes after those it references."""
    graph = dependency_graph(config)
    order: list[str] = []
    done: set[str] = set()

    def visit(node: str, active: set[str]) -> None:
        if node in done or node in active:
            return
        active.add(node)
        for nxt in graph[node]:
            visit(nxt, active)
        active.discard(node)
        done.add(node)
        order.append(node)

    for node in graph:  # document order breaks ties
        visit(node, set())
    return order
