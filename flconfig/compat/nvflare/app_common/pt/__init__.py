"""FLARE's old ``nvflare.app_common.pt`` (before the PyTorch parts moved to ``nvflare.app_opt.pt``)."""
