"""FLARE's ``nvflare.fuel.utils.fobs.decomposer``: the base class of a type's decomposer."""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import Any


class Decomposer(ABC):
    """Turns objects of :meth:`supported_type` into plain values and back (FLARE's API).

    flconfig calls a registered decomposer when :func:`fobs.dumps` meets an object of its
    type, and :meth:`recompose` when it reads one back; the decomposed value must itself be
    plain (dicts, lists, strings, numbers, arrays) or handled by another decomposer.
    """

    @abstractmethod
    def supported_type(self) -> type:
        """The type this decomposer handles."""

    @abstractmethod
    def decompose(self, target: Any, manager: Any = None) -> Any:
        """``target`` as a plain value."""

    @abstractmethod
    def recompose(self, data: Any, manager: Any = None) -> Any:
        """The object :meth:`decompose` gave ``data`` for."""
