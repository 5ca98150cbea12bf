"""FLARE's ``Executor``: a site component that runs tasks on Shareables."""

from __future__ import annotations

from abc import ABC, abstractmethod

from .fl_component import FLComponent
from .fl_context import FLContext
from .shareable import Shareable
from .signal import Signal


class Executor(FLComponent, ABC):
    """A FLARE executor, driven by flconfig's site: each task arrives as a Shareable
    (a DXO of the task data, FLARE's headers ``current_round``, ``num_rounds`` ...) with an
    FLContext whose peer context holds the server's public properties; the Shareable it
    returns is the task's result (a DXO of weights, a weight difference or metrics, or a
    reply with only a return code)."""

    @abstractmethod
    def execute(self, task_name: str, shareable: Shareable, fl_ctx: FLContext,
                abort_signal: Signal) -> Shareable:
        """Run task ``task_name`` on ``shareable``; ``abort_signal.triggered`` when to stop."""
