"""FLARE's ``nvflare.app_opt.statistics.df`` (statistics of pandas DataFrames)."""
