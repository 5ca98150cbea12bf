"""FLARE's ``PTScaffoldHelper``: the client side of SCAFFOLD (Karimireddy et al., 2020).

A learner keeps a local control term ``c_local`` per trainable parameter; the server sends
the global one ``c_global`` with each round (``meta["scaffold_c_global"]``). After each
optimizer step the parameters are corrected by ``-lr * (c_global - c_local)``; after the
round ``c_local`` becomes ``c_local - c_global + (w_global - w_local) / (steps * lr)`` and
the change of ``c_local`` goes back in ``meta["scaffold_c_diff"]``.
"""

from __future__ import annotations

from typing import Any

import torch


def get_lr_values(optimizer: Any) -> list[float]:
    """The learning rate of each of ``optimizer``'s parameter groups."""
    return [group["lr"] for group in optimizer.state_dict()["param_groups"]]


class _Controls:
    """Control terms by parameter name, with a state dict's interface."""

    def __init__(self, values: dict[str, torch.Tensor]) -> None:
        self._values = values

    def state_dict(self) -> dict[str, torch.Tensor]:
        return dict(self._values)

    def load_state_dict(self, values: dict[str, Any]) -> None:
        self._values = {k: torch.as_tensor(v).detach().cpu().clone() for k, v in values.items()}


class PTScaffoldHelper:
    """SCAFFOLD's control terms for one site's model (see the module)."""

    def __init__(self) -> None:
        self.cnt = 0
        self.c_global: _Controls | None = None
        self.c_local: _Controls | None = None
        self.c_delta_para: dict[str, Any] | None = None
        self.device: Any = None

    def init(self, model: torch.nn.Module) -> None:
        """Zero control terms for ``model``'s trainable parameters."""
        params = {k: p for k, p in model.named_parameters() if p.requires_grad}
        if not params:
            raise RuntimeError("PTScaffoldHelper requires a model with parameters.")
        self.c_global = _Controls({k: torch.zeros_like(p.detach(), device="cpu") for k, p in params.items()})
        self.c_local = _Controls({k: torch.zeros_like(p.detach(), device="cpu") for k, p in params.items()})
        self.device = next(iter(params.values())).device

    def _controls(self) -> tuple[_Controls, _Controls]:
        if self.c_global is None or self.c_local is None:
            raise RuntimeError("PTScaffoldHelper.init(model) was not called")
        return self.c_global, self.c_local

    def get_params(self) -> tuple[dict[str, torch.Tensor], dict[str, torch.Tensor]]:
        """(c_global, c_local) on the model's device, for this round; the step count restarts."""
        self.cnt = 0
        self.c_delta_para = None
        c_global, c_local = self._controls()
        return ({k: v.to(self.device) for k, v in c_global.state_dict().items()},
                {k: v.to(self.device) for k, v in c_local.state_dict().items()})

    def model_update(self, model: torch.nn.Module, curr_lr: float, c_global_para: dict[str, torch.Tensor],
                     c_local_para: dict[str, torch.Tensor]) -> None:
        """Correct ``model`` after an optimizer step: ``w -= lr * (c_global - c_local)``."""
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name in c_global_para:
                    param.sub_(curr_lr * (c_global_para[name] - c_local_para[name]).to(param.dtype))
        self.cnt += 1

    def terms_update(self, model: torch.nn.Module, curr_lr: float, c_global_para: dict[str, torch.Tensor],
                     c_local_para: dict[str, torch.Tensor], model_global: torch.nn.Module) -> None:
        """The round's new local control terms, and their change (:meth:`get_delta_controls`)."""
        if self.cnt == 0 or curr_lr == 0:
            raise RuntimeError("SCAFFOLD terms need at least one step with a non-zero learning rate")
        global_params = dict(model_global.named_parameters())
        new_local, delta = {}, {}
        with torch.no_grad():
            for name, param in model.named_parameters():
                if name not in c_local_para:
                    continue
                change = (global_params[name].detach() - param.detach()) / (self.cnt * curr_lr)
                updated = c_local_para[name] - c_global_para[name] + change
                new_local[name] = updated.detach().cpu().clone()
                delta[name] = (updated - c_local_para[name]).detach().cpu().numpy()
        _, c_local = self._controls()
        c_local.load_state_dict(new_local)
        self.c_delta_para = delta

    def load_global_controls(self, weights: dict[str, Any]) -> None:
        """The server's control terms (arrays or tensors by parameter name)."""
        c_global, _ = self._controls()
        c_global.load_state_dict(weights)

    def get_delta_controls(self) -> dict[str, Any]:
        """The change of the local control terms in the last round (numpy arrays)."""
        if self.c_delta_para is None:
            raise ValueError("c_delta_para hasn't been computed yet!")
        return self.c_delta_para
