"""FLARE's ``nvflare.app_common.abstract`` (the part job code uses)."""
