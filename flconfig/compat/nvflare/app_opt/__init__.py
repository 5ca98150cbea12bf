"""FLARE's ``nvflare.app_opt`` (the parts that need optional packages such as torch)."""
