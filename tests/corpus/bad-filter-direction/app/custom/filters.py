"""A filter that changes nothing."""

from flconfig.components.base import Filter


class PassThrough(Filter):
    def __init__(self) -> None:
        pass
