"""A config reads nothing of the machine that parses it, and no message echoes what a
substitution, a variable or an include gave.

A submitted job is checked on the server and the sites with no environment at all;
``flconfig validate`` and ``launch`` pass a config only the variables the user names with
``--env``. Wherever a value came from ``${X}``, ``{$X}``, ``{WORKSPACE}`` or an included
file, ``validate``'s text and JSON reports name the expression and where it is written,
never the value.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from harness import REPO

from flconfig.config.job import VALIDATION_WORKSPACE
from flconfig.validate.loader import inspect_job

EXAMPLE = REPO / "configs" / "tensorboard-streaming"
SECRET = "hunter2-password"

CLIENT_CONF = """\
format_version = 2
executors = [
  {
    tasks = ["train", "submit_model", "validate"]
    executor {
      path = "nvflare.app_common.executors.learner_executor.LearnerExecutor"
      args { learner_id = "pt_learner" }
    }
  }
]
components = [
  {
    id = "pt_learner"
    path = "flconfig.examples.digits.DigitsLearner"
    args {
      dataset = "digits"
      LR_LINE
      analytic_sender_id = "log_writer"
    }
  }
  { id = "log_writer", path = "nvflare.app_opt.tracking.tb.tb_writer.TBWriter",
    args { event_type = "analytix_log_stats" } }
  { id = "event_to_fed", path = "nvflare.app_common.widgets.convert_to_fed_event.ConvertToFedEvent",
    args { events_to_convert = ["analytix_log_stats"], fed_event_prefix = "fed." } }
]
"""


def hocon_job(tmp_path: Path, lr_line: str, extra: dict[str, str] | None = None, top: str = "") -> Path:
    """The example job with its client config in HOCON, the learner's ``lr`` written as
    ``lr_line`` and ``top`` added at the end; ``extra`` files go beside the config."""
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    config = job / "app" / "config"
    (config / "config_fed_client.json").unlink()
    (config / "config_fed_client.conf").write_text(CLIENT_CONF.replace("LR_LINE", lr_line) + top)
    for name, text in (extra or {}).items():
        (config / name).write_text(text)
    return job


def json_job(tmp_path: Path, lr: str) -> Path:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job)
    file = job / "app" / "config" / "config_fed_client.json"
    file.write_text(file.read_text().replace('"lr": 0.05', f'"lr": "{lr}"'))
    return job


def flconfig(*args: str, env: dict[str, str] | None = None, cwd: Path | None = None
             ) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("FLCONFIG_")}
    done = subprocess.run([sys.executable, "-m", "flconfig", *args], capture_output=True, text=True,
                          env={**base, **(env or {})}, cwd=cwd, timeout=120)
    assert "Traceback" not in done.stdout + done.stderr, done.stderr
    return done


def reports(job: Path, *options: str, env: dict[str, str] | None = None) -> tuple[str, dict[str, object]]:
    """validate's text report and its JSON report of ``job``."""
    text = flconfig("validate", *options, str(job), env=env, cwd=job.parent)
    as_json = flconfig("validate", "--format", "json", *options, str(job), env=env, cwd=job.parent)
    assert text.returncode == as_json.returncode == 1, text.stdout
    return text.stdout, json.loads(as_json.stdout)


def the_lr_problem(report: dict[str, object]) -> dict[str, object]:
    found = [p for p in report["problems"] if p["json_path"] == "components[0].args.lr"]  # type: ignore[attr-defined,index]
    assert len(found) == 1, report
    return found[0]  # type: ignore[no-any-return]


def test_a_hocon_substitution_of_an_environment_variable_is_named_never_shown(tmp_path: Path) -> None:
    job = hocon_job(tmp_path, "lr = ${SECRET}")
    text, report = reports(job, "--env", "SECRET", env={"SECRET": SECRET})
    assert SECRET not in text and SECRET not in json.dumps(report)
    problem = the_lr_problem(report)
    assert problem["message"] == "argument 'lr' of DigitsLearner must be a number, got ${SECRET} (a string)"
    assert (problem["file"], problem["line"], problem["column"]) == (
        "job/app/config/config_fed_client.conf", 17, 12)  # where ${SECRET} is written
    assert "config_fed_client.conf:17:12: error: argument 'lr' of DigitsLearner must be a number, " \
           "got ${SECRET} (a string)" in text
    given = flconfig("validate", "--format", "json", "--env", f"SECRET={SECRET}", str(job), cwd=tmp_path)
    assert SECRET not in given.stdout and "${SECRET}" in given.stdout


def test_without_env_a_config_reads_no_environment_and_says_how_to_pass_it(tmp_path: Path) -> None:
    job = hocon_job(tmp_path, "lr = ${SECRET}")
    text, report = reports(job, env={"SECRET": SECRET})  # set here, but not passed
    assert SECRET not in text
    (problem,) = report["problems"]  # type: ignore[misc]
    assert problem["message"] == "${SECRET} is not defined: the config has no key SECRET"
    assert "--env SECRET" in problem["hint"] and problem["line"] == 17


