"""The small torch network the ModelLearner jobs train."""

from __future__ import annotations

NET = '''import torch


class Net(torch.nn.Module):
    def __init__(self, features: int = 4):
        super().__init__()
        self.fc = torch.nn.Linear(features, 2)

    def forward(self, x):
        return self.fc(x)
'''
