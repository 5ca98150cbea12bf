"""What a client site keeps between tasks (meta ``site_state``, ``flconfig launch
--site-state``): its components for the whole run, or built afresh for each task."""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest
from harness.counting_job import counting_job, runs_of
from harness.launching import launch
from harness.numpy_job import DEFAULT

from flconfig.validate.loader import inspect_job


def global_model(ws: Path) -> np.ndarray:
    return np.load(ws / "server" / "simulate_job" / "models" / "server.npy", allow_pickle=False)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_kept_site_runs_every_task_on_one_learner_and_a_released_one_builds_it_per_task(
        tmp_path: Path) -> None:
    # The job asks for release; the command line's --site-state keep wins over it.
    job = counting_job(tmp_path / "a", "release")
    kept = launch(job, tmp_path / "kept", "-n", "2", "--site-state", "keep", "--quiet-metrics")
    assert kept.returncode == 0, kept.stdout + kept.stderr
    assert "released between tasks" not in kept.stdout
    for site in ("site-1", "site-2"):
        assert runs_of(tmp_path / "kept", site) == [(1, 1), (1, 2), (1, 3)]

    # The job's meta alone: released after each task, built again before the next.
    released = launch(job, tmp_path / "released", "-n", "2", "--quiet-metrics")
    assert released.returncode == 0, released.stdout + released.stderr
    assert "sites released between tasks" in released.stdout
    for site in ("site-1", "site-2"):
        assert runs_of(tmp_path / "released", site) == [(1, 1), (2, 1), (3, 1)]

    # The federation's result does not depend on it: three rounds of +1.
    np.testing.assert_array_equal(global_model(tmp_path / "kept"), DEFAULT + 3)
    np.testing.assert_array_equal(global_model(tmp_path / "released"), DEFAULT + 3)


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_released_site_that_cannot_be_built_again_fails_the_run_naming_it(tmp_path: Path) -> None:
    job = counting_job(tmp_path, "release")
    custom = job / "app" / "custom" / "counting.py"
    custom.write_text(custom.read_text().replace(
        "        CountingTrainer.built += 1\n",
        "        CountingTrainer.built += 1\n"
        "        if CountingTrainer.built == 2:\n"
        "            raise RuntimeError('the licence server is down')\n"))
    done = launch(job, tmp_path / "ws", "-n", "2", "--quiet-metrics")
    assert done.returncode == 1, done.stdout + done.stderr
    last = [line for line in done.stdout.splitlines() if line.startswith("flconfig: job failed")]
    assert len(last) == 1, done.stdout
    assert re.search(r"site-[12]: .*the licence server is down", last[0]), last[0]
    assert "Traceback" not in done.stdout + done.stderr


def test_a_site_state_the_tool_does_not_know_is_reported_at_its_line(tmp_path: Path) -> None:
    job = counting_job(tmp_path, None)
    meta = json.loads((job / "meta.json").read_text())
    (job / "meta.json").write_text(json.dumps({**meta, "site_state": "forget"}, indent=1))
    _, problems = inspect_job(job, environ={})
    found = [p for p in problems if "site_state" in p.message or "forget" in p.message]
    assert found, [p.message for p in problems]
    assert found[0].position.file.endswith("meta.json")
    lines = (job / "meta.json").read_text().splitlines()
    assert found[0].position.line == 1 + next(i for i, line in enumerate(lines) if '"site_state"' in line)
    assert found[0].message == "'site_state' must be one of 'keep' or 'release', not 'forget'"


def test_the_launch_flag_accepts_only_keep_or_release(tmp_path: Path) -> None:
    done = launch(counting_job(tmp_path, None), tmp_path / "ws", "--site-state", "drop")
    assert done.returncode == 2
    assert "--site-state: unknown value 'drop' (choose from keep, release)" in done.stderr
    assert "Traceback" not in done.stderr
