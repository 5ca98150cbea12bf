"""The package layout: every module's old path still imports, as the module itself."""

from __future__ import annotations

import importlib

import pytest

MOVED = {
    "flconfig.api": "flconfig.types",
    "flconfig.documents": "flconfig.config.documents",
    "flconfig.variables": "flconfig.config.variables",
    "flconfig.meta": "flconfig.config.meta",
    "flconfig.job": "flconfig.config.job",
    "flconfig.schema": "flconfig.schemas",
    "flconfig.checks": "flconfig.validate.checks",
    "flconfig.wiring": "flconfig.validate.wiring",
    "flconfig.containment": "flconfig.validate.containment",
    "flconfig.aliases": "flconfig.registry.aliases",
    "flconfig.introspect": "flconfig.registry.introspect",
    "flconfig.arg_schema": "flconfig.registry.arg_schema",
    "flconfig.plugins": "flconfig.registry.plugins",
    "flconfig.launcher": "flconfig.launch.launcher",
    "flconfig.build": "flconfig.runtime.build",
    "flconfig.report": "flconfig.cli.report",
    "flconfig.runtime.comm": "flconfig.transport.contract",
    "flconfig.runtime.codec": "flconfig.transport.codec",
    "flconfig.runtime.comm_server": "flconfig.transport.server",
    "flconfig.runtime.comm_client": "flconfig.transport.client",
}


@pytest.mark.parametrize("old, new", sorted(MOVED.items()))
def test_an_old_module_path_is_the_moved_module(old: str, new: str) -> None:
    assert importlib.import_module(old) is importlib.import_module(new)


def test_names_users_import_from_old_paths_still_work() -> None:
    from flconfig.api import FLModel
    from flconfig.job import Job, load_job
    from flconfig.types import FLModel as NewFLModel

    assert FLModel is NewFLModel
    assert load_job.__module__ == "flconfig.config.job" and Job.__module__ == "flconfig.config.job"
