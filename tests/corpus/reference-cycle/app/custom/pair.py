"""Two widgets that name each other."""

from flconfig.components.base import Widget


class Ping(Widget):
    def __init__(self, partner_id: str) -> None:
        self.partner_id = partner_id


class Pong(Widget):
    def __init__(self, partner_id: str) -> None:
        self.partner_id = partner_id
