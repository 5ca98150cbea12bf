"""FLARE's ``nvflare.apis`` (the part job code uses)."""
