"""FLARE's ``nvflare.app_common.statistics`` (the helpers statistics generators use)."""
