"""FLARE's ``nvflare.app_common.aggregators`` (the part job code subclasses)."""
