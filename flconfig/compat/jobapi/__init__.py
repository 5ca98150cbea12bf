"""FLARE's Python job API (``nvflare.recipe``, ``nvflare.job_config``) as a front end.

A FLARE ``job.py`` builds its job from Python objects: components (``FedAvg(...)``,
``TBAnalyticsReceiver()``), a model instance, a training script. flconfig serves those
modules to the script (:mod:`flconfig.compat`) and turns the objects into the declarative
job folder FLARE would export — class paths and the arguments that differ from their
defaults, the job's own modules copied into ``custom/`` — which is then checked like any
job folder and run by the launcher, POC or a deployed server.

- :mod:`.standins`: FLARE's component classes while a job is authored: they record the
  arguments they were given (and where), and stand for the class flconfig runs.
- :mod:`.export`: Python objects to config entries, ``custom/`` files, the job folder.
- :mod:`.checking`: the written job checked with validate's report, pointing at the
  ``job.py`` lines as well as the generated configs'.

Nothing here is imported by ``flconfig validate``; it runs in the process of a job script.
"""
