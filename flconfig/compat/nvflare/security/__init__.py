"""FLARE's ``nvflare.security`` (the logging helpers job code imports)."""
