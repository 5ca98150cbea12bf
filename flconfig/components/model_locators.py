"""PTFileModelLocator: offers the server's saved models to cross-site evaluation."""

from __future__ import annotations

from .base import ModelLocator, check_str


class PTFileModelLocator(ModelLocator):
    """Lists the models a :class:`~flconfig.components.persistors.PTFileModelPersistor`
    has saved (global and best global) and loads them for cross-site
    evaluation (FLARE's ``PTFileModelLocator``).
    """

    def __init__(self, pt_persistor_id: str) -> None:
        """
        Args:
            pt_persistor_id: id of the PTFileModelPersistor whose models are offered.
        """
        self.pt_persistor_id = check_str("pt_persistor_id", pt_persistor_id)
