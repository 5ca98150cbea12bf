"""FLARE's ``nvflare.app_opt.sklearn`` (the part job code imports)."""
