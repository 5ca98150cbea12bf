"""PTFileModelLocator: offers the server's saved models to cross-site evaluation."""

from __future__ import annotations

from typing import Any, ClassVar

from ..types import FLModel, RunContext
from .base import ModelLocator, ModelPersistor, lookup_component


class PTFileModelLocator(ModelLocator):
    """Lists the models a :class:`~flconfig.components.persistors.PTFileModelPersistor`
    has saved (global and best global) and loads them for cross-site
    evaluation (FLARE's ``PTFileModelLocator``).

    Names are the persistor's file names (``FL_global_model.pt``,
    ``best_FL_global_model.pt``); CrossSiteModelEval reports them with the
    ``SRV_`` prefix, as FLARE does.
    """

    ARGS_SCHEMA: ClassVar[dict[str, Any]] = {"pt_persistor_id": {"minLength": 1}}

    def __init__(self, pt_persistor_id: str) -> None:
        """
        Args:
            pt_persistor_id: id of the PTFileModelPersistor whose models are offered.
        """
        self.pt_persistor_id = pt_persistor_id

    def _persistor(self, ctx: RunContext) -> ModelPersistor:
        owner = f"model locator {self.id or type(self).__name__}"
        return lookup_component(ctx, owner, "pt_persistor_id", self.pt_persistor_id, ModelPersistor)

    def get_model_names(self, ctx: RunContext) -> list[str]:
        """The models the persistor has saved so far (none before the first save)."""
        return list(self._persistor(ctx).model_names(ctx))

    def locate_model(self, name: str, ctx: RunContext) -> FLModel | None:
        """The saved model ``name`` (from :meth:`get_model_names`), or None."""
        return self._persistor(ctx).get_model(name, ctx)
