"""FLARE's ``PTFedProxLoss``: FedProx's proximal term, ``mu / 2 * ||w - w_global||^2``."""

from __future__ import annotations

import torch
from torch.nn.modules.loss import _Loss


class PTFedProxLoss(_Loss):
    """The proximal term between a model being trained (``input``) and the global model it
    started from (``target``), summed over their parameters in order.

    Args:
        mu: the term's weight; 0 turns it off. Must not be negative.
    """

    def __init__(self, mu: float = 0.01) -> None:
        super().__init__()
        if mu < 0.0:
            raise ValueError(f"mu must not be negative, got {mu}")
        self.mu = mu

    def forward(self, input: torch.nn.Module, target: torch.nn.Module) -> torch.Tensor:  # noqa: A002 - FLARE's names
        total = torch.zeros(())
        for (_, param), (_, ref) in zip(input.named_parameters(), target.named_parameters(), strict=True):
            total = total.to(param.device) + (self.mu / 2) * torch.sum((param - ref) ** 2)
        return total
