"""Files a job names by absolute path outside itself are read only where the participant lets it.

A run on the user's own machine reads FLARE's pretrained checkpoints and model folders
where the job's config says; a deployed server or site does not, unless its kit says
``"allow_outside_files": true``: a submitted job cannot read the machine's files.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import numpy as np
import pytest
from harness import REPO

from flconfig.components.numpy_family import NPModelLocator, NPModelPersistor
from flconfig.components.persistors import PTFileModelPersistor
from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext


def server_ctx(tmp_path: Path, outside_files: bool) -> SiteContext:
    return SiteContext("server", "job", tmp_path / "ws", {}, [], role="server", outside_files=outside_files)


def npy(path: Path, value: list[float]) -> Path:
    buffer = io.BytesIO()
    np.save(buffer, np.asarray(value, dtype=np.float32), allow_pickle=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(buffer.getvalue())
    return path


def test_a_model_folder_outside_the_job_is_read_only_where_the_participant_allows_it(tmp_path: Path) -> None:
    pretrained = tmp_path / "server_pretrain_models"
    npy(pretrained / "server_1.npy", [1.0, 2.0])
    locator = NPModelLocator(model_dir=str(pretrained), model_name={"server_model_1": "server_1.npy"})
    allowed = locator.locate_model("server_model_1", server_ctx(tmp_path, outside_files=True))
    assert allowed is not None and allowed.params["numpy_key"].tolist() == [1.0, 2.0]
    with pytest.raises(JobError) as refused:
        locator.locate_model("server_model_1", server_ctx(tmp_path, outside_files=False))
    assert refused.value.message == (
        f"model_dir: {str(pretrained)!r} is a file of this machine outside the job, and this participant does "
        "not let jobs read such files (its operator can allow it with \"allow_outside_files\": true in its kit)")


def test_a_checkpoint_outside_the_job_is_refused_before_it_is_opened(tmp_path: Path) -> None:
    secret = npy(tmp_path / "elsewhere" / "model.npy", [7.0])
    for persistor in (NPModelPersistor(source_ckpt_file_full_name=str(secret)),
                      PTFileModelPersistor(source_ckpt_file_full_name=str(secret))):
        with pytest.raises(JobError, match="source_ckpt_file_full_name: .* outside the job"):
            persistor.load(server_ctx(tmp_path, outside_files=False))
    # on the user's own machine the numpy persistor starts from it
    model = NPModelPersistor(source_ckpt_file_full_name=str(secret)).load(server_ctx(tmp_path, outside_files=True))
    assert model.params["numpy_key"].tolist() == [7.0]


def test_the_participants_choice_travels_in_the_run_plan(tmp_path: Path) -> None:
    from flconfig.runtime.plan import plan_from_json
    from flconfig.runtime.planner import plan_run
    from flconfig.validate.loader import inspect_job

    root = REPO / "configs" / "tensorboard-streaming"
    job, problems = inspect_job(root, environ={})
    assert job is not None, problems
    for allowed in (True, False):
        plan = plan_run(job, [], tmp_path, "job-1", outside_files=allowed)
        back = plan_from_json(plan.to_json())
        assert {c.outside_files for c in back.configs} == {allowed}
    # a plan written without the field (an older flconfig's) reads as not allowed
    data = json.loads(plan_run(job, [], tmp_path, "job-1").to_json())
    for config in data["configs"]:
        del config["outside_files"]
    assert {c.outside_files for c in plan_from_json(json.dumps(data)).configs} == {False}
