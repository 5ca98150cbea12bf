"""Helpers every layer of flconfig may use; this package imports nothing of flconfig
above :mod:`flconfig.errors`.

- :mod:`.logs`: the names of the tasks and threads that work for a site, which the
  log router (:mod:`flconfig.runtime.logs`) reads to give each site its own lines.
- :mod:`.loader`: the one place a component's class is imported, for the registry
  (validating) and the runtime (building from a plan) alike; light, so a worker that
  builds from a plan never loads the registry.
"""
