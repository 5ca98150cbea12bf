"""FLARE's ``nvflare.widgets``."""
