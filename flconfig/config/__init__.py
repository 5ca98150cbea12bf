"""Files → positioned documents → a checked job.

- :mod:`.documents`: the positioned document, with the file:line:col of every value and
  key, and the expression behind every value a substitution or an include gave.
- :mod:`.parsers`: the readers that make one, a module per format (JSON, YAML, and HOCON
  read by flconfig alone), and the choice by a file's suffix (:func:`~.parsers.load_document`).
- :mod:`.variables`: FLARE's ``{VAR}`` references resolved, positions kept.
- :mod:`.limits`: the one limit on how far a document may expand.
- :mod:`.meta`: ``meta.json`` and its ``deploy_map`` rules.
- :mod:`.job`: discovery of a job, app folder or single config file, and the
  :class:`~.job.Job` it becomes (:func:`~.job.inspect_job`, :func:`~.job.load_job`).
"""
