"""Component plugins: the ``flconfig.components`` entry points of installed packages.

Read with importlib-metadata (the maintained backport where installed, else the
standard library's ``importlib.metadata``); nothing is imported from the plugins.
"""

from __future__ import annotations

__all__ = ["read_entry_points"]


def read_entry_points(group: str) -> list[tuple[str, str, str]]:
    """``(name, value, distribution)`` of every entry point in ``group``."""
    try:
        from importlib_metadata import entry_points
    except ImportError:
        from importlib.metadata import entry_points  # type: ignore[assignment]
    found = []
    for ep in entry_points(group=group):
        dist = getattr(getattr(ep, "dist", None), "name", None) or "?"
        found.append((ep.name, ep.value, dist))
    return found
