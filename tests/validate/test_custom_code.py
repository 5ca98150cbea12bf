"""A job's code runs only where its participant allows it, and only its own app's code.

Each participant (the server, the sites of an app) resolves classes from the ``custom/``
folder of the app deployed to it and from no other; a participant that does not run
custom code imports nothing of the job folder. Refused in three layers, each tested on
its own: validate (and the server at submit, the site at deploy, which run the same
check for their own participant), and the job process building its components.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

from flconfig.errors import ConfigError
from flconfig.registry import Registry, ResolveError
from flconfig.runtime.build import build_from_plan
from flconfig.runtime.plan import RunPlan, plan_from_json
from flconfig.runtime.planner import plan_run
from flconfig.validate.loader import inspect_job

ROOT = REPO
SEED_JOB = ROOT / "configs" / "tensorboard-streaming"
CLIENT_API_JOB = ROOT / "configs" / "client-api"

# A module whose import leaves a mark: proof that it ran (or, by its absence, that it did not).
EVIL = '''import pathlib
pathlib.Path({marker!r}).write_text("imported")

from nvflare.apis.fl_component import FLComponent


class Evil(FLComponent):
    def __init__(self):
        super().__init__()
'''


def flconfig(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                          timeout=300, cwd=cwd)


def _edit_json(path: Path, change) -> None:  # type: ignore[no-untyped-def]
    data = json.loads(path.read_text())
    change(data)
    path.write_text(json.dumps(data, indent=2))


def job_with_module(tmp_path: Path, app: str, deploy: list[str] | None, marker: Path,
                    name_it_in: str = "server") -> Path:
    """The seed job with ``app/custom/evil_mod.py`` (deployed to ``deploy``; None: the app
    is not in the deploy map at all), whose class the ``name_it_in`` config names."""
    job = tmp_path / "job"
    shutil.copytree(SEED_JOB, job)
    custom = job / app / "custom"
    custom.mkdir(parents=True)
    (custom / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
    if deploy is not None:
        _edit_json(job / "meta.json", lambda m: m["deploy_map"].__setitem__(app, deploy))
    config = job / "app" / "config" / f"config_fed_{name_it_in}.json"
    _edit_json(config, lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
    return job


def two_app_job(tmp_path: Path, deploy_map: dict[str, list[str]], copy_to: str) -> Path:
    """The seed job with its app copied to ``copy_to`` and ``deploy_map`` as its meta's."""
    job = tmp_path / "job"
    shutil.copytree(SEED_JOB, job)
    shutil.copytree(job / "app", job / copy_to)
    _edit_json(job / "meta.json", lambda m: m.__setitem__("deploy_map", deploy_map))
    return job


def line_of(file: Path, text: str) -> int:
    return next(i for i, line in enumerate(file.read_text().splitlines(), 1) if text in line)


# --- validate: another app's custom/ is never on a participant's path ------------------------


@pytest.mark.parametrize("deploy", [[], None, ["site-9"]], ids=["deployed-to-nobody", "not-in-deploy-map",
                                                                 "deployed-to-another-site"])
def test_validate_reports_a_class_from_another_apps_custom_folder_at_its_line(
        tmp_path: Path, deploy: list[str] | None) -> None:
    marker = tmp_path / "marker"
    job = job_with_module(tmp_path, "evil", deploy, marker)
    result = flconfig("validate", str(job))
    assert result.returncode == 1, result.stdout
    config = job / "app" / "config" / "config_fed_server.json"
    line = line_of(config, '"evil_mod.Evil"')
    assert (f"config_fed_server.json:{line}:15: error: 'evil_mod.Evil' is in the custom/ folder of app "
            f"'evil' (evil/custom/evil_mod.py), which is not deployed to") in result.stdout, result.stdout
    assert "a participant imports classes only from the custom/ folder of its own app" in result.stdout
    assert not marker.exists()