def test_a_flare_environment_variable_is_named_never_shown(tmp_path: Path) -> None:
    job = json_job(tmp_path, "{$SECRET}")
    text, report = reports(job, "--env", "SECRET", env={"SECRET": SECRET})
    assert SECRET not in text and SECRET not in json.dumps(report)
    assert the_lr_problem(report)["message"] == \
        "argument 'lr' of DigitsLearner must be a number, got {$SECRET} (a string)"
    text, report = reports(job, env={"SECRET": SECRET})  # not passed: not read
    assert SECRET not in text
    problem = the_lr_problem(report)
    assert problem["message"] == "undefined variable '$SECRET': no environment variable SECRET was given"
    assert "--env SECRET" in problem["hint"]  # type: ignore[operator]


def test_a_system_variable_that_is_a_path_of_this_machine_is_named_never_shown(tmp_path: Path) -> None:
    job = json_job(tmp_path, "{WORKSPACE}/lr")
    text, report = reports(job)
    assert VALIDATION_WORKSPACE not in text and VALIDATION_WORKSPACE not in json.dumps(report)
    assert the_lr_problem(report)["message"] == \
        "argument 'lr' of DigitsLearner must be a number, got {WORKSPACE}/lr (a string)"


def test_a_value_from_an_included_file_is_named_by_its_include(tmp_path: Path) -> None:
    job = hocon_job(tmp_path, 'include "learner.conf"', {"learner.conf": f'# shared\nlr = "{SECRET}"\n'})
    text, report = reports(job)
    assert SECRET not in text and SECRET not in json.dumps(report)
    problem = the_lr_problem(report)
    assert problem["message"] == ("argument 'lr' of DigitsLearner must be a number, got a value from "
                                  'include "learner.conf" (a string)')
    assert (problem["file"], problem["line"], problem["column"]) == ("job/app/config/learner.conf", 2, 6)


def test_a_submitted_job_is_checked_and_planned_with_no_environment(tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """As the deployed server and sites call them: ``inspect_job(folder)`` and ``plan_run``
    with no environ read nothing of the process's environment, and report no value."""
    from flconfig.runtime.planner import plan_run

    monkeypatch.setenv("SECRET", SECRET)
    monkeypatch.setenv("PYTHONPATH", "/srv/server-only-path")
    job_dir = hocon_job(tmp_path, "lr = ${?SECRET}", top='seen_note = "{$SECRET}"\n')
    _, problems = inspect_job(job_dir, participant="server")
    assert [p.message for p in problems if p.is_error] == [
        "undefined variable '$SECRET': no environment variable SECRET was given"]
    assert SECRET not in "\n".join(map(str, problems))
    job_dir = hocon_job(tmp_path / "ok", "lr = ${?SECRET}", top='seen_path = "{PYTHONPATH}"\n')
    job, problems = inspect_job(job_dir)
    assert job is not None and not [p for p in problems if p.is_error], problems
    data = job.apps["app"].client.doc.data  # type: ignore[union-attr]
    assert "lr" not in data["components"][0]["args"]  # ${?SECRET}: nothing
    assert data["seen_path"] == ""  # PYTHONPATH: the environment's, and there is none
    plan = plan_run(job, ["site-1"], tmp_path / "ws", "job1")
    assert SECRET not in plan.to_json() and "/srv/server-only-path" not in plan.to_json()


def test_env_options_that_cannot_be_honoured_are_one_line(tmp_path: Path) -> None:
    from flconfig.cli.launch_cmd import missing_run_modules

    job = hocon_job(tmp_path, "lr = ${SECRET}")
    for command in ("validate", "launch")[: 1 if missing_run_modules() else 2]:
        unset = flconfig(command, "--env", "NOT_SET_ANYWHERE_XYZ", str(job), cwd=tmp_path)
        assert unset.returncode == 2 and unset.stdout == ""
        assert unset.stderr == (f"flconfig {command}: --env NOT_SET_ANYWHERE_XYZ: NOT_SET_ANYWHERE_XYZ is "
                                "not set in your environment (set it, or give its value: "
                                "--env NOT_SET_ANYWHERE_XYZ=VALUE)\n")
        bad = flconfig(command, "--env", "=x", str(job), cwd=tmp_path)
        assert bad.returncode == 2 and "expected NAME or NAME=VALUE" in bad.stderr


def test_launch_reads_only_the_environment_it_is_given(tmp_path: Path) -> None:
    """An invalid job starts nothing; the launcher reads ${SECRET} only when passed."""
    from flconfig.cli.launch_cmd import missing_run_modules

    if missing_run_modules():
        pytest.skip("launching needs the 'run' extra")
    job = hocon_job(tmp_path, "lr = ${SECRET}")
    refused = flconfig("launch", "-w", str(tmp_path / "ws"), str(job), env={"SECRET": SECRET}, cwd=tmp_path)
    assert refused.returncode == 1 and SECRET not in refused.stdout
    assert "${SECRET} is not defined" in refused.stdout and "--env SECRET" in refused.stdout
    assert "nothing was started" in refused.stdout
    bad_value = flconfig("launch", "-w", str(tmp_path / "ws"), "--env", "SECRET", str(job),
                         env={"SECRET": SECRET}, cwd=tmp_path)
    assert bad_value.returncode == 1 and SECRET not in bad_value.stdout
    assert "got ${SECRET} (a string)" in bad_value.stdout and "nothing was started" in bad_value.stdout
