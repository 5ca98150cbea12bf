"""FLARE's ``nvflare.app_common.workflows`` (the base classes job code subclasses)."""
