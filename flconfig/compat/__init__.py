"""FLARE's API for job code (``import nvflare...`` served by flconfig): the next issue fills it."""
