"""FLARE's ``nvflare.apis.utils`` (the part job code uses)."""
