"""flconfig's built-in server components as FLARE-API code sees them.

A workflow of the job's code asks ``self._engine.get_component("persistor")`` and calls
``load(fl_ctx)``; when the persistor is one of flconfig's (NPModelPersistor,
PTFileModelPersistor ...) it gets one of these views: a subclass of FLARE's base class
(``isinstance(x, LearnablePersistor)`` holds) calling the built-in with flconfig's types.
"""

from __future__ import annotations

from typing import Any

from ..interfaces import GLOBAL_MODEL_PROP, Aggregator, ModelPersistor, ShareableGenerator
from .nvflare.apis.fl_constant import ReservedKey
from .nvflare.app_common.abstract.aggregator import Aggregator as FlareAggregator
from .nvflare.app_common.abstract.model_persistor import ModelPersistor as FlarePersistor
from .nvflare.app_common.abstract.shareable_generator import ShareableGenerator as FlareGenerator
from .nvflare.app_common.app_constant import AppConstants
from .shareables import learnable_of, model_of, model_of_task, to_shareable


class PersistorView(FlarePersistor):
    """A built-in persistor behind FLARE's ``ModelPersistor`` (ModelLearnables)."""

    def __init__(self, persistor: ModelPersistor, site: Any) -> None:
        super().__init__()
        self._persistor, self._site = persistor, site
        self.id = getattr(persistor, "id", "")

    def load_model(self, fl_ctx: Any) -> Any:
        return learnable_of(self._persistor.load(self._site))

    def save_model(self, model_learnable: Any, fl_ctx: Any) -> None:
        self._persistor.save(model_of(model_learnable, f"{type(self._persistor).__name__}.save"), self._site)

    def get_model_inventory(self, fl_ctx: Any) -> dict[str, Any]:
        return {name: None for name in self._persistor.model_names(self._site)}

    def get_model(self, model_file: str, fl_ctx: Any) -> Any:
        model = self._persistor.get_model(model_file, self._site)
        return None if model is None else learnable_of(model)


class GeneratorView(FlareGenerator):
    """A built-in shareable generator behind FLARE's ``ShareableGenerator``."""

    def __init__(self, generator: ShareableGenerator, site: Any) -> None:
        super().__init__()
        self._generator, self._site = generator, site
        self.id = getattr(generator, "id", "")

    def learnable_to_shareable(self, model: Any, fl_ctx: Any) -> Any:
        return to_shareable(self._generator.learnable_to_shareable(model_of(model, "learnable_to_shareable"),
                                                                   self._site))

    def shareable_to_learnable(self, shareable: Any, fl_ctx: Any) -> Any:
        current = fl_ctx.get_prop(AppConstants.GLOBAL_MODEL) if fl_ctx is not None else None
        if isinstance(current, dict) and "weights" in current:  # the base a DIFF is added to
            self._site.props[GLOBAL_MODEL_PROP] = model_of(current, "the global model")
        return learnable_of(self._generator.shareable_to_learnable(model_of_task(shareable), self._site))


class AggregatorView(FlareAggregator):
    """A built-in aggregator behind FLARE's ``Aggregator`` (results as Shareables)."""

    def __init__(self, aggregator: Aggregator, site: Any) -> None:
        super().__init__()
        self._aggregator, self._site = aggregator, site
        self.id = getattr(aggregator, "id", "")

    def accept(self, shareable: Any, fl_ctx: Any) -> bool:
        model = model_of_task(shareable)
        model.rc = str(shareable.get_return_code())
        return self._aggregator.accept(shareable.get_peer_prop(ReservedKey.IDENTITY_NAME, "?"), model, self._site)

    def aggregate(self, fl_ctx: Any) -> Any:
        return to_shareable(self._aggregator.aggregate(self._site))

    def reset(self, fl_ctx: Any = None) -> None:
        self._aggregator.reset(self._site)


#: flconfig's base class -> its FLARE-facing view.
VIEWS: dict[type, type] = {ModelPersistor: PersistorView, ShareableGenerator: GeneratorView,
                           Aggregator: AggregatorView}
