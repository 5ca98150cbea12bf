"""FLARE's exceptions that job code raises or catches."""

from __future__ import annotations


class TaskExecutionError(Exception):
    """Raised (by ``ModelLearner.stop_task``) when a task cannot go on."""


class UnsafeComponentError(Exception):
    """A component asked to be treated as unsafe."""


class NotAuthorized(Exception):
    """FLARE's authorization refusal."""
