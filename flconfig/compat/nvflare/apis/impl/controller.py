"""FLARE's ``Controller``: a workflow of the job's code written on Tasks.

The job's class overrides ``start_controller(fl_ctx)``, ``control_flow(abort_signal,
fl_ctx)``, ``stop_controller(fl_ctx)`` and ``process_result_of_unknown_task``; flconfig's
server runs it as a workflow. ``broadcast_and_wait``, ``send_and_wait`` and
``relay_and_wait`` send a :class:`~nvflare.apis.controller_spec.Task` over flconfig's link,
calling its callbacks as FLARE does: ``before_task_sent_cb(client_task, fl_ctx)`` for each
target before the task goes (public properties it sets on ``fl_ctx`` reach the site as its
peer context), ``result_received_cb`` as each result comes (``client_task.result``, a
Shareable), ``task_done_cb(task, fl_ctx)`` at the end. One difference: a broadcast sends
the task's data as it is after every target's ``before_task_sent_cb``, the same to all.
``broadcast`` (non-blocking in FLARE) waits here too; ``self._engine`` is the server's
engine (``get_clients``, ``get_component``).
"""

from __future__ import annotations

import time
from abc import ABC, abstractmethod
from typing import Any

from ....shareables import PEER_PROPS_KEY, model_of_task, result_shareable
from ..client import Client
from ..controller_spec import ClientTask, SendOrder, Task, TaskCompletionStatus
from ..fl_component import FLComponent
from ..fl_context import FLContext
from ..shareable import Shareable
from ..signal import Signal


