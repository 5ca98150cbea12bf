"""DecomposerRegister and the tensor streamers: FLARE's serialization widgets, accepted.

FLARE serializes messages with FOBS, to which a job registers "decomposers" for its own
types (``DecomposerRegister``), and streams large PyTorch models tensor by tensor with
``TensorServerStreamer``/``TensorClientStreamer`` (``nvflare.app_opt.tensor_stream``).
flconfig needs neither: its wire carries models as safetensors arrays and plain JSON values
(never pickled, never decomposed), and it already sends large models in chunks, with
back-pressure, whatever their framework. So these classes are accepted with FLARE's
arguments and do nothing: a FLARE job that names them validates and runs unchanged.

Standard library only at import time (the registry reads this file).
"""

from __future__ import annotations

from typing import Any, ClassVar

from .base import Widget


class DecomposerRegister(Widget):
    """Accepted, nothing to do: flconfig has no FOBS, so no decomposers to register.

    Values flconfig sends are arrays (numpy, torch) and plain JSON values; a job whose
    results hold other objects is told so when it sends them.
    """

    def __init__(self, classes: list[str]) -> None:
        """
        Args:
            classes: the decomposer classes FLARE would register (accepted).
        """
        self.classes = classes


class TensorServerStreamer(Widget):
    """Accepted: flconfig's transport already streams large models in chunks (server side)."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "tensor_send_timeout": {"exclusiveMinimum": 0},
        "wait_send_task_data_all_clients_timeout": {"exclusiveMinimum": 0},
    }

    def __init__(self, format: str = "pytorch", tasks: list[str] | None = None, tensor_send_timeout: float = 30.0,
                 wait_send_task_data_all_clients_timeout: float = 300.0) -> None:
        """
        Args:
            format: the tensors' framework (accepted).
            tasks: the tasks whose data FLARE streams (accepted).
            tensor_send_timeout: FLARE's timeout per tensor (accepted).
            wait_send_task_data_all_clients_timeout: FLARE's wait for every site (accepted).
        """
        self.format = format
        self.tasks = tasks
        self.tensor_send_timeout = tensor_send_timeout
        self.wait_send_task_data_all_clients_timeout = wait_send_task_data_all_clients_timeout


class TensorClientStreamer(Widget):
    """Accepted: flconfig's transport already streams large models in chunks (site side)."""

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"tensor_send_timeout": {"exclusiveMinimum": 0}}

    def __init__(self, format: str = "pytorch", tasks: list[str] | None = None,
                 tensor_send_timeout: float = 30.0) -> None:
        """
        Args:
            format: the tensors' framework (accepted).
            tasks: the tasks whose results FLARE streams (accepted).
            tensor_send_timeout: FLARE's timeout per tensor (accepted).
        """
        self.format = format
        self.tasks = tasks
        self.tensor_send_timeout = tensor_send_timeout
