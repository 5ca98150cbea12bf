"""FullModelShareableGenerator: sends and receives whole models."""

from __future__ import annotations

from .base import ShareableGenerator


class FullModelShareableGenerator(ShareableGenerator):
    """Turns the global model into task data holding all of its weights, and an
    aggregated result (full weights or a weight difference) back into the next
    global model (FLARE's ``FullModelShareableGenerator``). Takes no arguments.
    """

    def __init__(self) -> None:
        pass
