"""The seed job's workload, the same under every tool: a LeNet-style CNN trained on
synthetic 32×32 RGB images, 5 local epochs of 16 steps (batch 32) per round.

Plain torch; both jobs' learners call :func:`train_round` and :func:`evaluate`.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

EPOCHS = 5
STEPS_PER_EPOCH = 16
BATCH = 32
LR = 0.01


class LeNet(nn.Module):
    """LeNet-5 for 3×32×32 images: two 5×5 conv + pool blocks, three linear layers."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 6, 5)
        self.conv2 = nn.Conv2d(6, 16, 5)
        self.fc1 = nn.Linear(16 * 5 * 5, 120)
        self.fc2 = nn.Linear(120, 84)
        self.fc3 = nn.Linear(84, 10)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = F.max_pool2d(F.relu(self.conv1(x)), 2)
        x = F.max_pool2d(F.relu(self.conv2(x)), 2)
        x = torch.flatten(x, 1)
        return self.fc3(F.relu(self.fc2(F.relu(self.fc1(x)))))


def site_data(site: str) -> tuple[torch.Tensor, torch.Tensor]:
    """The site's synthetic images and labels (one epoch's worth), fixed per site name."""
    g = torch.Generator().manual_seed(sum(site.encode()))
    n = STEPS_PER_EPOCH * BATCH
    return torch.randn(n, 3, 32, 32, generator=g), torch.randint(0, 10, (n,), generator=g)


def train_round(model: nn.Module, data: tuple[torch.Tensor, torch.Tensor],
                log: object, step0: int) -> tuple[float, int]:
    """Train EPOCHS × STEPS_PER_EPOCH steps; log ``train_loss`` each step with ``log``
    (a SummaryWriter-like ``add_scalar``). Returns (mean loss, steps)."""
    x, y = data
    optimizer = torch.optim.SGD(model.parameters(), lr=LR, momentum=0.9)
    model.train()
    total, step = 0.0, step0
    for _ in range(EPOCHS):
        for i in range(STEPS_PER_EPOCH):
            xb, yb = x[i * BATCH:(i + 1) * BATCH], y[i * BATCH:(i + 1) * BATCH]
            optimizer.zero_grad()
            loss = F.cross_entropy(model(xb), yb)
            loss.backward()
            optimizer.step()
            value = loss.item()
            log.add_scalar("train_loss", value, global_step=step)  # type: ignore[attr-defined]
            total += value
            step += 1
    return total / (step - step0), step - step0
