"""FLARE's ``ModelLocator``: finds the server's models for cross-site evaluation."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...apis.dxo import DXO
from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class ModelLocator(FLComponent, ABC):
    """A model locator of the job's code, used by CrossSiteModelEval's ``model_locator_id``."""

    @abstractmethod
    def get_model_names(self, fl_ctx: FLContext) -> list[str]:
        """The names of the models it can locate."""

    @abstractmethod
    def locate_model(self, model_name: str, fl_ctx: FLContext) -> DXO | None:
        """The model ``model_name`` as a DXO of weights, or None."""
