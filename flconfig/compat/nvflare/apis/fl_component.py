"""FLARE's ``FLComponent``: logging to the site's log, events, panics."""

from __future__ import annotations

import logging
from typing import Any

from .fl_constant import FLContextKey
from .fl_context import FLContext


class FLComponent:
    """The base of FLARE's components. flconfig calls ``handle_event(event_type, fl_ctx)``
    with FLARE's event names for every event of the site."""

    #: Marks FLARE-API components: flconfig's site calls them with FLARE's signatures.
    _flare_component = True

    def __init__(self) -> None:
        self._name = type(self).__name__
        self.logger = logging.getLogger(f"{type(self).__module__}.{type(self).__name__}")

    def _logger(self, fl_ctx: FLContext | None) -> logging.Logger:
        site = getattr(fl_ctx, "site", None)
        logger = getattr(site, "log", None)
        if isinstance(logger, logging.Logger):
            return logger
        return getattr(self, "logger", None) or logging.getLogger(type(self).__name__)

    def log_debug(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = False) -> None:
        self._logger(fl_ctx).debug("%s: %s", type(self).__name__, msg)

    def log_info(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = False) -> None:
        self._logger(fl_ctx).info("%s: %s", type(self).__name__, msg)

    def log_warning(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = True) -> None:
        self._logger(fl_ctx).warning("%s: %s", type(self).__name__, msg)

    def log_error(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = True) -> None:
        self._logger(fl_ctx).error("%s: %s", type(self).__name__, msg)

    def log_critical(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = True) -> None:
        self._logger(fl_ctx).critical("%s: %s", type(self).__name__, msg)

    def log_exception(self, fl_ctx: FLContext | None, msg: str, fire_event: bool = False) -> None:
        self._logger(fl_ctx).exception("%s: %s", type(self).__name__, msg)

    def system_panic(self, reason: str, fl_ctx: FLContext | None) -> None:
        """Fail the site's run with ``reason`` (FLARE aborts the job)."""
        site = getattr(fl_ctx, "site", None)
        self.log_error(fl_ctx, f"system panic: {reason}")
        if site is not None:
            site.report_failure(f"{type(self).__name__}: {reason}")

    def task_panic(self, reason: str, fl_ctx: FLContext | None) -> None:
        """Fail the current task with ``reason``."""
        self.log_error(fl_ctx, f"task panic: {reason}")

    def fire_event(self, event_type: str, fl_ctx: FLContext) -> None:
        site = getattr(fl_ctx, "site", None)
        if site is not None:
            site.fire_event(event_type, fl_ctx.get_prop(FLContextKey.EVENT_DATA))

    def fire_fed_event(self, event_type: str, event_data: Any, fl_ctx: FLContext) -> None:
        site = getattr(fl_ctx, "site", None)
        if site is not None:
            site.fire_fed_event(event_type, event_data)

    def handle_event(self, event_type: str, fl_ctx: FLContext) -> None:
        """Called for every event of the site, with FLARE's event name."""
