"""FLARE's ``nvflare.apis.impl`` (the Controller base workflows of job code subclass)."""
