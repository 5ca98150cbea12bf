"""FLARE's ``InitFinalComponent``: a component initialized and finalized by its user."""

from __future__ import annotations

from ...apis.fl_component import FLComponent
from ...apis.fl_context import FLContext


class InitFinalComponent(FLComponent):
    """A component whose user (an executor) calls :meth:`initialize` before its first use and
    :meth:`finalize` after its last (FLARE's ``InitFinalComponent``)."""

    def initialize(self, fl_ctx: FLContext) -> None:
        """Called once, before the first use."""

    def finalize(self, fl_ctx: FLContext) -> None:
        """Called once, after the last use."""