def test_a_site_config_cannot_name_a_class_of_the_server_apps_custom_folder(tmp_path: Path) -> None:
    job = two_app_job(tmp_path, {"server_app": ["server"], "app": ["site-1", "site-2"]}, "server_app")
    custom = job / "server_app" / "custom"
    custom.mkdir()
    (custom / "evil_mod.py").write_text(EVIL.format(marker=str(tmp_path / "marker")))
    client = job / "app" / "config" / "config_fed_client.json"
    _edit_json(client, lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
    _, problems = inspect_job(job)
    [problem] = [p for p in problems if p.is_error]
    assert problem.code == "custom-not-deployed"
    assert problem.message.endswith("which is not deployed to the sites of app 'app'")
    assert problem.position is not None and problem.position.line == line_of(client, '"evil_mod.Evil"')


def test_launch_of_a_job_naming_another_apps_class_runs_nothing(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job = job_with_module(tmp_path, "evil", [], marker)
    result = flconfig("launch", str(job), "--workspace", str(tmp_path / "ws"))
    assert result.returncode == 1
    assert "which is not deployed to" in result.stdout
    assert "nothing was started" in result.stdout
    assert not marker.exists()


def test_each_app_resolves_its_own_module_of_a_shared_name(tmp_path: Path) -> None:
    """Two apps may each have custom/trainer.py: each participant gets its own app's."""
    job = two_app_job(tmp_path, {"app": ["server", "site-1"], "app2": ["site-2"]}, "app2")
    for app, base in (("app", "DigitsLearner"), ("app2", "NotAClass")):
        (job / app / "custom").mkdir()
        (job / app / "custom" / "trainer.py").write_text(
            f"from flconfig.examples.digits import {base}\n\n\nclass Trainer({base}):\n    pass\n"
            if base == "DigitsLearner" else "X = 1\n")
    client = job / "app" / "config" / "config_fed_client.json"
    client.write_text(client.read_text().replace("flconfig.examples.digits.DigitsLearner", "trainer.Trainer"))
    _, problems = inspect_job(job)
    assert [p.code for p in problems if p.is_error] == []
    client2 = job / "app2" / "config" / "config_fed_client.json"
    client2.write_text(client2.read_text().replace("flconfig.examples.digits.DigitsLearner", "trainer.Trainer"))
    _, problems = inspect_job(job)
    [error] = [p for p in problems if p.is_error]
    assert error.position is not None and error.position.file.endswith("app2/config/config_fed_client.json")
    assert "no class 'Trainer' in" in error.message  # app2's own trainer.py, not app's


def test_a_site_process_has_only_its_own_apps_custom_folder_on_its_path(tmp_path: Path) -> None:
    job = two_app_job(tmp_path, {"app": ["server", "site-1"], "app2": ["site-2"]}, "app2")
    for app in ("app", "app2"):
        (job / app / "custom").mkdir()
        (job / app / "custom" / "trainer.py").write_text(
            "from flconfig.examples.digits import DigitsLearner\n\n\nclass Trainer(DigitsLearner):\n    pass\n")
        client = job / app / "config" / "config_fed_client.json"
        client.write_text(client.read_text().replace("flconfig.examples.digits.DigitsLearner", "trainer.Trainer"))
    checked, problems = inspect_job(job)
    assert checked is not None and not [p for p in problems if p.is_error]
    plan = plan_run(checked, ["site-1", "site-2"], tmp_path / "ws", "job1")
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(plan.to_json())
    probe = ("import sys\nfrom flconfig.runtime.build import build_from_plan\n"
             "from flconfig.runtime.plan import load_plan\n"
             f"build_from_plan(load_plan({str(plan_file)!r}), 'site-2')\n"
             "print([p for p in sys.path if p.endswith('custom')])\n"
             "print(sys.modules['trainer'].__file__)\n")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=tmp_path, check=True).stdout.splitlines()
    assert out[0] == repr([str((job / "app2" / "custom").resolve())])
    assert out[1] == str((job / "app2" / "custom" / "trainer.py").resolve())


def test_a_launch_worker_process_hosts_the_sites_of_one_app_only() -> None:
    from flconfig.launch.launcher import plan_workers

    sites = [f"site-{i}" for i in range(1, 41)]
    apps = {site: "app_a" if i % 3 else "app_b" for i, site in enumerate(sites)}
    groups = plan_workers(sites, cores=4, apps=apps)
    assert sorted(s for g in groups for s in g) == sorted(sites)
    assert all(len({apps[s] for s in group}) == 1 for group in groups)
    assert {apps[g[0]] for g in groups} == {"app_a", "app_b"}


# --- a participant that runs no custom code: validate's view of it --------------------------


def client_api_job(tmp_path: Path) -> Path:
    job = tmp_path / "client-api"
    shutil.copytree(CLIENT_API_JOB, job)
    return job


def test_a_participant_without_custom_code_refuses_its_apps_custom_folder(tmp_path: Path) -> None:
    job = client_api_job(tmp_path)
    _, problems = inspect_job(job, participant="site-1", allow_custom_code=False)
    errors = [p for p in problems if p.is_error]
    assert {p.code for p in errors} == {"custom-code-not-allowed"}
    folder = next(p for p in errors if p.position is not None and p.position.file.endswith("app/custom"))
    assert folder.message == ("app 'app' holds custom code (2 file(s) in custom/: net.py, train.py), and "
                              "site 'site-1' does not run custom code")
    # the server config's model class lives in the same (@ALL) app's custom/: refused at its line
    # (written through the variable {model_class_path}: the message shows that, not its value)
    assert any(p.message.startswith("{model_class_path} is the job's own code (app/custom/net.py)")
               for p in errors), errors
    # the same job, for a participant that runs custom code
    _, problems = inspect_job(job, participant="site-1", allow_custom_code=True)
    assert not [p for p in problems if p.is_error]


def test_a_class_of_the_job_folder_is_refused_at_its_line_for_a_participant_without_custom_code(
        tmp_path: Path) -> None:
    job = tmp_path / "job"
    shutil.copytree(SEED_JOB, job)
    (job / "app" / "custom").mkdir()
    marker = tmp_path / "marker"
    (job / "app" / "custom" / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
    server = job / "app" / "config" / "config_fed_server.json"
    _edit_json(server, lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
    _, problems = inspect_job(job, participant="server", allow_custom_code=False)
    by_code = {p.code: p for p in problems if p.is_error}
    refused = by_code["custom-code-not-allowed"]
    assert any(p.position is not None and p.position.line == line_of(server, '"evil_mod.Evil"')
               and "'evil_mod.Evil' is the job's own code (app/custom/evil_mod.py), and the server does not "
                   "run custom code" in p.message for p in problems), problems
    assert refused is not None
    assert not marker.exists()


# --- the job process: the third layer ---------------------------------------------------------


def _custom_learner_job(tmp_path: Path, marker: Path) -> Path:
    job = tmp_path / "job"
    shutil.copytree(SEED_JOB, job)
    (job / "app" / "custom").mkdir()
    (job / "app" / "custom" / "my_learner.py").write_text(
        f"import pathlib\npathlib.Path({str(marker)!r}).write_text('imported')\n"
        "from flconfig.examples.digits import DigitsLearner\n\n\nclass MyLearner(DigitsLearner):\n    pass\n")
    client = job / "app" / "config" / "config_fed_client.json"
    client.write_text(client.read_text().replace("flconfig.examples.digits.DigitsLearner", "my_learner.MyLearner"))
    return job


def _without_custom_code(plan: RunPlan) -> RunPlan:
    """``plan`` as a site that runs no custom code would have it, but (a forged or stale
    plan) still naming the job's class."""
    configs = tuple(dataclasses.replace(c, allow_custom_code=False) for c in plan.configs)
    return plan_from_json(dataclasses.replace(plan, configs=configs).to_json())


def test_building_imports_nothing_of_the_job_folder_when_custom_code_is_off(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job = _custom_learner_job(tmp_path, marker)
    checked, problems = inspect_job(job)
    assert checked is not None and not [p for p in problems if p.is_error]
    plan = _without_custom_code(plan_run(checked, ["site-1"], tmp_path / "ws", "job1", server=False))
    with pytest.raises(ConfigError) as caught:
        build_from_plan(plan, "site-1")
    text = str(caught.value)
    assert "config_fed_client.json" in text
    assert "'my_learner.MyLearner' is the job's own code, and this participant does not run custom code" in text
    assert not marker.exists()


def test_a_module_python_would_find_in_the_job_folder_is_not_imported_when_custom_code_is_off(
        tmp_path: Path) -> None:
    """A plan naming an allowed module that the working folder (on sys.path first) makes
    Python find inside the job folder: refused before its code runs."""
    marker = tmp_path / "marker"
    job = _custom_learner_job(tmp_path, marker)
    checked, _ = inspect_job(job, allowed_modules=["my_learner"])
    assert checked is not None
    plan = plan_run(checked, ["site-1"], tmp_path / "ws", "job1", server=False)
    forged = json.loads(_without_custom_code(plan).to_json())
    for config in forged["configs"]:
        for component in config["components"]:
            if component["cls"]["module"] == "my_learner":
                component["cls"]["origin"] = "allowed"
                component["cls"]["file"] = None
    plan_file = tmp_path / "plan.json"
    plan_file.write_text(json.dumps(forged))
    probe = ("from flconfig.runtime.build import build_from_plan\n"
             "from flconfig.runtime.plan import load_plan\n"
             "from flconfig.errors import ConfigError\n"
             f"try:\n    build_from_plan(load_plan({str(plan_file)!r}), 'site-1')\n"
             "except ConfigError as exc:\n    print(exc)\n")
    # run from inside custom/, so '' on sys.path would find my_learner there
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=120,
                         cwd=job / "app" / "custom", check=True).stdout
    assert "module 'my_learner' for 'my_learner.MyLearner' would be imported from the job folder" in out, out
    assert "this participant does not run custom code" in out
    assert not marker.exists()


def test_the_registry_of_a_participant_without_custom_code_never_loads_a_job_class(tmp_path: Path) -> None:
    marker = tmp_path / "marker"
    job = _custom_learner_job(tmp_path, marker)
    custom = job / "app" / "custom"
    allowed = Registry.create(custom_dirs=[custom], job_root=job, environ={})
    info = allowed.resolve("path", "my_learner.MyLearner")
    assert info.origin == "custom"
    refusing = Registry.create(custom_dirs=[custom], job_root=job, environ={}, allow_custom_code=False,
                               participant="site 'site-1'")
    with pytest.raises(ResolveError) as caught:
        refusing.resolve("path", "my_learner.MyLearner")
    assert caught.value.code == "custom-code-not-allowed"
    assert "and site 'site-1' does not run custom code" in caught.value.message
    # nor would it load a class another registry resolved
    with pytest.raises(ResolveError):
        refusing.load_class(info)
    assert not marker.exists()


# --- distributed mode: the server at submit, the site at deploy -------------------------------


@pytest.mark.slow
def test_a_server_and_a_site_without_custom_code_each_refuse_it_saying_why(tmp_path: Path) -> None:
    from harness.deployment import Deployment

    dep = Deployment(tmp_path / "kits", {"site-1": False}, server_custom=False).start()
    try:
        # The server: a job whose server config names a class of its app's custom/.
        marker = tmp_path / "marker"
        job = tmp_path / "job"
        shutil.copytree(SEED_JOB, job)
        (job / "app" / "custom").mkdir()
        (job / "app" / "custom" / "evil_mod.py").write_text(EVIL.format(marker=str(marker)))
        server = job / "app" / "config" / "config_fed_server.json"
        _edit_json(server, lambda c: c["components"].append({"id": "evil", "path": "evil_mod.Evil", "args": {}}))
        before = len(dep.jobs())
        result = dep.admin("submit", str(job))
        assert result.returncode == 1, result.stdout + result.stderr
        line = line_of(server, '"evil_mod.Evil"')
        assert (f"{job}/app/config/config_fed_server.json:{line}:15: error: 'evil_mod.Evil' is the job's own "
                "code (app/custom/evil_mod.py), and the server does not run custom code") in result.stdout
        assert f"{job}/app/custom: error: app 'app' holds custom code (1 file(s) in custom/: evil_mod.py)" \
            in result.stdout
        assert "nothing was queued" in result.stdout
        assert len(dep.jobs()) == before
        assert ".incoming" not in result.stdout and str(dep.workspace) not in result.stdout

        # The site: the server app holds no custom code (accepted), site-1's app does.
        job2 = tmp_path / "job2"
        shutil.copytree(_custom_learner_job(tmp_path / "j2", marker), job2)
        shutil.copytree(SEED_JOB / "app", job2 / "server_app")
        _edit_json(job2 / "meta.json", lambda m: (m.__setitem__("deploy_map", {"server_app": ["server"],
                                                                              "app": ["site-1"]}),
                                                  m.__setitem__("min_clients", 1)))
        _edit_json(job2 / "server_app" / "config" / "config_fed_server.json",
                   lambda c: c.__setitem__("min_clients", 1))
        job_id = dep.submit(job2)
        record = dep.wait_state(job_id, ("finished", "failed"))
        assert record["state"] == "failed"
        assert ("site-1 refused it: this site does not run custom code: app 'app' holds custom code "
                "(1 file(s) in custom/: my_learner.py), and site 'site-1' does not run custom code") \
            in record["error"]
        assert "allow_custom_code" in record["error"]
        assert str(dep.root) not in record["error"]  # no path of the site's machine
        assert not marker.exists()
    finally:
        dep.stop()
