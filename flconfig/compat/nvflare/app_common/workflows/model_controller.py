"""FLARE's ``ModelController``: the base of a workflow the job writes as ``run()``."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any

from ..abstract.fl_model import FLModel
from .base_model_controller import BaseModelController


class ModelController(BaseModelController, ABC):
    """FLARE's Model Controller API: write ``run()`` with ``send_model_and_wait``,
    ``load_model``, ``save_model`` and ``sample_clients``."""

    def __init__(self, *args: Any, persistor_id: str = "persistor", **kwargs: Any) -> None:
        """
        Args:
            persistor_id: id of the persistor component ("" for none).
        """
        super().__init__(persistor_id, *args, **kwargs)

    @abstractmethod
    def run(self) -> None:
        """The workflow."""

    def send_model_and_wait(self, task_name: str = "train", data: FLModel | None = None,
                            targets: list[str] | None = None, min_responses: int | None = None,
                            timeout: int = 0) -> list[FLModel]:
        """Send a task with ``data`` to ``targets`` (all sites for None); the results of
        ``min_responses`` of them (all for None)."""
        return self.broadcast_model(task_name=task_name, data=data, targets=targets,
                                    min_responses=min_responses, timeout=timeout)

    def send_model(self, task_name: str = "train", data: FLModel | None = None,
                   targets: list[str] | None = None, min_responses: int | None = None,
                   timeout: int = 0, callback: Callable[[FLModel], None] | None = None) -> None:
        """As :meth:`send_model_and_wait`, with ``callback`` called on each result."""
        self.broadcast_model(task_name=task_name, data=data, targets=targets, min_responses=min_responses,
                             timeout=timeout, blocking=False, callback=callback)
