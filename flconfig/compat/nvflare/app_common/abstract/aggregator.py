"""FLARE's ``Aggregator``: combines the sites' results of a round."""

from __future__ import annotations

from abc import ABC, abstractmethod

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext
from ...apis.shareable import Shareable


class Aggregator(FLComponent, ABC):
    """An aggregator of the job's code (a workflow's ``aggregator_id``): each result comes
    as a Shareable whose peer property ``__identity_name__`` is the site and whose cookie
    ``__contribution_round__`` is its round."""

    @abstractmethod
    def accept(self, shareable: Shareable, fl_ctx: FLContext) -> bool:
        """Take one site's result; False to refuse it."""

    @abstractmethod
    def aggregate(self, fl_ctx: FLContext) -> Shareable:
        """The round's aggregate."""

    def reset(self, fl_ctx: FLContext) -> None:
        """Forget the round's results (a new round starts)."""
