"""PTFileModelPersistor: loads and saves a PyTorch global model as files."""

from __future__ import annotations

import re
from typing import TYPE_CHECKING, Any, ClassVar

from .base import ModelPersistor, check_file_name, check_optional_str

if TYPE_CHECKING:
    import torch


class PTFileModelPersistor(ModelPersistor):
    """Provides the initial global model and saves the global model (and the best
    one) under the server's run directory (FLARE's ``PTFileModelPersistor``).
    """

    REFERENCES: ClassVar[dict[str, str]] = {"model": "model"}
    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {
        "model": {
            "description": "a nested component spec building the model, or the id of a model component",
            "anyOf": [{"type": "object"}, {"type": "string", "minLength": 1}, {"type": "null"}],
        },
    }

    def __init__(
        self,
        exclude_vars: str | None = None,
        model: torch.nn.Module | str | None = None,
        global_model_file_name: str = "FL_global_model.pt",
        best_global_model_file_name: str = "best_FL_global_model.pt",
        source_ckpt_file_full_name: str | None = None,
        filter_id: str | None = None,
    ) -> None:
        """
        Args:
            exclude_vars: regular expression of parameter names not loaded from
                or saved to the files.
            model: the model; a nested component spec (built first, into an
                ``nn.Module``) or the id of a component of kind ``model``,
                looked up when the run starts.
            global_model_file_name: file name of the saved global model.
            best_global_model_file_name: file name of the best global model.
            source_ckpt_file_full_name: checkpoint file to start from instead of
                the model's initial weights.
            filter_id: id of a filter applied to the model when it is saved
                and loaded.
        """
        if exclude_vars is not None:
            if not isinstance(exclude_vars, str):
                raise TypeError(
                    f"exclude_vars must be a regular expression string, got {type(exclude_vars).__name__}"
                )
            try:
                re.compile(exclude_vars)
            except re.error as exc:
                raise ValueError(f"exclude_vars is not a valid regular expression: {exc}") from exc
        self.exclude_vars = exclude_vars
        self.model = _check_model(model)
        self.global_model_file_name = check_file_name(
            "global_model_file_name", global_model_file_name
        )
        self.best_global_model_file_name = check_file_name(
            "best_global_model_file_name", best_global_model_file_name
        )
        self.source_ckpt_file_full_name = check_optional_str(
            "source_ckpt_file_full_name", source_ckpt_file_full_name
        )
        self.filter_id = check_optional_str("filter_id", filter_id)


def _check_model(model: Any) -> Any:
    # Checked by duck type: importing torch here would put it on the validate path.
    if model is None or (isinstance(model, str) and model):
        return model
    if isinstance(model, dict):
        raise TypeError("model must be a component spec with 'path' or 'name', or a component id")
    if not callable(getattr(model, "state_dict", None)):
        raise TypeError(
            f"model must be a torch.nn.Module or the id of a model component, got {type(model).__name__}"
        )
    return model
