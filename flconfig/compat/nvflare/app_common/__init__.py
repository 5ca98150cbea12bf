"""FLARE's ``nvflare.app_common`` (the part job code uses)."""
