"""The run plan: a job checked once, every site's configuration resolved for the run,
and processes that build from the plan alone."""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import pytest
from harness import REPO

from flconfig.config.job import ConfigFile
from flconfig.errors import ConfigError
from flconfig.runtime.build import build_from_plan
from flconfig.runtime.plan import plan_from_json
from flconfig.runtime.planner import plan_run
from flconfig.validate import loader
from flconfig.validate.loader import load_job

ROOT = REPO
EXAMPLE = ROOT / "configs" / "tensorboard-streaming"
SITES = [f"site-{i}" for i in range(1, 1001)]


@pytest.fixture
def job_copy(tmp_path: Path) -> Path:
    folder = tmp_path / "job"
    shutil.copytree(EXAMPLE, folder)
    return folder


def client_config(folder: Path) -> Path:
    return folder / "app" / "config" / "config_fed_client.json"


def set_learner_arg(folder: Path, name: str, value: object) -> None:
    """Set one arg of the example's learner in the job copy's client config."""
    config = json.loads(client_config(folder).read_text())
    learner = next(c for c in config["components"] if c["id"] == "pt_learner")
    learner["args"][name] = value
    client_config(folder).write_text(json.dumps(config, indent=2))


def test_sites_with_the_same_configuration_share_one_site_plan(tmp_path: Path) -> None:
    job = load_job(EXAMPLE)
    plan = plan_run(job, SITES, tmp_path / "ws", "run-1")
    assert len(plan.configs) == 2  # the server's and the one all 1,000 sites share
    assert {plan.sites[s] for s in SITES} == {plan.sites["site-1"]} != {plan.sites["server"]}
    # What a thousand sites build from is what two build from.
    assert plan.configs == plan_run(job, SITES[:2], tmp_path / "ws", "run-1").configs


def test_a_site_dependent_configuration_is_resolved_for_each_site(
    job_copy: Path, tmp_path: Path
) -> None:
    set_learner_arg(job_copy, "data_path", "{WORKSPACE}/data/{SITE_NAME}/{JOB_ID}")
    plan = plan_run(load_job(job_copy), ["site-1", "site-2", "site-3"], tmp_path / "ws", "run-9")
    assert len(plan.configs) == 4
    for site in ("site-1", "site-2", "site-3"):
        (learner_plan,) = [c for c in plan.for_site(site).components if c.id == "pt_learner"]
        assert learner_plan.args["data_path"] == f"{tmp_path / 'ws'}/data/{site}/run-9"


def test_a_plan_survives_its_json_form_and_builds_without_the_job(
    job_copy: Path, tmp_path: Path
) -> None:
    plan = plan_run(load_job(job_copy), ["site-1", "site-2"], tmp_path / "ws", "run-1")
    text = plan.to_json()
    assert plan_from_json(text) == plan
    shutil.rmtree(job_copy)  # the processes of a run never read the job again
    built = build_from_plan(plan_from_json(text), "site-2")
    assert sorted(built.components) == ["event_to_fed", "log_writer", "pt_learner"]
    assert [tasks for tasks, _ in built.executors] == [["train", "submit_model", "validate"]]
    server = build_from_plan(plan_from_json(text), "server")
    assert [type(w).__name__ for w in server.workflows] == ["ScatterAndGather",
                                                           "CrossSiteModelEval"]


def test_building_from_a_plan_imports_no_validation_code(tmp_path: Path) -> None:
    plan = plan_run(load_job(EXAMPLE), ["site-1"], tmp_path / "ws", "run-1")
    (tmp_path / "plan.json").write_text(plan.to_json())
    script = (
        "import sys\n"
        "from flconfig.runtime.build import build_from_plan\n"
        "from flconfig.runtime.plan import load_plan\n"
        f"built = build_from_plan(load_plan({str(tmp_path / 'plan.json')!r}), 'site-1')\n"
        # flconfig.registry's package holds flare_modules (which FLARE modules a site serves
        # job code), so it may be loaded; the Registry itself (registry.registry) may not.
        "loaded = [m for m in ('flconfig.config.job', 'flconfig.registry.registry', 'flconfig.validate.checks',\n"
        "                      'flconfig.schemas', 'jsonschema', 'flconfig.registry.introspect')\n"
        "          if m in sys.modules]\n"
        "print(sorted(built.components), loaded)\n"
    )
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "['event_to_fed', 'log_writer', 'pt_learner'] []"


def test_a_mistake_only_the_run_reveals_is_refused_at_planning_with_its_position(
    job_copy: Path, tmp_path: Path
) -> None:
    set_learner_arg(job_copy, "data_path", "{$FLCONFIG_TEST_DATA}")
    job = load_job(job_copy, environ={"FLCONFIG_TEST_DATA": "/data"})
    # The run's environment lacks the variable validation saw.
    with pytest.raises(ConfigError) as err:
        plan_run(job, ["site-1"], tmp_path / "ws", "run-1", environ={})
    [problem] = err.value.problems
    assert "config_fed_client.json" in str(problem.position)
    assert problem.position is not None and problem.position.line > 1
    assert "FLCONFIG_TEST_DATA" in str(problem)


def test_a_class_that_fails_to_import_at_build_names_its_place(
    job_copy: Path, tmp_path: Path
) -> None:
    custom = job_copy / "app" / "custom"
    custom.mkdir()
    (custom / "my_widget.py").write_text(
        "from flconfig.components.base import Widget\n\n\nclass MyWidget(Widget):\n    pass\n"
    )
    config = json.loads(client_config(job_copy).read_text())
    config["components"].append({"id": "mine", "path": "my_widget.MyWidget", "args": {}})
    client_config(job_copy).write_text(json.dumps(config, indent=2))
    plan = plan_run(load_job(job_copy), ["site-1"], tmp_path / "ws", "run-1")
    assert "mine" in build_from_plan(plan, "site-1").components
    # The module changes between planning and building: refused, at its place in the config.
    (custom / "my_widget.py").write_text("raise RuntimeError('broken on this site')\n")
    sys.modules.pop("my_widget", None)
    with pytest.raises(ConfigError) as err:
        build_from_plan(plan, "site-1")
    [problem] = err.value.problems
    assert problem.code == "import-failed" and "broken on this site" in problem.message
    assert "config_fed_client.json" in str(problem.position)


