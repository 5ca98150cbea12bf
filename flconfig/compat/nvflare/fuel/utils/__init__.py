"""FLARE's ``nvflare.fuel.utils``: ``import_utils``, ``log_utils``, ``fobs`` (flconfig's own format: nothing unpickled)."""
