"""The config's task filters where they run: which chains apply to a task, and the
server's link with its ``task_data_filters`` and ``task_result_filters`` applied.

A site applies its own chains around each task it executes
(:func:`flconfig.runtime.site_process.execute`); the server's workflows talk to the sites
through :class:`FilteredComm`, as FLARE's server applies its filters.
"""

from __future__ import annotations

import fnmatch
from typing import Any

from ..errors import JobError
from ..types import FLModel


def applies(chain: Any, task_name: str) -> bool:
    """Whether the filter ``chain`` (a built filter chain, with its ``tasks``) applies to
    ``task_name``: named in it, or matched by one of its ``*`` patterns."""
    return any(
        t == task_name or ("*" in t and fnmatch.fnmatchcase(task_name, t)) for t in chain.tasks
    )


class FilteredComm:
    """The server's link with its config's ``task_data_filters`` applied to each task's
    data before it is sent and its ``task_result_filters`` to each result as it arrives
    (before the workflow sees it), as FLARE's server applies them."""

    def __init__(self, comm: Any, filters: list[Any], ctx: Any) -> None:
        self._comm, self._filters, self._ctx = comm, filters, ctx

    def __getattr__(self, name: str) -> Any:
        return getattr(self._comm, name)

    def _filtered(self, section: str, task_name: str, model: FLModel) -> FLModel:
        for chain in self._filters:
            if chain.section == section and applies(chain, task_name):
                for f in chain.filters:
                    model = f.process(model, self._ctx)
        return model

    def broadcast_and_wait(self, task_name: str, data: FLModel, targets: Any, min_responses: int,
                           wait_time_after_min_received: float = 0, timeout: float = 0, abort: Any = None,
                           on_result: Any = None) -> dict[str, FLModel]:
        data = self._filtered("task_data_filters", task_name, data)
        filtered: dict[str, FLModel] = {}

        def receive(site: str, result: FLModel) -> None:
            filtered[site] = self._filtered("task_result_filters", task_name, result)
            if on_result is not None:
                on_result(site, filtered[site])

        results = self._comm.broadcast_and_wait(task_name, data, targets, min_responses,
                                                wait_time_after_min_received, timeout, abort, receive)
        return {site: filtered.get(site, result) for site, result in results.items()}

    def send_and_wait(self, task_name: str, data: FLModel, site: str, timeout: float = 0) -> FLModel:
        results = self.broadcast_and_wait(task_name, data, [site], 1, timeout=timeout)
        if site not in results:
            raise JobError(f"no result for task '{task_name}'" + (f" within {timeout:g} s" if timeout else ""), site)
        return results[site]
