"""FLARE's ``nvflare.app_opt.pt.recipes.fedprox``: FedAvg with FedProx's proximal term."""

from __future__ import annotations

from typing import Any

from .fedavg import FedAvgRecipe


class FedProxRecipe(FedAvgRecipe):
    """PyTorch FedAvgRecipe whose ``FedAvg`` puts ``fedprox_mu`` in every task's meta (the
    script's loss uses it, e.g. with ``PTFedProxLoss``)."""

    def __init__(self, *, name: str = "fedprox", fedprox_mu: float = 0.01, **kwargs: Any) -> None:
        self.fedprox_mu = fedprox_mu
        super().__init__(name=name, **kwargs)

    def extra_fedavg_args(self) -> dict[str, Any]:
        return {"fedprox_mu": self.fedprox_mu}
