"""How flconfig's modules import one another: no cycles, and an import inside a function
only where docs/architecture.md ("Layers") says one belongs. The layers themselves are
import-linter's contract (``make lint``)."""

from __future__ import annotations

import ast
import functools
from collections.abc import Iterator
from pathlib import Path

import pytest
from harness import REPO

PACKAGE = REPO / "flconfig"

#: Imports of flconfig's own modules inside a function, each with why it is deferred. A new
#: one fails the test below: import at the top, or say here why that cannot be.
DEFERRED = {
    # The module named pulls in gRPC/protobuf, numpy or TensorBoard; its importer's other
    # callers (`flconfig validate`, a script's process, the CLI's other commands) must not pay.
    ("flconfig.cli.admin_cmd", "flconfig.deploy.admin"): "protobuf",
    ("flconfig.cli.run_cmd", "flconfig.cli.run_services"): "protobuf",
    ("flconfig.cli.server_cmd", "flconfig.deploy.client"): "protobuf",
    ("flconfig.cli.server_cmd", "flconfig.deploy.server"): "protobuf",
    ("flconfig.deploy.poc", "flconfig.deploy.admin"): "protobuf",
    ("flconfig.compat.remote", "flconfig.transport.codec"): "numpy, safetensors",
    ("flconfig.runtime.zygote", "flconfig.runtime.worker"): "gRPC, numpy (after the fork)",
    ("flconfig.launch.ray_backend", "flconfig.runtime"): "gRPC, numpy (in the Ray actor)",
    ("flconfig.launch.ray_backend", "flconfig.runtime.worker"): "gRPC, numpy (in the Ray actor)",
    ("flconfig.tracking.receivers.tensorboard", "flconfig.tracking.tb_files"): "TensorBoard, protobuf",
    # A command's implementation, loaded when the command runs: the parser imports every
    # command's module, and `flconfig validate` must not load the launcher, distributed mode
    # or FLARE's job API (tests/validate/test_validate_cli.py).
    ("flconfig.cli.admin_cmd", "flconfig.deploy.kit"): "deploy",
    ("flconfig.cli.admin_cmd", "flconfig.deploy.poc"): "deploy",
    ("flconfig.cli", "flconfig.launch.processes"): "the launcher (its zygote, started first)",
    ("flconfig.cli.launch_cmd", "flconfig.launch.launcher"): "the launcher",
    ("flconfig.cli.launch_cmd", "flconfig.launch.resources"): "the launcher",
    ("flconfig.cli.poc_cmd", "flconfig.deploy.poc"): "deploy",
    ("flconfig.cli.provision_cmd", "flconfig.deploy.provision"): "deploy",
    ("flconfig.cli.run_cmd", "flconfig.compat"): "the job API",
    ("flconfig.cli.run_cmd", "flconfig.compat.jobapi"): "the job API",
    ("flconfig.cli.run_cmd", "flconfig.compat.jobapi.checking"): "the job API",
    ("flconfig.cli.run_cmd", "flconfig.compat.jobapi.roots"): "the job API",
    ("flconfig.cli.run_cmd", "flconfig.compat.jobapi.running"): "the job API",
    ("flconfig.cli.run_services", "flconfig.launch.launcher"): "the launcher",
    ("flconfig.cli.server_cmd", "flconfig.cli.launch_cmd"): "the launcher",
    ("flconfig.cli.server_cmd", "flconfig.deploy.grpclog"): "deploy",
    ("flconfig.cli.server_cmd", "flconfig.deploy.kit"): "deploy",
    ("flconfig.cli.server_cmd", "flconfig.launch.launcher"): "the launcher",
    # FLARE's stand-in packages load their attributes on first use, as FLARE's own do (PEP 562).
    ("flconfig.compat.nvflare", "flconfig.compat.nvflare.job_config.api"): "nvflare.FedJob",
    ("flconfig.compat.nvflare", "flconfig.compat.nvflare.job_config.defs"): "nvflare.FilterType",
    ("flconfig.compat.nvflare.app_common.aggregators", "flconfig.compat"): "stand-ins",
    ("flconfig.compat.nvflare.app_common.aggregators", "flconfig.compat.jobapi.standins"): "stand-ins",
    ("flconfig.compat.nvflare.app_opt.pt", "flconfig.compat"): "stand-ins",
    ("flconfig.compat.nvflare.app_opt.pt", "flconfig.compat.jobapi.standins"): "stand-ins",
    ("flconfig.compat.nvflare.app_opt.sklearn", "flconfig.compat.nvflare.app_opt.sklearn"): "recipes",
    ("flconfig.compat.nvflare.app_opt.sklearn", "flconfig.compat.nvflare.app_opt.sklearn.recipes"): "recipes",
    # The job API's stand-ins read FLARE's classes with the registry's introspection, which a
    # site's process never imports unless job code asks for a FLARE module flconfig lacks.
    ("flconfig.compat", "flconfig.compat.jobapi"): "the registry",
    ("flconfig.compat", "flconfig.compat.jobapi.standins"): "the registry",
}


