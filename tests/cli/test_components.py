"""``flconfig components``: what a config may name, each component's arguments from the
argument schemas validation checks against, the job's own classes with --job."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from harness import REPO

from flconfig.registry.registry import Registry


def flconfig(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "flconfig", "components", *args], capture_output=True,
                          text=True, timeout=120, cwd=REPO)


def test_the_listing_groups_components_by_kind_with_their_first_sentence() -> None:
    done = flconfig()
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    workflows = lines[lines.index("workflow:") + 1:]
    assert any(line.split()[0] == "ScatterAndGather" and "Each round, sends the global model" in line
               for line in workflows[:20])
    assert "``" not in done.stdout and ":class:" not in done.stdout  # docstring markup is removed
    count = int(lines[-1].split()[0].lstrip("("))
    assert count == len(Registry.create(environ={}).components())


def test_one_component_by_name_or_flare_path_shows_its_arguments() -> None:
    by_name = flconfig("ScatterAndGather")
    by_flare = flconfig("nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather")
    assert by_name.returncode == 0 and by_name.stdout == by_flare.stdout
    text = by_name.stdout
    assert text.startswith("ScatterAndGather (workflow, built in)\n"
                           "  path:  flconfig.components.scatter_and_gather.ScatterAndGather\n"
                           "  FLARE: nvflare.app_common.workflows.scatter_and_gather.ScatterAndGather\n")
    assert "    num_rounds: int = 5\n        rounds to run.\n" in text
    assert '    aggregator_id: str = "aggregator"  (the id of an aggregator)\n' in text
    learner = flconfig("LearnerExecutor").stdout
    assert "    learner_id: str (required)  (the id of a learner)\n" in learner


def test_json_gives_every_argument_validation_knows() -> None:
    done = flconfig("--format", "json", "--kind", "receiver")
    assert done.returncode == 0
    entries = json.loads(done.stdout)
    assert entries and {e["kind"] for e in entries} == {"receiver"}
    registry = Registry.create(environ={})
    for entry in entries:
        schema = registry.resolve("path", entry["path"]).args_schema
        assert [a["name"] for a in entry["arguments"]] == list(schema.get("properties", {})), entry["name"]
    tb = next(e for e in entries if e["name"] == "TBAnalyticsReceiver")
    assert "nvflare.app_opt.tracking.tb.tb_receiver.TBAnalyticsReceiver" in tb["flare_paths"]
    folder = next(a for a in tb["arguments"] if a["name"] == "tb_folder")
    assert (folder["type"], folder["required"], folder["default"]) == ("str", False, "tb_events")


def test_with_a_job_its_own_classes_are_listed(tmp_path: Path) -> None:
    done = flconfig("--job", str(REPO / "configs" / "client-api"), "--kind", "model")
    assert done.returncode == 0, done.stderr
    assert any(line.split()[:2] == ["Net", "[custom]"] for line in done.stdout.splitlines()), done.stdout
    described = flconfig("--job", str(REPO / "configs" / "client-api"), "Net")
    assert described.stdout.startswith("Net (model, the job's custom/)\n  path:  net.Net\n")
    assert "Net" not in flconfig("--kind", "model").stdout.split()  # not without the job


def test_a_name_or_kind_that_is_not_there_is_one_line() -> None:
    done = flconfig("ScaterAndGather")
    assert (done.returncode, done.stdout) == (2, "")
    assert done.stderr == "flconfig components: no component 'ScaterAndGather': did you mean ScatterAndGather?\n"
    done = flconfig("--kind", "workflows")
    assert done.returncode == 2 and done.stderr.startswith(
        "flconfig components: no component is of kind 'workflows': the kinds are aggregator, ")
    done = flconfig("--job", "no/such/job")
    assert (done.returncode, done.stderr) == (2, "flconfig components: no/such/job: no such job folder\n")


def test_the_jobs_odd_classes_are_described_and_its_broken_modules_named(tmp_path: Path) -> None:
    job = tmp_path / "job"
    subprocess.run([sys.executable, "-m", "flconfig", "init", str(job), "--template", "client-api"], check=True,
                   capture_output=True, timeout=120)
    (job / "app" / "custom" / "broken.py").write_text("class X(:\n")
    (job / "app" / "custom" / "odd.py").write_text(
        "from nvflare.apis.executor import Executor\n\n\nclass Odd(Executor):\n"
        "    def __init__(self, tags={1}, raw=b'x'):\n        super().__init__()\n")
    done = flconfig("--job", str(job), "Odd")
    assert done.returncode == 0, done.stderr
    assert '    tags = "{1}"\n    raw = "b\'x\'"\n' in done.stdout  # what JSON cannot hold, as Python writes it
    assert done.stderr == ("flconfig components: note: app/custom/broken.py syntax error at line 1: invalid "
                           "syntax: its classes are not listed\n")
    assert json.loads(flconfig("--job", str(job), "Odd", "--format", "json").stdout)[0]["arguments"][0][
        "default"] == "{1}"
