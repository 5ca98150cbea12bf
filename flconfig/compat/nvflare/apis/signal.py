"""FLARE's ``Signal`` (``abort_signal.triggered``): flconfig's own."""

from flconfig.types import Signal

__all__ = ["Signal"]
