"""Checks of a loaded job; each returns problems at file:line:col and never raises for bad input.

- :mod:`.checks`: components against the registry and their argument schemas, events
  followed from senders to receivers, tasks and ``min_clients``, ``custom/`` imports.
- :mod:`.wiring`: references by id, duplicate ids, cycles, the build order.
- :mod:`.containment`: the job's files and ``custom/`` code stay inside the job folder.
- :mod:`.report`: problems printed for people (text) or for CI (JSON), by ``flconfig
  validate`` and wherever a job is refused (launch, submit).
"""
