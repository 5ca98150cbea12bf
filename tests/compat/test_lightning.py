"""FLARE's Client API for PyTorch Lightning (``nvflare.client.lightning``, ``flare.patch``):
a Lightning script as FLARE's examples write it runs unchanged."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from harness import REPO
from harness.launching import launch

from flconfig.validate.loader import inspect_job

ROOT = REPO
EXAMPLE = ROOT / "configs" / "client-api"

LIT_NET = '''
import pytorch_lightning as pl
import torch
from torch import nn


class LitNet(pl.LightningModule):
    """Linear regression on 4 features."""

    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.fc = nn.Linear(4, 1)

    def forward(self, x):
        return self.fc(x)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = nn.functional.mse_loss(self(x), y)
        self.log("train_loss", loss)
        return loss

    def validation_step(self, batch, batch_idx):
        x, y = batch
        self.log("val_acc", -nn.functional.mse_loss(self(x), y))

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=0.1, momentum=0.5)
'''

SCRIPT = '''
import pytorch_lightning as pl
import torch
from lit_net import LitNet
from torch.utils.data import DataLoader, TensorDataset

# (1) import nvflare lightning client API
import nvflare.client.lightning as flare


def data(seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(64, 4, generator=g)
    y = x @ torch.tensor([[1.0], [-2.0], [0.5], [3.0]]) + 0.01 * torch.randn(64, 1, generator=g)
    return DataLoader(TensorDataset(x, y), batch_size=16)


def main():
    model = LitNet()
    trainer = pl.Trainer(max_epochs=1, accelerator="cpu", devices=1, logger=False, enable_checkpointing=False,
                         enable_progress_bar=False, enable_model_summary=False)
    # (2) patch the lightning trainer
    flare.patch(trainer)
    seed = int(flare.get_site_name().rsplit("-", 1)[-1])
    train, valid = data(seed), data(100 + seed)
    while flare.is_running():
        # (3) receives FLModel from NVFlare
        input_model = flare.receive()
        print(f"current_round={input_model.current_round}")
        # (4) evaluate the current global model to allow server-side model selection
        trainer.validate(model, dataloaders=valid)
        # (5) perform local training starting with the received global model
        trainer.fit(model, train_dataloaders=train)


if __name__ == "__main__":
    main()
'''


def lightning_job(tmp_path: Path) -> Path:
    job = tmp_path / "job"
    shutil.copytree(EXAMPLE, job, ignore=shutil.ignore_patterns("__pycache__"))
    custom = job / "app" / "custom"
    (custom / "lit_net.py").write_text(LIT_NET)
    (custom / "train_lit.py").write_text(SCRIPT)
    client = job / "app" / "config" / "config_fed_client.conf"
    client.write_text(client.read_text().replace('app_script = "train.py"', 'app_script = "train_lit.py"')
                      .replace('app_config = "--epochs 2 --batch-size 32"', 'app_config = ""'))
    server = job / "app" / "config" / "config_fed_server.conf"
    server.write_text(server.read_text().replace('model_class_path = "net.Net"', 'model_class_path = "lit_net.LitNet"')
                      .replace('args.key_metric = "accuracy"', 'args.key_metric = "val_acc"'))
    return job


def test_a_lightning_job_validates_clean(tmp_path: Path) -> None:
    _, problems = inspect_job(lightning_job(tmp_path), environ={})
    assert [p.message for p in problems] == []


@pytest.mark.slow
@pytest.mark.timeout(300)
def test_a_lightning_script_trains_federated_with_flare_patch(tmp_path: Path) -> None:
    import torch

    ws = tmp_path / "ws"
    proc = launch(lightning_job(tmp_path), ws, timeout=280)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    run = ws / "server" / "simulate_job"
    final = torch.load(run / "FL_global_model.pt", weights_only=True)["model"]
    # three rounds of federated SGD find the true weights [1, -2, 0.5, 3] closely
    assert torch.allclose(final["fc.weight"], torch.tensor([[1.0, -2.0, 0.5, 3.0]]), atol=0.2)
    assert (run / "best_FL_global_model.pt").is_file()  # IntimeModelSelector got the val_acc of each round
    for site in ("site-1", "site-2"):
        log = (ws / site / "simulate_job" / "log.txt").read_text()
        assert "current_round=2" in log
    assert "round 3/3: results from site-1, site-2" in proc.stdout