@functools.cache
def _modules() -> dict[str, Path]:
    found = {}
    for file in PACKAGE.rglob("*.py"):
        parts = list(file.relative_to(REPO).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts.pop()
        found[".".join(parts)] = file
    return found


def _target(module: str, file: Path, node: ast.ImportFrom) -> str:
    if node.level == 0:
        return node.module or ""
    base = module.split(".") if file.name == "__init__.py" else module.split(".")[:-1]
    base = base[: len(base) - (node.level - 1)]
    return ".".join(base + ([node.module] if node.module else []))


def _imports(module: str, file: Path, nodes: list[ast.stmt]) -> Iterator[tuple[str, ast.stmt]]:
    """(flconfig module imported, the statement) for import statements in ``nodes``."""
    modules = _modules()
    for node in nodes:
        if isinstance(node, ast.ImportFrom):
            target = _target(module, file, node)
            if target.startswith("flconfig"):
                yield target, node
                for alias in node.names:  # `from package import submodule`
                    if f"{target}.{alias.name}" in modules:
                        yield f"{target}.{alias.name}", node
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name.startswith("flconfig"):
                    yield alias.name, node


def _top_level(tree: ast.Module) -> list[ast.stmt]:
    """The module's import statements run on import (not those under TYPE_CHECKING)."""
    out: list[ast.stmt] = []
    for stmt in tree.body:
        if isinstance(stmt, ast.If) and "TYPE_CHECKING" in ast.unparse(stmt.test):
            continue
        if isinstance(stmt, (ast.If, ast.Try)):
            out.extend(s for s in ast.walk(stmt) if isinstance(s, (ast.Import, ast.ImportFrom)))
        elif isinstance(stmt, (ast.Import, ast.ImportFrom)):
            out.append(stmt)
    return out


def _graph() -> dict[str, set[str]]:
    """Module -> the flconfig modules importing it runs (their parent packages included)."""
    modules = _modules()
    graph: dict[str, set[str]] = {name: set() for name in modules}
    for name, file in modules.items():
        for target, _ in _imports(name, file, _top_level(ast.parse(file.read_text()))):
            parts = target.split(".")
            for i in range(2, len(parts) + 1):
                parent = ".".join(parts[:i])
                if parent in modules and parent != name and not name.startswith(parent + "."):
                    graph[name].add(parent)
    return graph


def _cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan, iteratively)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []
    for root in graph:
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = len(index)
        stack.append(root)
        on_stack.add(root)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is not None:
                if child not in index:
                    index[child] = low[child] = len(index)
                    stack.append(child)
                    on_stack.add(child)
                    work.append((child, iter(sorted(graph[child]))))
                elif child in on_stack:
                    low[node] = min(low[node], index[child])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[node])
            if low[node] == index[node]:
                component = []
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.append(member)
                    if member == node:
                        break
                if len(component) > 1:
                    found.append(sorted(component))
    return found


def test_no_module_imports_one_that_imports_it() -> None:
    assert _cycles(_graph()) == []


def test_the_cycle_check_finds_a_cycle() -> None:
    graph = {"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}
    assert _cycles(graph) == [["a", "b", "c"]]


@functools.cache
def _deferred() -> frozenset[tuple[str, str]]:
    found = set()
    for name, file in _modules().items():
        tree = ast.parse(file.read_text())
        for function in ast.walk(tree):
            if isinstance(function, (ast.FunctionDef, ast.AsyncFunctionDef)):
                body = [n for n in ast.walk(function) if isinstance(n, (ast.Import, ast.ImportFrom))]
                found.update((name, target) for target, _ in _imports(name, file, body))
    return frozenset(found)


def test_an_import_inside_a_function_is_one_the_list_explains() -> None:
    unexplained = sorted(_deferred() - set(DEFERRED))
    assert unexplained == [], "import these at the top of their module, or say in DEFERRED why not"


@pytest.mark.parametrize("pair", sorted(DEFERRED))
def test_every_explained_deferred_import_still_exists(pair: tuple[str, str]) -> None:
    assert pair in _deferred()