class Controller(FLComponent, ABC):
    """FLARE's Controller API on flconfig's server (see the module)."""

    def __init__(self, task_check_period: float = 0.2) -> None:
        super().__init__()
        self._task_check_period = task_check_period
        self._engine: Any = None
        self._site_ctx: Any = None

    @abstractmethod
    def start_controller(self, fl_ctx: FLContext) -> None:
        """Prepare the workflow."""

    @abstractmethod
    def control_flow(self, abort_signal: Signal, fl_ctx: FLContext) -> None:
        """The workflow."""

    @abstractmethod
    def stop_controller(self, fl_ctx: FLContext) -> None:
        """Release what start_controller set up."""

    def process_result_of_unknown_task(self, client: Client, task_name: str, client_task_id: str,
                                       result: Shareable, fl_ctx: FLContext) -> None:
        """A result for a task this workflow no longer waits for (dropped by default)."""

    # -- sending tasks ---------------------------------------------------------------------

    def broadcast_and_wait(self, task: Task, fl_ctx: FLContext | None = None, targets: list[Any] | None = None,
                           min_responses: int = 0, wait_time_after_min_received: int = 0,
                           abort_signal: Signal | None = None) -> None:
        """Send ``task`` to ``targets`` (all connected sites for None) and wait for
        ``min_responses`` results (all for 0)."""
        self._send(task, self._targets(targets), min_responses, wait_time_after_min_received, abort_signal)

    def broadcast(self, task: Task, fl_ctx: FLContext | None = None, targets: list[Any] | None = None,
                  min_responses: int = 0, wait_time_after_min_received: int = 0) -> None:
        """As :meth:`broadcast_and_wait` (flconfig's workflow thread waits either way)."""
        self._send(task, self._targets(targets), min_responses, wait_time_after_min_received, None)

    def send_and_wait(self, task: Task, targets: list[Any] | None = None, send_order: SendOrder = SendOrder.SEQUENTIAL,
                      task_assignment_timeout: int = 0, fl_ctx: FLContext | None = None,
                      abort_signal: Signal | None = None) -> None:
        """Send ``task`` to one of ``targets`` (the first connected one, in order)."""
        chosen = self._targets(targets)[:1]
        if not chosen:
            raise RuntimeError(f"task '{task.name}': none of the target sites is connected")
        self._send(task, chosen, 1, 0, abort_signal)

    def send(self, task: Task, targets: list[Any] | None = None, send_order: SendOrder = SendOrder.SEQUENTIAL,
             task_assignment_timeout: int = 0, fl_ctx: FLContext | None = None) -> None:
        """As :meth:`send_and_wait`."""
        self.send_and_wait(task, targets, send_order, task_assignment_timeout, fl_ctx)

    def relay_and_wait(self, task: Task, targets: list[Any] | None = None, send_order: SendOrder = SendOrder.SEQUENTIAL,
                       task_assignment_timeout: int = 0, task_result_timeout: int = 0, dynamic_targets: bool = True,
                       fl_ctx: FLContext | None = None, abort_signal: Signal | None = None) -> None:
        """Send ``task`` to each of ``targets`` in turn, each after the previous one's result
        (its ``result_received_cb`` may change ``task.data`` for the next)."""
        for site in self._targets(targets):
            if abort_signal is not None and abort_signal.triggered:
                return
            self._send(task, [site], 1, 0, abort_signal, done=False)
        self._done(task)

    def relay(self, task: Task, targets: list[Any] | None = None, send_order: SendOrder = SendOrder.SEQUENTIAL,
              task_assignment_timeout: int = 0, task_result_timeout: int = 0, dynamic_targets: bool = True,
              fl_ctx: FLContext | None = None) -> None:
        """As :meth:`relay_and_wait`."""
        self.relay_and_wait(task, targets, send_order, task_assignment_timeout, task_result_timeout,
                            dynamic_targets, fl_ctx)

    def get_num_standing_tasks(self) -> int:
        """0: every task has finished when the call that sent it returns."""
        return 0

    def cancel_task(self, task: Task, completion_status: Any = TaskCompletionStatus.CANCELLED,
                    fl_ctx: FLContext | None = None) -> None:
        task.completion_status = completion_status

    def cancel_all_tasks(self, completion_status: Any = TaskCompletionStatus.CANCELLED,
                         fl_ctx: FLContext | None = None) -> None:
        """Nothing is standing between calls."""

    # -- helpers ---------------------------------------------------------------------------

    def _targets(self, targets: list[Any] | None) -> list[str]:
        if targets is None:
            return [c.name for c in self._engine.get_clients()]
        return [t.name if isinstance(t, Client) else str(t) for t in targets]

    def _send(self, task: Task, targets: list[str], min_responses: int, wait_after: float,
              abort_signal: Signal | None, done: bool = True) -> None:
        site = self._site_ctx
        if site is None:
            raise RuntimeError(f"task '{task.name}' sent outside the run")
        task.targets = list(targets)
        task.is_standing = True
        task.schedule_time = task.schedule_time or time.time()
        client_tasks: dict[str, ClientTask] = {}
        public: dict[str, Any] = {}
        for name in targets:
            client_task = ClientTask(Client(name), task)
            client_tasks[name] = client_task
            task.client_tasks.append(client_task)
            task.last_client_task_map[name] = client_task
            if task.before_task_sent_cb is not None:
                ctx = FLContext(site)
                task.before_task_sent_cb(client_task=client_task, fl_ctx=ctx)
                public.update(ctx.get_public_props())
        data = model_of_task(task.data)
        if public:
            data.meta[PEER_PROPS_KEY] = public
        for client_task in client_tasks.values():
            client_task.task_send_count += 1
            client_task.task_sent_time = time.time()
            if task.after_task_sent_cb is not None:
                task.after_task_sent_cb(client_task=client_task, fl_ctx=FLContext(site))

        def on_result(name: str, result: Any) -> None:
            client_task = client_tasks[name]
            client_task.result = result_shareable(result, name)
            client_task.result_received_time = time.time()
            if task.result_received_cb is not None:
                task.result_received_cb(client_task=client_task, fl_ctx=FLContext(site))

        need = len(targets) if min_responses <= 0 else min(min_responses, len(targets))
        site.comm.broadcast_and_wait(task.name, data, targets, min_responses=need,
                                     wait_time_after_min_received=wait_after, timeout=task.timeout,
                                     abort=abort_signal, on_result=on_result)
        aborted = abort_signal is not None and abort_signal.triggered
        task.completion_status = TaskCompletionStatus.ABORTED if aborted else TaskCompletionStatus.OK
        if done:
            self._done(task)

    def _done(self, task: Task) -> None:
        task.is_standing = False
        if task.task_done_cb is not None:
            task.task_done_cb(task=task, fl_ctx=FLContext(self._site_ctx))
