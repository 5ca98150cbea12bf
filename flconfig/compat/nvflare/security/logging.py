"""FLARE's secure formatting helpers (flconfig has no secure mode: the full text is given)."""

from __future__ import annotations

import logging
import traceback


def secure_format_exception(e: BaseException) -> str:
    """``"<type>: <message>"`` of ``e``."""
    return f"{type(e).__name__}: {e}"


def secure_format_traceback() -> str:
    """The traceback of the exception being handled."""
    return traceback.format_exc()


def secure_log_traceback(logger: logging.Logger | None = None) -> None:
    """Log the traceback of the exception being handled."""
    (logger or logging.getLogger(__name__)).error(traceback.format_exc())


def is_secure() -> bool:
    return False
