"""``flconfig validate`` as a user runs it: exit codes, text and JSON output, no traceback."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from harness import REPO
from harness.flare_pt import write_pt_modules

CORPUS = REPO / "tests" / "corpus"
JSON_JOB = "configs/tensorboard-streaming"
YAML_JOB = "configs/tensorboard-streaming-yaml"
FLARE_JOB = REPO.parent / "shared" / "flare-jobs" / "tensorboard-streaming"
needs_flare_job = pytest.mark.skipif(not FLARE_JOB.is_dir(), reason="FLARE's example job is not present")

BROKEN = "tests/corpus/dangling-id"
BROKEN_LINE = (
    "tests/corpus/dangling-id/app/config/config_fed_client.json:11:25: error: "
    "component 'Executor' (LearnerExecutor): 'learner_id' names 'pt_lerner', but no component "
    "has that id [executors[0].executor.args.learner_id]"
)
BROKEN_HINT = "    hint: did you mean 'pt_learner'?"


def flconfig(*args: str, env: dict[str, str] | None = None,
             cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    """Run ``python -m flconfig ARGS``; a traceback on stderr fails the test whatever it checks."""
    base = {k: v for k, v in os.environ.items() if k not in ("FLCONFIG_ALLOW_MODULES", "PYTHONPATH")}
    done = subprocess.run([sys.executable, "-m", "flconfig", *args], cwd=cwd, capture_output=True,
                          text=True, env={**base, **(env or {})}, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    assert "Traceback" not in done.stdout, done.stdout
    return done


# --- exit 0 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("job", [JSON_JOB, YAML_JOB])
def test_the_example_jobs_are_valid(job: str) -> None:
    done = flconfig("validate", job)
    assert done.returncode == 0, done.stdout
    assert done.stdout == "1 job checked: no problems found\n"


def test_several_paths_in_one_run() -> None:
    done = flconfig("validate", JSON_JOB, YAML_JOB)
    assert done.returncode == 0, done.stdout
    assert done.stdout.splitlines()[-1] == "2 jobs checked: no problems found"


@pytest.mark.parametrize("path", [
    f"{JSON_JOB}/app",
    f"{YAML_JOB}/app",
    f"{JSON_JOB}/app/config/config_fed_client.json",
    f"{JSON_JOB}/app/config/config_fed_server.json",
    f"{YAML_JOB}/app/config/config_fed_server.yaml",
])
def test_an_app_folder_or_a_single_config_file_validates_alone(path: str) -> None:
    done = flconfig("validate", path)
    assert done.returncode == 0, done.stdout
    assert done.stdout == "1 job checked: no problems found\n"


def test_a_single_broken_file_is_reported_in_that_file() -> None:
    path = "tests/corpus/wrong-arg-type/app/config/config_fed_client.json"
    done = flconfig("validate", path)
    assert done.returncode == 1
    assert done.stdout.startswith(f"{path}:25:19: error: argument 'epochs' of DigitsLearner must be "
                                  "an integer, got '5' (a string) [components[0].args.epochs]\n"
                                  "    hint: write it without quotes: 5\n")


# --- exit 1 ---------------------------------------------------------------------------------


def test_a_broken_job_prints_the_position_the_path_and_a_hint() -> None:
    done = flconfig("validate", BROKEN)
    assert done.returncode == 1
    assert done.stdout.splitlines() == [BROKEN_LINE, BROKEN_HINT, "1 job checked: 1 error"]
    assert done.stderr == ""


def test_warnings_alone_exit_0_unless_strict() -> None:
    case = "tests/corpus/meta-workflow-min-clients-disagree"
    done = flconfig("validate", case)
    assert done.returncode == 0
    assert ": warning: " in done.stdout
    assert done.stdout.splitlines()[-1] == "1 job checked: 1 warning"
    assert flconfig("validate", "--strict", case).returncode == 1


def test_json_output_holds_the_same_problems() -> None:
    from flconfig.validate.loader import inspect_job

    done = flconfig("validate", "--format", "json", BROKEN, YAML_JOB)
    assert done.returncode == 1
    report = json.loads(done.stdout)
    assert report["valid"] is False
    assert (report["checked"], report["errors"], report["warnings"]) == (2, 1, 0)
    _, problems = inspect_job(REPO / BROKEN)
    expected = [p.to_dict() for p in problems]
    for entry in expected:  # the CLI ran from REPO: its paths are relative to it
        entry["file"] = os.path.relpath(str(entry["file"]), REPO)
    assert report["problems"] == expected
    assert report["problems"][0] == {
        "file": "tests/corpus/dangling-id/app/config/config_fed_client.json",
        "line": 11, "column": 25, "severity": "error", "code": "dangling-ref",
        "message": "component 'Executor' (LearnerExecutor): 'learner_id' names 'pt_lerner', "
                   "but no component has that id",
        "json_path": "executors[0].executor.args.learner_id",
        "hint": "did you mean 'pt_learner'?",
    }


def test_json_output_of_a_valid_job() -> None:
    done = flconfig("validate", "--format", "json", JSON_JOB)
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"valid": True, "checked": 1, "errors": 0, "warnings": 0,
                                       "problems": []}


def test_a_nonexistent_path_is_a_problem_not_a_crash() -> None:
    # Decided: a missing path is a problem of that path (exit 1, code "io"), so a CI run
    # over several jobs still reports the others.
    done = flconfig("validate", "no/such/job", JSON_JOB)
    assert done.returncode == 1
    assert done.stdout.splitlines() == ["no/such/job: error: no such file or folder",
                                        "2 jobs checked: 1 error"]
    report = json.loads(flconfig("validate", "--format", "json", "no/such/job").stdout)
    assert [(p["file"], p["code"], p["line"]) for p in report["problems"]] == [("no/such/job", "io", 0)]


def test_every_corpus_case_runs_without_a_traceback() -> None:
    cases = sorted(str(p.relative_to(REPO)) for p in CORPUS.iterdir() if p.is_dir())
    done = flconfig("validate", *cases)
    assert done.returncode == 1
    assert done.stdout.splitlines()[-1].startswith(f"{len(cases)} jobs checked: ")
    done = flconfig("validate", "--format", "json", *cases)
    assert json.loads(done.stdout)["checked"] == len(cases)


# --- exit 2 ---------------------------------------------------------------------------------


@pytest.mark.parametrize("args, message", [
    ((), "usage: flconfig"),
    (("validate",), "the following arguments are required: PATH"),
    (("validate", "--bogus", JSON_JOB), "unrecognized arguments: --bogus"),
    (("validate", "--format", "xml", JSON_JOB), "argument --format: unknown value 'xml' (choose from text, json)"),
    (("validate", "--allow-module", "not a module", JSON_JOB), "'not a module' is not a module name"),
    (("validate", "--python-path", "no/such/dir", JSON_JOB), "--python-path no/such/dir: no such folder"),
])
def test_usage_errors_exit_2(args: tuple[str, ...], message: str) -> None:
    done = flconfig(*args)
    assert done.returncode == 2
    assert message in done.stderr
    assert done.stdout == ""


def test_a_bad_allow_modules_variable_is_a_usage_error() -> None:
    done = flconfig("validate", JSON_JOB, env={"FLCONFIG_ALLOW_MODULES": "pt/../x"})
    assert done.returncode == 2
    assert "'pt/../x' is not a module name" in done.stderr
    assert "FLCONFIG_ALLOW_MODULES" in done.stderr


# --- allowing modules -----------------------------------------------------------------------

# FLARE's own modules for the job's two paths, as a user would have them on PYTHONPATH.
@pytest.fixture
def pt_path(tmp_path: Path) -> str:
    return str(write_pt_modules(tmp_path / "pypath"))


@needs_flare_job
def test_flare_job_without_allowed_modules_reports_exactly_the_two_pt_paths(pt_path: str) -> None:
    done = flconfig("validate", "--format", "json", str(FLARE_JOB), env={"PYTHONPATH": pt_path})
    assert done.returncode == 1
    problems = json.loads(done.stdout)["problems"]
    assert [(Path(p["file"]).name, p["line"], p["column"], p["code"], p["json_path"]) for p in problems] == [
        ("config_fed_client.json", 27, 15, "path-not-allowed", "components[0].path"),
        ("config_fed_server.json", 15, 19, "path-not-allowed", "components[0].args.model.path"),
    ]
    assert "'pt.learner_with_tb.PTLearner' is not an allowed component path" in problems[0]["message"]
    assert "--allow-module pt" in problems[0]["hint"]
    assert "'pt.simple_network.SimpleNetwork'" in problems[1]["message"]


@needs_flare_job
def test_allow_module_accepts_the_flare_jobs_pt_paths(pt_path: str) -> None:
    done = flconfig("validate", "--allow-module", "pt", str(FLARE_JOB), env={"PYTHONPATH": pt_path})
    assert done.returncode == 0, done.stdout
    assert done.stdout == "1 job checked: no problems found\n"


@needs_flare_job
def test_python_path_finds_and_allows_the_flare_jobs_pt_modules(pt_path: str) -> None:
    done = flconfig("validate", "--python-path", pt_path, str(FLARE_JOB))  # no PYTHONPATH needed
    assert done.returncode == 0, done.stdout
    assert done.stdout == "1 job checked: no problems found\n"


@needs_flare_job
def test_the_allow_modules_variable_does_the_same(pt_path: str) -> None:
    env = {"PYTHONPATH": pt_path, "FLCONFIG_ALLOW_MODULES": "pt"}
    done = flconfig("validate", str(FLARE_JOB), env=env)
    assert done.returncode == 0, done.stdout
    assert done.stdout == "1 job checked: no problems found\n"


@needs_flare_job
def test_an_allowed_module_that_is_not_installed_is_named(pt_path: str) -> None:
    done = flconfig("validate", "--allow-module", "pt", str(FLARE_JOB))  # no PYTHONPATH
    assert done.returncode == 1
    assert "module 'pt.learner_with_tb' was not found" in done.stdout
    assert "module 'pt.simple_network' was not found" in done.stdout


# --- what validate imports ------------------------------------------------------------------


def test_validate_imports_no_torch_tensorboard_or_grpc() -> None:
    # Nor rich (the launch's live view), nor the parts of flconfig that run jobs: the
    # launcher, the runtime, distributed mode, FLARE's API for job code (what `validate`
    # would load and never use).
    script = textwrap.dedent(f"""
        import json, sys
        from flconfig.cli import main
        codes = [main(["validate", {JSON_JOB!r}, {YAML_JOB!r}]),
                 main(["validate", "--format", "json", {BROKEN!r}])]
        heavy = sorted(m for m in sys.modules
                       if m.split(".")[0] in ("torch", "tensorboard", "grpc", "ray", "rich")
                       or m.split(".")[:2] in (["flconfig", "launch"], ["flconfig", "runtime"],
                                               ["flconfig", "deploy"], ["flconfig", "compat"]))
        print(json.dumps({{"codes": codes, "heavy": heavy}}))
    """)
    env = {k: v for k, v in os.environ.items() if k != "FLCONFIG_ALLOW_MODULES"}
    done = subprocess.run([sys.executable, "-c", script], cwd=REPO, capture_output=True, text=True,
                          env=env, timeout=60)
    assert "Traceback" not in done.stderr, done.stderr
    result = json.loads(done.stdout.splitlines()[-1])
    assert result == {"codes": [0, 1], "heavy": []}


def test_an_undefined_variable_is_an_error_unless_kept_as_flare_keeps_it(tmp_path: Path) -> None:
    import shutil

    job = tmp_path / "job"
    shutil.copytree(REPO / "configs" / "tensorboard-streaming", job)
    server = job / "app" / "config" / "config_fed_server.json"
    data = json.loads(server.read_text())
    data["components"][0]["args"]["source_ckpt_file_full_name"] = "{MODEL_DIR}/start.pt"
    server.write_text(json.dumps(data, indent=2))
    strict = flconfig("validate", str(job))
    assert strict.returncode == 1 and "error: undefined variable 'MODEL_DIR'" in strict.stdout
    kept = flconfig("validate", "--keep-undefined", str(job))
    assert kept.returncode == 0, kept.stdout
    assert "warning: undefined variable 'MODEL_DIR'; left as written (FLCONFIG_KEEP_UNDEFINED)" in kept.stdout
    by_env = flconfig("validate", str(job), env={**os.environ, "FLCONFIG_KEEP_UNDEFINED": "1"})
    assert by_env.returncode == 0 and "left as written" in by_env.stdout