def _count_resolutions(monkeypatch: pytest.MonkeyPatch) -> tuple[Counter[str], Counter[str]]:
    """Spies on the real per-site steps: a config's variables resolved for a site (the
    loader's resolve_config, which schema-checks it too) and its classes resolved; each
    counted by the site it is for."""
    variables: Counter[str] = Counter()
    classes: Counter[str] = Counter()
    resolve_config, resolve_components = loader.resolve_config, ConfigFile.resolve_components

    def counted_config(*args: Any, **kwargs: Any) -> Any:
        variables[args[4]] += 1
        return resolve_config(*args, **kwargs)

    def counted_classes(self: ConfigFile, registry: Any) -> Any:
        classes[self.system["SITE_NAME"]] += 1
        return resolve_components(self, registry)

    monkeypatch.setattr(loader, "resolve_config", counted_config)
    monkeypatch.setattr(ConfigFile, "resolve_components", counted_classes)
    return variables, classes


def test_each_sites_configuration_is_resolved_and_checked_once_per_launch(
    job_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_learner_arg(job_copy, "data_path", "{SITE_NAME}/data")
    variables, classes = _count_resolutions(monkeypatch)
    # As the launcher does: check the job, then plan the run.
    job = load_job(job_copy)
    plan = plan_run(job, ["site-1", "site-2", "site-3"], tmp_path / "ws", "run-1")
    once = {"server": 1, "site-1": 1, "site-2": 1, "site-3": 1}
    assert variables == once and classes == once
    (learner,) = [c for c in plan.for_site("site-2").components if c.id == "pt_learner"]
    assert learner.args["data_path"] == "site-2/data"


def test_a_configuration_that_reads_no_run_value_is_resolved_only_by_the_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    variables, classes = _count_resolutions(monkeypatch)
    plan_run(load_job(EXAMPLE), SITES, tmp_path / "ws", "run-1")
    assert variables == classes == {"server": 1, "site-1": 1}


def test_a_configuration_that_reads_the_workspace_is_resolved_for_the_run(
    job_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    set_learner_arg(job_copy, "data_path", "{WORKSPACE}/data")
    variables, _ = _count_resolutions(monkeypatch)
    plan = plan_run(load_job(job_copy), ["site-1", "site-2"], tmp_path / "ws", "run-1")
    # The check's placeholder workspace, then the run's, shared by both sites.
    assert variables == {"server": 1, "site-1": 2}
    (learner,) = [c for c in plan.for_site("site-2").components if c.id == "pt_learner"]
    assert learner.args["data_path"] == f"{tmp_path / 'ws'}/data"


def test_a_job_checked_for_its_run_is_not_resolved_again_for_it(
    job_copy: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # What the launcher does: the job is checked with the run's workspace and job id, so
    # a config that reads them is resolved once, by the check.
    set_learner_arg(job_copy, "data_path", "{WORKSPACE}/{JOB_ID}/data")
    variables, classes = _count_resolutions(monkeypatch)
    workspace = tmp_path / "ws"
    job = load_job(job_copy, workspace=workspace, job_id="run-1")
    plan = plan_run(job, ["site-1", "site-2"], workspace, "run-1")
    assert variables == classes == {"server": 1, "site-1": 1}
    (learner,) = [c for c in plan.for_site("site-2").components if c.id == "pt_learner"]
    assert learner.args["data_path"] == f"{workspace}/run-1/data"
    # Planned for another run, the same checked job is resolved for that run.
    other = plan_run(job, ["site-1"], workspace, "run-2")
    (learner,) = [c for c in other.for_site("site-1").components if c.id == "pt_learner"]
    assert learner.args["data_path"] == f"{workspace}/run-2/data"


def test_a_problem_of_one_site_is_refused_at_planning_at_its_place(job_copy: Path,
                                                                   tmp_path: Path) -> None:
    set_learner_arg(job_copy, "dataset", "{SITE_NAME}")
    meta = json.loads((job_copy / "meta.json").read_text())
    meta["deploy_map"] = {"app": ["server", "digits", "cifar10", "x3"]}
    (job_copy / "meta.json").write_text(json.dumps(meta))
    job = load_job(job_copy)  # checked for its first site, "digits": valid
    with pytest.raises(ConfigError) as err:
        plan_run(job, ["digits", "cifar10", "x3"], tmp_path / "ws", "run-1")
    [problem] = err.value.problems
    lines = client_config(job_copy).read_text().splitlines()
    line = next(i for i, text in enumerate(lines, 1) if '"dataset"' in text)
    column = lines[line - 1].index('"{SITE_NAME}"') + 1
    assert (problem.position.file, problem.position.line, problem.position.column) == (
        str(client_config(job_copy)), line, column)
    assert (problem.code, problem.json_path) == ("bad-arg", ("components", 0, "args", "dataset"))
    assert problem.message == ("argument 'dataset' of DigitsLearner must be one of 'digits' or "
                               "'cifar10', not {SITE_NAME}")


def test_the_public_api_names_resolve() -> None:
    import flconfig

    for name in flconfig.__all__:
        assert getattr(flconfig, name) is not None
    assert flconfig.plan_run is plan_run and flconfig.build_from_plan is build_from_plan
