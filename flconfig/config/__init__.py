"""Files → positioned documents → a checked job.

- :mod:`.documents`: JSON, YAML (and, soon, HOCON) parsed with the file:line:col of every
  value and key.
- :mod:`.variables`: FLARE's ``{VAR}`` references resolved, positions kept.
- :mod:`.meta`: ``meta.json`` and its ``deploy_map`` rules.
- :mod:`.job`: discovery of a job, app folder or single config file, and the
  :class:`~.job.Job` it becomes (:func:`~.job.inspect_job`, :func:`~.job.load_job`).
"""
