"""FLARE's ModelQuantizer and ModelDequantizer (float16), as FLARE's quantized-result job uses them."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from harness.launching import launch
from harness.numpy_job import DEFAULT, write_job

from flconfig.components.quantization import ModelDequantizer, ModelQuantizer
from flconfig.errors import JobError
from flconfig.runtime.context import SiteContext
from flconfig.types import FLModel
from flconfig.validate.loader import inspect_job

Q = "nvflare.app_opt.pt.quantization"


def ctx(tmp_path: Path) -> SiteContext:
    return SiteContext("site-1", "job1", tmp_path, {}, [])


def test_float32_goes_as_float16_with_flares_meta_and_comes_back(tmp_path: Path) -> None:
    model = FLModel(params={"w": np.array([1.0, 70000.0, -1e-8], dtype=np.float32),
                            "t": torch.tensor([0.5, 2.0]), "h": np.ones(2, dtype=np.float16)},
                    meta={"NUM_STEPS_CURRENT_ROUND": 3})
    sent = ModelQuantizer().process(model, ctx(tmp_path))
    assert sent.params["w"].dtype == np.float16 and sent.params["t"].dtype == torch.float16
    assert sent.params["w"][1] == np.finfo(np.float16).max  # clipped to float16's range
    assert sent.meta["PROCESSED_ALGORITHM"] == "float16" and sent.meta["quantized_flag"] is True
    assert sent.meta["source_datatype"] == {"w": "float32", "t": "float32", "h": "float16"}
    assert set(sent.meta["quant_state"]) == {"w", "t", "h"}
    assert ModelQuantizer().process(sent, ctx(tmp_path)) is sent  # not quantized twice
    back = ModelDequantizer().process(sent, ctx(tmp_path))
    assert back.params["w"].dtype == np.float32 and back.params["t"].dtype == torch.float32
    assert back.params["h"].dtype == np.float16
    assert back.meta == {"NUM_STEPS_CURRENT_ROUND": 3}
    np.testing.assert_allclose(back.params["t"].numpy(), [0.5, 2.0])
    plain = FLModel(params={"w": np.ones(1)})
    assert ModelDequantizer().process(plain, ctx(tmp_path)) is plain


def test_other_dtypes_and_formats_are_refused(tmp_path: Path) -> None:
    with pytest.raises(JobError, match="'n' is int64"):
        ModelQuantizer().process(FLModel(params={"n": np.arange(3)}), ctx(tmp_path))
    with pytest.raises(ValueError, match="not supported yet"):
        ModelQuantizer("blockwise8")


def quantized_job(tmp_path: Path, quantization_type: str = "float16") -> Path:
    job = write_job(tmp_path)
    client_file = job / "app" / "config" / "config_fed_client.json"
    client = json.loads(client_file.read_text())
    client["task_result_filters"] = [{"tasks": ["train"], "filters": [
        {"path": f"{Q}.quantizer.ModelQuantizer", "args": {"quantization_type": quantization_type}}]}]
    client_file.write_text(json.dumps(client))
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["task_result_filters"] = [{"tasks": ["train"], "filters": [
        {"path": f"{Q}.dequantizer.ModelDequantizer", "args": {}}]}]
    server["workflows"] = server["workflows"][:1]
    server_file.write_text(json.dumps(server))
    return job


def test_an_unsupported_quantization_type_is_said_at_its_line(tmp_path: Path) -> None:
    _, problems = inspect_job(quantized_job(tmp_path, "normfloat4"), environ={})
    errors = [p for p in problems if p.severity == "error"]
    assert len(errors) == 1 and "not supported yet" in errors[0].message
    assert "config_fed_client.json" in str(errors[0].position)


@pytest.mark.slow
@pytest.mark.timeout(240)
def test_results_go_quantized_and_the_server_aggregates_them_dequantized(tmp_path: Path) -> None:
    job = quantized_job(tmp_path)
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems] == []
    ws = tmp_path / "ws"
    proc = launch(job, ws)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    saved = np.load(ws / "server" / "simulate_job" / "models" / "server.npy")
    assert saved.dtype == np.float32
    np.testing.assert_array_equal(saved, DEFAULT + 3)  # small integers are exact in float16
    log = (ws / "site-1" / "simulate_job" / "log.txt").read_text()
    assert "ModelQuantizer: 36 bytes of float32 parameters sent as 18 bytes of float16" in log
