"""How the job server hands out tasks: one task to many sites, and their results gathered
with FLARE's semantics (``min_responses``, ``wait_time_after_min_received``, a timeout,
an abort signal, lost sites).

:class:`Dispatcher` puts a task on the queue of each target site in the server's
:class:`~.state.ServerState` (the sites' GetTask calls, or their worker's PollTasks,
take it from there) and
waits for the results the handlers store in it.
"""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Callable, Sequence

from ..errors import JobError
from ..types import FLModel, Signal
from . import contract
from . import flconfig_pb2 as pb
from .codec import encode_model
from .state import ALIVE, ServerState, Task

log = logging.getLogger(__name__)

#: ``on_result(site, result)``: told of each result as it arrives.
ResultCallback = Callable[[str, FLModel], None]


def _job_error(message: str, sites: Sequence[str]) -> JobError:
    err = JobError(message)
    err.site = sites[0] if len(sites) == 1 else None
    return err


class Dispatcher:
    """Sends tasks to the sites of ``state`` and gathers their results; a task's model
    frame is at most ``max_model_mb`` MiB."""

    def __init__(self, state: ServerState, max_model_mb: int) -> None:
        self._state = state
        self._max_model_mb = max_model_mb

    def broadcast_and_wait(
        self,
        task_name: str,
        data: FLModel,
        targets: Sequence[str] | None,
        min_responses: int,
        wait_time_after_min_received: float = 0,
        timeout: float = 0,
        abort: Signal | None = None,
        on_result: ResultCallback | None = None,
    ) -> dict[str, FLModel]:
        """Send one task to every target once and gather their results (FLARE's semantics).

        ``targets=None`` means every alive site; ``min_responses <= 0`` means all
        targets. Returns when every target answered; or when ``min_responses``
        results are in and ``wait_time_after_min_received`` more seconds passed
        (or nobody else can still answer); or after ``timeout`` seconds (0 =
        none); or when ``abort`` is triggered or the run ends. ``on_result(site,
        result)`` runs on this thread as each result arrives. Raises
        :class:`JobError` naming the lost site(s) once ``min_responses`` can no
        longer be reached.
        """
        if targets is None:
            targets = self._state.alive()
            if not targets:
                raise JobError(f"task '{task_name}': no site is connected")
        targets = tuple(dict.fromkeys(targets))
        for site in targets:
            if site not in self._state.known:
                raise ValueError(f"task '{task_name}': unknown target site {site!r}")
        need = len(targets) if min_responses <= 0 else min_responses
        if need > len(targets):
            raise JobError(
                f"task '{task_name}' needs {need} results but has only {len(targets)} target(s)"
            )
        task_id = uuid.uuid4().hex
        model = encode_model(data)
        if len(model) > self._max_model_mb * 1024 * 1024:
            raise JobError(
                f"task '{task_name}': its data is {len(model) / 2**20:.1f} MiB, "
                f"above max_model_mb={self._max_model_mb}"
            )
        reply = pb.TaskReply(
            kind=pb.TaskReply.TASK, name=task_name, task_id=task_id, model_bytes=len(model)
        )
        if len(model) <= contract.CHUNK_BYTES:
            reply.model = model  # small: inside the reply; else the sites fetch it in chunks
        task = Task(task_name, task_id, model, reply.SerializeToString(), targets)
        with self._state.cond:
            self._state.tasks[task_id] = task
            self._state.queue(task)
            self._state.cond.notify_all()
        log.debug("task %s (%s) sent to %s", task_name, task_id, ", ".join(targets))
        try:
            return self._gather(task, need, wait_time_after_min_received, timeout, abort, on_result)
        finally:
            with self._state.cond:
                task.closed = True
                self._state.tasks.pop(task_id, None)

    def _gather(
        self,
        task: Task,
        need: int,
        wait_after: float,
        timeout: float,
        abort: Signal | None,
        on_result: ResultCallback | None,
    ) -> dict[str, FLModel]:
        start = time.monotonic()
        min_reached_at: float | None = None
        reported = 0
        seen_changes = -1
        not_alive: list[str] = []
        while True:
            if on_result is not None:
                with self._state.cond:
                    fresh = [(s, task.results[s]) for s in task.arrivals[reported:]]
                    reported += len(fresh)
                for site, result in fresh:
                    on_result(site, result)
            with self._state.cond:
                now = time.monotonic()
                got = len(task.results)
                # Recounted only when a site's state changed: a wake per result must not
                # walk every target (quadratic with thousands of sites, under the lock).
                if seen_changes != self._state.state_changes:
                    seen_changes = self._state.state_changes
                    not_alive = [s for s in task.targets if self._state.sites[s].state != ALIVE]
                unreachable = [s for s in not_alive if s not in task.results]
                n_pending = len(task.targets) - got
                interrupted = (
                    self._state.ended
                    or self._state.stopping
                    or (abort is not None and abort.triggered)
                    or (timeout > 0 and now - start >= timeout)
                )
                if not interrupted and got < need and len(task.targets) - len(unreachable) < need:
                    reasons = "; ".join(f"{s}: {self._state.sites[s].lost_reason}" for s in unreachable)
                    raise _job_error(
                        f"task '{task.name}' cannot get the {need} results it needs "
                        f"({got} received) because these sites are lost: {reasons}",
                        unreachable,
                    )
                if got >= need and min_reached_at is None:
                    min_reached_at = now
                done = (
                    not n_pending
                    or interrupted
                    or (
                        min_reached_at is not None
                        and (now - min_reached_at >= wait_after or len(unreachable) == n_pending)
                    )
                )
                if done:
                    # Closed under the same lock as the snapshot: a result that
                    # arrives later is refused as late, never accepted and dropped.
                    task.closed = True
                    results = dict(task.results)
                    arrivals = list(task.arrivals)
                    break
                if on_result is None or reported == len(task.arrivals):
                    deadlines = [now + (0.05 if abort is not None else 1.0)]
                    if timeout > 0:
                        deadlines.append(start + timeout)
                    if min_reached_at is not None:
                        deadlines.append(min_reached_at + wait_after)
                    self._state.cond.wait(max(0.0, min(deadlines) - now))
        if abort is not None and abort.triggered and n_pending:
            log.info("task %s aborted: %s", task.name, abort.reason or "abort signal")
        elif n_pending and timeout > 0 and now - start >= timeout:
            log.warning(
                "task %s timed out after %g s with %d of %d results",
                task.name, timeout, len(results), len(task.targets),
            )  # fmt: skip
        if on_result is not None:
            for site in arrivals[reported:]:
                on_result(site, results[site])
        return results

    def send_and_wait(
        self, task_name: str, data: FLModel, site: str, timeout: float = 0
    ) -> FLModel:
        """Send one task to one site and return its result.

        Raises :class:`JobError` if the site is lost or no result came within
        ``timeout`` seconds (0 = no limit).
        """
        results = self.broadcast_and_wait(task_name, data, [site], 1, timeout=timeout)
        if site not in results:
            raise JobError(
                f"no result for task '{task_name}'" + (f" within {timeout:g} s" if timeout else ""),
                site,
            )
        return results[site]
