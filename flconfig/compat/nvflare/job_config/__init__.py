"""FLARE's ``nvflare.job_config``: the Job API a ``job.py`` builds its job with (FedJob,
ScriptRunner, BaseFedJob, FileSource ...), served by flconfig (:mod:`flconfig.compat.jobapi`)."""
