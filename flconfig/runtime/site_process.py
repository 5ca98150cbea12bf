"""The client sites' process: a worker hosting one or more sites, each a coroutine on one
event loop, training on a few shared threads.

:func:`run_clients` is what ``python -m flconfig.runtime.worker clients --spec SPEC.json
--sites site-1,site-2`` runs (see :mod:`flconfig.runtime.worker`); :func:`run_site` is
one site from connecting to the server until the server ends the run.
"""

from __future__ import annotations

import asyncio
import ctypes
import functools
import logging
import sys
import threading
import time
import traceback
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from ..common.logs import site_thread_name
from ..errors import FlconfigError, JobError, StorageError, storage_message
from ..tracking.senders import AnalyticsSender
from ..transport.contract import LONG_POLL_S
from ..transport.link import SiteLink, Task
from ..transport.tls import channel_credentials
from ..types import EventType, FLModel, ReturnCode
from .build import BuiltSite, build_from_plan
from .context import SiteContext
from .fed_events import event_to_records
from .filters import applies
from .logs import add_log_file
from .plan import RunPlan, load_plan
from .spec import WorkerSpec, wait_for_port

log = logging.getLogger(__name__)

#: Longest a task's result waits for the records the task logged to be handed on to the
#: link (beyond it they follow on their own).
HAND_ON_TIMEOUT = 1.0

#: Seconds between two returns of a worker's freed memory to the system while its
#: sites are released between tasks (each costs a walk over the C heap).
TRIM_INTERVAL = 1.0


