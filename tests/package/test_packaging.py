"""The light install: `pip install flconfig` (no extras) validates jobs without torch,
tensorboard or grpc, as a pre-commit hook or CI lint step installs it; running needs
`flconfig[run]` and says so in one line."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import tomllib
import yaml
from harness import REPO

ROOT = REPO
HEAVY = ("torch", "tensorboard", "grpc", "numpy", "safetensors", "sklearn", "PIL")


def test_the_core_requirements_hold_nothing_heavy() -> None:
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    core = " ".join(project["dependencies"]).lower()
    assert not any(name in core for name in ("torch", "tensorboard", "grpcio", "numpy", "scikit"))
    assert any(dep.startswith("torch") for dep in project["optional-dependencies"]["run"])


def test_the_pre_commit_hook_runs_validate() -> None:
    hooks = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    assert [(h["id"], h["entry"], h["language"]) for h in hooks] == [
        ("flconfig-validate", "flconfig validate", "python")]


def test_py_typed_ships_with_the_package() -> None:
    assert (ROOT / "flconfig" / "py.typed").is_file()


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_plain_install_validates_without_heavy_packages(tmp_path: Path) -> None:
    # A copy of the source: building writes build/ and *.egg-info next to it.
    source = tmp_path / "src"
    shutil.copytree(ROOT, source, ignore=shutil.ignore_patterns(
        ".venv", ".git", "build", "workspace", "*.egg-info", "__pycache__", ".*_cache", ".hypothesis"))
    venv = tmp_path / "venv"
    subprocess.run([sys.executable, "-m", "venv", str(venv)], check=True)
    pip = subprocess.run([str(venv / "bin" / "pip"), "install", "--quiet", str(source)],
                         capture_output=True, text=True, timeout=540)
    assert pip.returncode == 0, pip.stderr[-2000:]
    python = str(venv / "bin" / "python")
    found = subprocess.run([python, "-c", "import importlib.util as u, sys; "
                            f"print(','.join(m for m in {HEAVY!r} if u.find_spec(m)))"],
                           capture_output=True, text=True, check=True).stdout.strip()
    assert found == ""  # none of the heavy packages came along
    flconfig = str(venv / "bin" / "flconfig")
    jobs = [str(p) for p in sorted((ROOT / "configs").iterdir())]
    checked = subprocess.run([flconfig, "validate", *jobs], capture_output=True, text=True, cwd=tmp_path)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    *lines, summary = checked.stdout.strip().splitlines()
    # The one thing a light install cannot know: the packages a job's own custom/ code imports
    # (the Client API example's script imports torch, numpy and scikit-learn).
    warned = [line for line in lines if not line.startswith("    hint:")]
    assert warned and all(
        "/configs/client-api/app/custom/" in line
        and any(f"warning: '{m}' is imported here but is not installed" in line for m in HEAVY)
        for line in warned), checked.stdout
    assert summary == f"{len(jobs)} jobs checked: {len(warned)} warnings"
    example = str(ROOT / "configs" / "tensorboard-streaming")
    launched = subprocess.run([flconfig, "launch", example, "-w", str(tmp_path / "ws")],
                              capture_output=True, text=True, cwd=tmp_path)
    assert launched.returncode == 2 and "Traceback" not in launched.stderr
    assert launched.stderr.strip().endswith("pip install 'flconfig[run]' (validation alone does not need it)")
    assert not (tmp_path / "ws").exists()
