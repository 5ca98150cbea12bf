"""Small CNNs for the example job: one for 1×8×8 digits, one for 3×32×32 CIFAR-10.

Neither has normalisation layers or other buffers, so a model's state is just
its parameters and plain FedAvg of the state dicts is exact.
"""

from __future__ import annotations

from itertools import pairwise

import torch
from torch import nn


class DigitsCNN(nn.Module):
    """Two 3×3 conv layers, a 2×2 max-pool and a linear layer for 1×8×8 images.

    Takes pixels in [0, 1]. ``channels`` is the width of the first conv layer
    (the second has twice as many). ``seed``, when given, makes the initial
    weights the same on every run and machine without touching the process's
    global random state (a persistor's ``model: {path, args: {seed: 0}}``).
    """

    def __init__(self, num_classes: int = 10, channels: int = 16, seed: int | None = None) -> None:
        super().__init__()
        with torch.random.fork_rng(devices=[], enabled=seed is not None):
            if seed is not None:
                torch.manual_seed(seed)
            self.features = nn.Sequential(
                nn.Conv2d(1, channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.Conv2d(channels, 2 * channels, kernel_size=3, padding=1),
                nn.ReLU(),
                nn.MaxPool2d(2),
            )
            self.classifier = nn.Sequential(
                nn.Flatten(),
                nn.Linear(2 * channels * 4 * 4, num_classes),
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        # Centred inputs: SGD leaves its initial plateau much sooner than on [0, 1].
        return self.classifier(self.features(x * 2.0 - 1.0))


class CifarCNN(nn.Module):
    """Three conv blocks (3×3 conv, ReLU, 2×2 max-pool) and two linear layers for 3×32×32 images.

    Takes pixels in [0, 1]. ``channels`` is the width of the first block; each
    later block doubles it; ``hidden`` is the width of the first linear layer.
    """

    def __init__(self, num_classes: int = 10, channels: int = 32, hidden: int = 128) -> None:
        super().__init__()
        widths = (3, channels, 2 * channels, 4 * channels)
        blocks: list[nn.Module] = []
        for c_in, c_out in pairwise(widths):
            blocks += [nn.Conv2d(c_in, c_out, kernel_size=3, padding=1), nn.ReLU(), nn.MaxPool2d(2)]
        self.features = nn.Sequential(*blocks)
        self.classifier = nn.Sequential(
            nn.Flatten(),
            nn.Linear(4 * channels * 4 * 4, hidden),
            nn.ReLU(),
            nn.Linear(hidden, num_classes),
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.classifier(self.features(x * 2.0 - 1.0))
