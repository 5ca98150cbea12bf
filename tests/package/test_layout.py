"""The package layout: docs/architecture.md names every package and top-level module
flconfig has, and nothing it lacks; the old paths of moved modules are gone."""

from __future__ import annotations

import importlib
import re

import pytest
from harness import REPO

ROOT = REPO
PACKAGE = ROOT / "flconfig"


def documented_tree() -> set[str]:
    """The names in the tree block of docs/architecture.md ("config/", "errors.py" ...)."""
    text = (ROOT / "docs" / "architecture.md").read_text()
    block = text.split("## Packages", 1)[1].split("```", 2)[1]
    return set(re.findall(r"^  (\S+)", block, re.M))


def built_tree() -> set[str]:
    packages = {f"{p.name}/" for p in PACKAGE.iterdir() if (p / "__init__.py").is_file()}
    modules = {p.name for p in PACKAGE.glob("*.py")}
    return packages | modules


def test_the_architecture_page_names_every_package_and_module_that_exists() -> None:
    assert documented_tree() == built_tree()


@pytest.mark.parametrize("old", [
    "flconfig.api", "flconfig.job", "flconfig.launcher", "flconfig.schema", "flconfig.report",
    "flconfig.runtime.comm", "flconfig.runtime.comm_server", "flconfig.components.tracking",
    "flconfig.config.hocon",
])
def test_a_moved_modules_old_path_is_gone(old: str) -> None:
    # Nothing was released under these paths; one place for each module.
    with pytest.raises(ModuleNotFoundError):
        importlib.import_module(old)


def test_the_license_file_is_the_license_pyproject_declares() -> None:
    declared = re.search(r'^license = \{ text = "([^"]+)" \}$', (ROOT / "pyproject.toml").read_text(), re.M)
    assert declared is not None
    text = (ROOT / "LICENSE").read_text()
    assert declared.group(1) == "Apache-2.0"
    assert text.lstrip().startswith("Apache License\n                           Version 2.0, January 2004")
    assert "END OF TERMS AND CONDITIONS" in text
