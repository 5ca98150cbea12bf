"""FLARE's ``ModelLearner``: train, validate and hand over a model, on FLModels.

ModelLearnerExecutor (``flconfig.components.model_learner_executor``) drives it: each
method gets and returns FLARE's :class:`~nvflare.app_common.abstract.fl_model.FLModel`
(or a ReturnCode string for a failure), the task's context is on the learner's attributes.
"""

from __future__ import annotations

from typing import Any

from ..utils.fl_component_wrapper import FLComponentWrapper


class ModelLearner(FLComponentWrapper):
    """A learner on FLModels (FLARE's ``ModelLearner``)."""

    STATE = None

    def train(self, model: Any) -> Any:
        """Train on the global ``model``; return an FLModel (or a ReturnCode string)."""

    def get_model(self, model_name: str) -> Any:
        """The site's model named ``model_name`` (``best_model`` ...) for cross-site evaluation."""

    def validate(self, model: Any) -> Any:
        """Score ``model``; return an FLModel with ``metrics`` (or a ReturnCode string)."""

    def configure(self, model: Any) -> None:
        """Take the configuration in ``model`` (the ``configure`` task)."""
