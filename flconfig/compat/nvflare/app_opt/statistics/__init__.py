"""FLARE's ``nvflare.app_opt.statistics`` (statistics generators with optional dependencies)."""
