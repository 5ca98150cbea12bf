"""FLARE's WandBReceiver: each site's records in a Weights & Biases run (offline), read back
from the run files W&B writes."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from harness.wandb_files import runs

from flconfig.runtime.context import SiteContext
from flconfig.tracking.receivers.wandb import WandBReceiver
from flconfig.tracking.records import SCALAR, SCALARS, TEXT


def record(kind: str, tag: str, value: object, step: int) -> dict:
    return {"event_type": "fed.analytix_log_stats", "kind": kind, "tag": tag, "value": value, "step": step,
            "wall_time": 1.0}


def test_every_record_of_every_site_is_in_its_run_even_when_steps_go_back(tmp_path: Path,
                                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("WANDB_SILENT", "true")
    ctx = SiteContext("server", "0a1b2c3d-job", tmp_path, {}, [], role="server")
    receiver = WandBReceiver(wandb_args={"project": "p", "name": "hello-pt", "job_type": "train-validate",
                                         "config": {"optimizer": "SGD"}}, mode="offline")
    receiver.initialize(ctx)
    for step in range(3):
        receiver.save(record(SCALAR, "train_loss", 1.0 / (step + 1), 10 * step), "site-1")
        receiver.save(record(SCALAR, "val_acc", 0.5 + step / 10, step), "site-1")  # a smaller step than the loss's
    receiver.save(record(SCALARS, "lr", {"head": 0.1, "body": 0.01}, 0), "site-2")
    receiver.save(record(TEXT, "note", "round 0", 0), "site-2")
    receiver.finalize(ctx)

    found = runs(tmp_path / "server" / "0a1b2c3d-job")
    assert sorted(found) == ["site-1-0a1b2c-hello-pt", "site-2-0a1b2c-hello-pt"]
    site1 = found["site-1-0a1b2c-hello-pt"]
    assert site1["group"] == "hello-pt-0a1b2c"
    assert site1["config"]["optimizer"] == "SGD" and site1["config"]["client"] == "site-1"
    loss = [(h["train_loss/step"], h["train_loss"]) for h in site1["history"] if "train_loss" in h]
    assert loss == [(0, 1.0), (10, 0.5), (20, pytest.approx(1 / 3))]
    acc = [(h["val_acc/step"], h["val_acc"]) for h in site1["history"] if "val_acc" in h]
    assert acc == [(0, 0.5), (1, 0.6), (2, 0.7)]  # none dropped though steps went back
    site2 = found["site-2-0a1b2c-hello-pt"]["history"]
    assert any(h.get("lr/head") == 0.1 for h in site2) and any(h.get("lr/body") == 0.01 for h in site2)
    [text] = [h for h in site2 if h.get("note/_type") == "html-file"]
    [html] = (tmp_path / "server" / "0a1b2c3d-job").rglob(Path(text["note/path"]).name)
    assert "round 0" in html.read_text()


def test_flares_wandb_example_config_validates(tmp_path: Path) -> None:
    from harness.numpy_job import write_job

    from flconfig.validate.loader import inspect_job

    job = write_job(tmp_path)
    server_file = job / "app" / "config" / "config_fed_server.json"
    server = json.loads(server_file.read_text())
    server["components"].append({"id": "wandb_receiver",
                                 "path": "nvflare.app_opt.tracking.wandb.wandb_receiver.WandBReceiver",
                                 "args": {"mode": "online", "kwargs": {"project": "hello-pt-experiment",
                                                                       "name": "hello-pt", "tags": ["baseline"],
                                                                       "job_type": "train-validate",
                                                                       "config": {"architecture": "CNN"}}}})
    server_file.write_text(json.dumps(server))
    _, problems = inspect_job(job, environ={})
    assert [p.message for p in problems if p.severity == "error"] == []
