"""FLARE's ``nvflare.fuel.utils``: ``import_utils`` (``fobs``, FLARE's serializer, is not served)."""
