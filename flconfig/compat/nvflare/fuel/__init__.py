"""FLARE's ``nvflare.fuel`` (the helpers job code imports)."""