class ProcessJob:
    """The run plan, read once per worker process and shared by its sites, and the
    process's training threads.

    The sites are coroutines on the process's event loop; everything that runs a
    component (building, events, tasks) runs on the training threads, never on the
    loop, so one site's work never stalls another site's link.
    """

    def __init__(self, plan: RunPlan, slots: int = 1, shared: bool = False) -> None:
        self._plan = plan
        # Threads are started as tasks come, at most ``slots``.
        self._pool = ThreadPoolExecutor(max(1, slots), thread_name_prefix="flconfig-train")
        self._lock = threading.Lock()
        self._warm = False
        #: Whether the process's sites share one gRPC channel (more than one site).
        self.shared = shared
        #: Whether a site's components are dropped after each task and built again before
        #: the next (the plan's ``site_state`` "release"), instead of kept for the run.
        self.releases = plan.site_state == "release"
        #: Released sites holding components now: no more than the training threads.
        self.open_sites = asyncio.Semaphore(max(1, slots))
        self._trimmed = 0.0

    async def call(self, site: str, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` for ``site`` on the process's training threads (one per core
        given to the process) and return its result. A thousand sites training at once
        would only fight over the cores; on a few threads that do all the training,
        torch's and the allocator's memory is reused instead of held once per site."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _as_site, site, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def release(self, site: str, ctx: SiteContext) -> list[str]:
        """End ``site``'s run on its components and let go of them (site_state
        "release"); the failures its components reported. What they held goes back
        to the allocator: torch's cached GPU memory at once, and at most every
        :data:`TRIM_INTERVAL` seconds the C heap's free pages to the system."""
        await self.call(site, _release, ctx)
        now = time.monotonic()
        if now - self._trimmed >= TRIM_INTERVAL:
            self._trimmed = now
            await self.call(site, _return_memory)
        return list(ctx.failures)

    async def build(self, site: str) -> Any:
        """Build ``site``'s components from the plan (one site at a time; the first also
        does the process's heavy imports, see :func:`_warm_up`)."""
        return await self.call(site, self._build, site)

    def _build(self, site: str) -> Any:
        with self._lock:
            if not self._warm:
                _warm_up()
                self._warm = True
            return build_from_plan(self._plan, site)


async def run_site(spec: WorkerSpec, site: str, errors: dict[str, str],
                   job: ProcessJob) -> None:
    """Run one client site, a coroutine on the worker's loop, until the server ends the run."""
    workspace = Path(spec.workspace)
    link = None
    built: BuiltSite | None = None
    ctx: SiteContext | None = None
    assert spec.address is not None, "run_clients learns the server's address first"
    try:
        link = SiteLink(
            spec.address,
            site,
            spec.credentials[site],
            heartbeat_interval=spec.heartbeat_interval,
            share_channel=job.shared,
            channel_credentials=_channel_tls(spec),
            retry_timeout=spec.retry_timeout,
        )
        # Connected first, then built: the server's first round starts while the sites
        # still import torch and build their components, instead of after it. A site
        # released between tasks builds only when a task comes, and lets go after it.
        await link.connect(timeout=spec.startup_timeout)
        if not job.releases:
            built, ctx = await _open_site(spec, site, job, link)
        while True:
            task = await link.get_task()
            if task is None:
                continue
            if not isinstance(task, Task):
                break  # the server ended the run
            if built is not None and ctx is not None:
                result = await job.call(site, execute, built, ctx, task.name, task.data)
            else:
                result = await _run_released(spec, site, job, link, task, errors)
            # Not held while the site waits for its next task (a small result's reply
            # brings it: one call a round, the records too): a thousand sites would each
            # keep a copy of the global model and of their result. The list is emptied
            # as the call's arguments are taken, so the call holds the only references.
            handed = [task, result]
            del task, result
            await link.submit_result(handed.pop(0), handed.pop(0), wait_next=LONG_POLL_S)
    except OSError as exc:
        log.error("%s failed: %s", site, exc)
        errors[site] = storage_message(exc, workspace)
    except FlconfigError as exc:
        log.error("%s failed: %s", site, exc)
        errors[site] = getattr(exc, "message", None) or str(exc)
    except Exception as exc:
        log.error("%s failed:\n%s", site, traceback.format_exc())
        errors[site] = f"{type(exc).__name__}: {exc}"
    finally:
        if ctx is not None:
            await job.call(site, _end_run, ctx)
        if link is not None:
            left = await link.close()
            if left:
                why = link.delivery_problem
                message = f"{left} event records could not be delivered" + (
                    f": the server says {why}" if why else "")
                log.error("%s: %s", site, message)
                errors.setdefault(site, message)
        if ctx is not None and ctx.failures:
            errors.setdefault(site, ctx.failures[0])


async def _open_site(spec: WorkerSpec, site: str, job: ProcessJob,
                     link: SiteLink) -> tuple[BuiltSite, SiteContext]:
    """Build ``site``'s components from the plan and start its run (the run's start
    events): once per run, or before each task when the site is released between tasks.
    A site that cannot build tells the server at once, so the run fails now naming this
    site and the cause; the error is raised on."""
    try:
        built: BuiltSite = await job.build(site)
    except Exception as exc:
        if isinstance(exc, JobError):
            reason = exc.message
        elif isinstance(exc, FlconfigError):
            reason = str(exc)
        else:
            reason = f"{type(exc).__name__}: {exc}"
        try:
            await link.close(timeout=1, reason=reason)
        except FlconfigError:
            pass  # the server may have ended the run already
        raise
    sink = link.send_events
    ctx = await job.call(
        site,
        functools.partial(
            SiteContext,
            site,
            spec.job_id,
            Path(spec.workspace),
            built.components,
            built.handlers,
            role="client",
            fed_sink=lambda event: sink(event_to_records(event)),
            device=spec.device,
            client_sites=spec.sites,
            custom_dir=built.plan.custom_dir,
            run_dir=spec.run_dir_of(site),
            outside_files=built.plan.outside_files,
        ),
    )
    await job.call(site, _start_run, ctx)
    return built, ctx


async def _run_released(spec: WorkerSpec, site: str, job: ProcessJob, link: SiteLink,
                        task: Task, errors: dict[str, str]) -> FLModel:
    """Run ``task`` on components built for it alone (site_state "release"): built from
    the plan, the run's start events, the task, the run's end events, let go. At most as
    many sites of the process as it has training threads hold components at once, so a
    round that reaches a thousand sites together never builds them all at once."""
    async with job.open_sites:
        built, ctx = await _open_site(spec, site, job, link)
        try:
            result: FLModel = await job.call(site, execute, built, ctx, task.name, task.data)
            return result
        finally:
            del built
            failures = await job.release(site, ctx)
            if failures:
                errors.setdefault(site, failures[0])


def _release(ctx: SiteContext) -> None:
    """End a released site's run on its components (the run's end events, as at the end
    of a run) and let go of them: the caller drops the last references."""
    _end_run(ctx)
    ctx.clear()


def _channel_tls(spec: WorkerSpec) -> Any:
    """The site's TLS credentials from ``tls`` in the spec (a deployed job), else None."""
    files = spec.tls
    if not files:
        return None
    return channel_credentials(files)


def _start_run(ctx: Any) -> None:
    """The run's start events on ``ctx``; what they raise ends the site."""
    ctx.fire_event(EventType.ABOUT_TO_START_RUN)
    ctx.fire_event(EventType.START_RUN)


def _end_run(ctx: Any) -> None:
    """The run's end events on ``ctx``, both fired; a record that cannot be stored fails
    the site's run instead of stopping the end."""
    for event_type in (EventType.ABOUT_TO_END_RUN, EventType.END_RUN):
        try:
            ctx.fire_event(event_type)
        except StorageError as exc:
            ctx.report_failure(exc.message)


def _as_site(site: str, fn: Any, *args: Any) -> Any:
    """``fn(*args)`` on a pool thread named for ``site`` while it runs, so the lines it
    logs go to that site's log."""
    thread = threading.current_thread()
    name, thread.name = thread.name, site_thread_name(site, "main")
    try:
        return fn(*args)
    finally:
        thread.name = name


def execute(built: BuiltSite, ctx: SiteContext, task_name: str, data: FLModel) -> FLModel:
    """Run the task ``task_name`` on ``data`` with the site's executor for it, its task
    filters applied before and after; an error result when no executor handles it or it
    raises."""
    executor = built.executor_for(task_name)
    if executor is None:
        handled = sorted({t for tasks, _ in built.executors for t in tasks})
        return FLModel.error(
            ReturnCode.TASK_UNKNOWN,
            f"unknown task '{task_name}': this site handles {', '.join(handled)}",
        )
    for chain in built.filters:
        if chain.section == "task_data_filters" and applies(chain, task_name):
            for f in chain.filters:
                data = f.process(data, ctx)
    ctx.props["current_task"] = task_name
    round_no = data.meta.get("current_round")
    log.info("%s: task %s%s started", ctx.site_name, task_name,
             f" (round {round_no + 1})" if isinstance(round_no, int) else "")
    started = time.monotonic()
    ctx.fire_event(EventType.BEFORE_TASK_EXECUTION)
    try:
        result = executor.execute(task_name, data, ctx, ctx.abort_signal)
    except Exception as exc:
        log.error("%s: task %s failed:\n%s", ctx.site_name, task_name, traceback.format_exc())
        result = FLModel.error(ReturnCode.EXECUTION_EXCEPTION, f"{type(exc).__name__}: {exc}")
    ctx.fire_event(EventType.AFTER_TASK_EXECUTION)
    log.info("%s: task %s %s in %.2f s%s", ctx.site_name, task_name,
             "done" if result.rc == ReturnCode.OK else f"ended with {result.rc}", time.monotonic() - started,
             task_summary(result))
    for chain in built.filters:
        if chain.section == "task_result_filters" and applies(chain, task_name):
            for f in chain.filters:
                result = f.process(result, ctx)
    # The records the task logged are handed on now, so that they go to the server with
    # its result (one call for both) and are there when the result is.
    for component in built.components.values():
        if isinstance(component, AnalyticsSender) and component.waiting:
            component.flush(HAND_ON_TIMEOUT)
    return result


def task_summary(result: FLModel) -> str:
    """What a site's log says of a task's result: its metrics, steps and error, if any."""
    words = [f"{name} {value:.4g}" if isinstance(value, float) else f"{name} {value}"
             for name, value in result.metrics.items()]
    steps = result.meta.get("NUM_STEPS_CURRENT_ROUND")
    if isinstance(steps, int):
        words.append(f"{steps} step(s)")
    error = result.meta.get("error")
    if error:
        words.append(f"error: {error}")
    return ": " + ", ".join(words) if words else ""


def run_clients(spec: WorkerSpec, sites: list[str]) -> int:
    """Run ``sites`` in this process: one event loop, each site a coroutine on it. Without
    an ``address`` in ``spec``, the server's port is read from its ``port_file`` once this
    process is ready to connect."""
    workspace = Path(spec.workspace)
    errors: dict[str, str] = {}
    for site in sites:
        try:
            add_log_file(spec.run_dir_of(site) / "log.txt", site=site)
        except OSError as exc:
            errors[site] = storage_message(exc, workspace)
    job = ProcessJob(load_plan(spec.plan), slots=spec.threads,
                      shared=len(sites) > 1)
    if spec.address is None:  # started beside the server, ready before it: wait for its port
        port = wait_for_port(Path(spec.port_file), spec.startup_timeout) if spec.port_file else None
        if port is None:
            job.close()
            print("the server did not start listening", file=sys.stderr, flush=True)
            return 1
        spec = spec.with_address(f"127.0.0.1:{port}")

    async def run_all() -> None:
        # Each a task named for its site: its lines, and its link's, go to the site's log.
        await asyncio.gather(*(
            asyncio.get_running_loop().create_task(run_site(spec, site, errors, job),
                                                   name=site_thread_name(site, "main"))
            for site in sites if site not in errors))

    asyncio.run(run_all())
    job.close()
    for site, error in errors.items():
        print(f"{site}: {error}", file=sys.stderr, flush=True)
    return 1 if errors else 0


def _return_memory() -> None:
    """Give freed memory back: torch's cached CUDA blocks, then the C heap's free pages
    (glibc's ``malloc_trim``), so released sites shrink the process, not only its heap."""
    torch = sys.modules.get("torch")
    if torch is not None and torch.cuda.is_initialized():
        torch.cuda.empty_cache()
    # No gc.collect() here: at 512 sites it cost 9 CPU-seconds and freed nothing more
    # (components are freed when their last reference goes; ctx.clear() breaks the
    # cycles through the context).
    if _LIBC is not None:
        _LIBC.malloc_trim(0)


def _load_libc() -> Any:
    """glibc, for ``malloc_trim``; None elsewhere."""
    if not sys.platform.startswith("linux"):
        return None
    try:
        libc = ctypes.CDLL(None)
        return libc if hasattr(libc, "malloc_trim") else None
    except OSError:
        return None


_LIBC = _load_libc()


def _warm_up() -> None:
    """Do once per process, before its first site builds, the imports every site's first
    training step does (the first optimizer imports ``torch._dynamo``), so a thousand sites
    do not queue on the import lock. Sites connect before it: torch is not needed to
    say Hello, and the server's start-up need not compete with it for the cores."""
    import torch

    layer = torch.nn.Linear(1, 1)
    torch.optim.SGD(layer.parameters(), lr=0.1)
