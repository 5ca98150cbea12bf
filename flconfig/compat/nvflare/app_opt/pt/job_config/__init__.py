"""FLARE's ``nvflare.app_opt.pt.job_config``: the Job API's PyTorch parts (PTModel, FedAvgJob)."""
