"""``flconfig init``: every template validates and runs as created, named after its folder;
a folder in use, an unknown template or format is one line."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO
from harness.launching import launch, scalars

from flconfig.config.parsers import load_document
from flconfig.templates import TEMPLATES


def flconfig(*args: str, cwd: Path | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                          timeout=timeout, cwd=cwd)


def test_list_names_every_template_with_what_it_is_and_its_formats() -> None:
    done = flconfig("init", "--list")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert [line.split()[0] for line in lines] == ["fedavg-tensorboard", "client-api", "numpy", "recipe"]
    assert lines[0].endswith("[json or yaml]") and "TensorBoard" in lines[0]


@pytest.mark.parametrize("template, fmt, meta", [
    ("fedavg-tensorboard", None, "meta.json"),
    ("fedavg-tensorboard", "yaml", "meta.yaml"),
    ("client-api", None, "meta.conf"),
    ("numpy", None, "meta.json"),
])
def test_a_job_folder_template_validates_as_created_and_is_named_after_its_folder(
        tmp_path: Path, template: str, fmt: str | None, meta: str) -> None:
    dest = tmp_path / "ward-7"
    done = flconfig("init", str(dest), "--template", template, *(["--format", fmt] if fmt else []))
    assert done.returncode == 0, done.stderr
    assert done.stdout.startswith(f"flconfig: created {dest} from template '{template}'")
    assert f"  flconfig validate {dest}\n  flconfig explain {dest}\n  flconfig launch {dest}\n" in done.stdout
    assert (dest / meta).is_file()
    checked = flconfig("validate", str(dest))
    assert (checked.returncode, checked.stdout) == (0, "1 job checked: no problems found\n"), checked.stdout
    assert load_document(dest / meta).data["name"] == "ward-7"


def test_the_recipe_template_is_a_job_script_named_after_its_folder(tmp_path: Path) -> None:
    dest = tmp_path / "trial"
    done = flconfig("init", str(dest), "--template", "recipe")
    assert done.returncode == 0, done.stderr
    assert sorted(p.name for p in dest.iterdir()) == ["client.py", "job.py", "model.py"]
    assert 'name="trial",' in (dest / "job.py").read_text()
    assert f"  cd {dest} && flconfig run job.py\n" in done.stdout
    # Exported as a job folder, it validates: the script is a front end to one.
    exported = flconfig("run", "job.py", "--export", cwd=dest, timeout=300)
    assert exported.returncode == 0, exported.stdout + exported.stderr
    folders = list(dest.rglob("meta.json"))
    assert len(folders) == 1, exported.stdout
    checked = flconfig("validate", str(folders[0].parent))
    assert checked.returncode == 0, checked.stdout


@pytest.mark.parametrize("args, says", [
    (["--template", "numpi"], "no template 'numpi': did you mean 'numpy'? (the templates: fedavg-tensorboard, "
                              "client-api, numpy, recipe; flconfig init --list says what each is)"),
    (["--template", "numpy", "--format", "yaml"], "template 'numpy' is written in json, not yaml"),
])
def test_an_unknown_template_or_format_is_one_line_and_writes_nothing(
        tmp_path: Path, args: list[str], says: str) -> None:
    done = flconfig("init", str(tmp_path / "job"), *args)
    assert (done.returncode, done.stdout, done.stderr) == (2, "", f"flconfig init: {says}\n")
    assert not (tmp_path / "job").exists()


def test_a_folder_with_files_in_it_is_left_alone(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    done = flconfig("init", str(tmp_path))
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == f"flconfig init: {tmp_path} is a folder with files in it: give a new or empty folder\n"
    assert [p.name for p in tmp_path.iterdir()] == ["notes.txt"]
    done = flconfig("init")
    assert done.returncode == 2 and done.stderr.startswith("flconfig init: give the new job's folder")


@pytest.mark.parametrize("source, template, fmt", [
    ("configs/tensorboard-streaming", "fedavg-tensorboard", None),
    ("configs/tensorboard-streaming-yaml", "fedavg-tensorboard", "yaml"),
    ("configs/client-api", "client-api", None),
])
def test_the_repositorys_example_jobs_are_the_templates_themselves(source: str, template: str,
                                                                   fmt: str | None) -> None:
    # One copy: the README's and the tests' example jobs are links to what init writes.
    assert (REPO / source).resolve() == TEMPLATES[template].folder(fmt).resolve()


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("template", ["fedavg-tensorboard", "client-api", "numpy"])
def test_a_job_folder_template_launches_as_created(tmp_path: Path, template: str) -> None:
    dest = tmp_path / "job"
    assert flconfig("init", str(dest), "--template", template).returncode == 0
    done = launch(dest, tmp_path / "ws", "--quiet-metrics", timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "job finished" in done.stdout
    if template != "numpy":  # every site's metrics in the server's TensorBoard files
        tb = tmp_path / "ws" / "server" / "simulate_job" / "tb_events"
        for site in ("site-1", "site-2"):
            assert scalars(tb / site, "train_loss"), site


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_the_recipe_template_runs_as_created(tmp_path: Path) -> None:
    dest = tmp_path / "job"
    assert flconfig("init", str(dest), "--template", "recipe").returncode == 0
    done = flconfig("run", "job.py", "--num_rounds", "2", "--workspace_root", str(tmp_path / "ws"),
                    cwd=dest, timeout=500)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Job Status is: FINISHED:COMPLETED" in done.stdout, done.stdout
    # The job is named after its folder; its sites' metrics reached the server's TensorBoard.
    tb = tmp_path / "ws" / "job" / "server" / "simulate_job" / "tb_events"
    for site in ("site-1", "site-2"):
        assert scalars(tb / site, "train_loss"), site


def test_json_meta_keeps_its_keys_in_order(tmp_path: Path) -> None:
    flconfig("init", str(tmp_path / "j"))
    assert list(json.loads((tmp_path / "j" / "meta.json").read_text())) == [
        "name", "resource_spec", "min_clients", "deploy_map"]


def test_the_next_steps_are_command_lines_a_shell_runs_as_printed(tmp_path: Path) -> None:
    for name in ("my job ü", "-dash"):
        done = flconfig("init", "--", name, cwd=tmp_path)
        assert done.returncode == 0, done.stderr
        step = next(s for s in done.stdout.split("next:\n", 1)[1].splitlines() if " validate " in s)
        command = step.strip().replace("flconfig", f"{sys.executable} -m flconfig", 1)
        checked = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300, cwd=tmp_path)
        assert checked.returncode == 0, (step, checked.stdout + checked.stderr)
        assert checked.stdout == "1 job checked: no problems found\n"


def test_the_recipe_example_is_the_recipe_template() -> None:
    # A copy, not a link: a job script's own modules must not lie inside the flconfig package,
    # or flconfig run takes them for its own and does not ship them with the job.
    example, template = REPO / "examples" / "job-api-tensorboard", TEMPLATES["recipe"].folder(None)
    for name in ("job.py", "client.py", "model.py"):
        assert (example / name).read_text() == (template / name).read_text(), name

