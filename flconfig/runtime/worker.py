"""The processes ``flconfig launch`` starts: the server, and client workers hosting sites.

    python -m flconfig.runtime.worker server --spec SPEC.json
    python -m flconfig.runtime.worker clients --spec SPEC.json --sites site-1,site-2
    python -m flconfig.runtime.worker tensorboard --logdir DIR --host 127.0.0.1 --port 0

SPEC.json (written by the launcher, readable only by its owner) holds the job
path, workspace, job id, address and every site's token. ``tensorboard`` runs
TensorBoard's own command line (``python -m tensorboard.main ARGS``) in a
process that, like the others, exits when its parent (the launcher) goes
away, so Ctrl-C or a crash leaves no orphans.
"""

from __future__ import annotations

import argparse
import asyncio
import functools
import json
import logging
import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..common.logs import site_thread_name
from ..errors import ConfigError, FlconfigError, JobError, StorageError, storage_message
from ..files import write_atomic
from ..types import EventType, FLModel, ReturnCode
from .logs import add_log_file
from .spec import WorkerSpec, wait_for_port

if TYPE_CHECKING:
    from .build import BuiltSite
    from .context import SiteContext
    from .plan import RunPlan

log = logging.getLogger(__name__)
STATUS_FILE = "status.json"


def _watch_parent() -> None:
    """Exit when the launcher that started us is gone (no orphans)."""
    parent = os.getppid()

    def watch() -> None:
        while True:
            time.sleep(0.5)
            if os.getppid() != parent:
                os._exit(3)

    threading.Thread(target=watch, name="parent-watch", daemon=True).start()


def _set_threads(threads: int) -> None:
    import torch

    torch.set_num_threads(max(1, threads))
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:  # already set once in this process
        pass


#: The server's last line on stdout: its final status as JSON, for the launcher (which
#: does not print it). status.json holds the same, unless the disk is full.
STATUS_MARKER = "@@flconfig-status "


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(data, indent=2).encode("utf-8"))
    except OSError as exc:
        log.error("could not write %s: %s", path, exc)


# --- server ----------------------------------------------------------------------------------


def run_server(spec: WorkerSpec) -> int:
    from ..transport.server import CommServer
    from .build import build_from_plan
    from .context import SiteContext
    from .fed_events import records_to_events
    from .live_metrics import LiveMetrics
    from .plan import load_plan
    from .process_events import SiteProcesses

    workspace = Path(spec.workspace)
    job_id = spec.job_id
    run_dir = spec.run_dir_of("server")
    started = time.monotonic()
    status: dict[str, Any] = {"ok": False}
    try:
        add_log_file(run_dir / "log.txt", default="server")
    except OSError as exc:
        status = {"ok": False, "site": "server", "error": storage_message(exc, workspace)}
        print(STATUS_MARKER + json.dumps(status), flush=True)
        return 1

    def progress(message: str) -> None:
        print(f"[{time.monotonic() - started:6.1f}s] {message}", flush=True)
        log.info(message)

    comm = None
    ctx = None
    deaths: SiteProcesses | None = None  # what the launcher says of the sites' processes
    # The latest value of each site's scalars, printed every few seconds; 0 turns it off.
    interval = spec.live_metrics_interval
    live = LiveMetrics(progress, interval) if interval else None
    try:
        run_plan = load_plan(spec.plan)
        built = build_from_plan(run_plan, "server")
        ctx = SiteContext(
            "server",
            job_id,
            workspace,
            built.components,
            [*built.handlers, live] if live is not None else built.handlers,
            role="server",
            progress=progress,
            client_sites=spec.sites,
            run_dir=run_dir,
            outside_files=built.plan.outside_files,
        )
        ctx.props["job_name"] = run_plan.job  # the job's name (meta), for what components write

        storage_said: list[str] = []

        def on_events(site: str, records: list[dict[str, Any]]) -> None:
            events = records_to_events(records, site)
            try:
                for event_type, data in events:
                    ctx.deliver_fed_event(event_type, data, site)
            except StorageError as exc:
                if exc.message not in storage_said:  # once per cause, in the terminal
                    storage_said.append(exc.message)
                    progress(f"records not written: {exc.message}; the sites keep them and "
                             "send them again")
                raise
            if live is not None:
                live.observe(site, events)

        tls, peer_check = _server_tls(spec)
        comm = CommServer(
            spec.credentials,
            host=spec.host,
            port=spec.port,
            server_credentials=tls,
            peer_check=peer_check,
            heartbeat_timeout=spec.heartbeat_timeout,
            on_events=on_events,
            on_site_lost=lambda site: progress(f"lost contact with {site}"),
            on_site_failed=lambda site, reason: ctx.abort_signal.trigger(f"{site} failed: {reason}"),
        )
        comm.start()
        ctx.comm = FilteredComm(comm, built.filters, ctx) if built.filters else comm
        if spec.port_file:
            port_file = Path(spec.port_file)
            port_file.with_suffix(".tmp").write_text(str(comm.port))
            port_file.with_suffix(".tmp").replace(port_file)  # whole, for the workers polling it
        sites = spec.sites
        need = min(len(sites), spec.min_clients or len(sites))
        deaths = SiteProcesses(comm, progress, ctx.abort_signal, sites, need)
        if spec.process_events:  # the launcher says at once when a site's process dies
            deaths.listen(open(0, encoding="utf-8", errors="replace", closefd=False))  # noqa: SIM115
        progress(
            f"server listening on {comm.address}{' (mutual TLS)' if tls else ''}; waiting for {need} of {len(sites)} sites"
        )
        joined = comm.wait_for_sites(len(sites), timeout=spec.startup_timeout)
        for failed, reason in comm.failed_sites().items():
            raise JobError(f"failed: {reason}", failed)
        if len(joined) < need:
            missing = [s for s in sites if s not in joined]
            raise JobError(
                f"only {len(joined)} of {need} sites connected: missing "
                + ", ".join(s if deaths.reason(s) is None else f"{s} (its process died: {deaths.reason(s)})"
                            for s in missing)
            )
        progress(f"{len(joined)} sites connected: {_short_list(joined)}")
        deaths.started()
        if live is not None:
            live.start()
        ctx.fire_event(EventType.ABOUT_TO_START_RUN)
        ctx.fire_event(EventType.START_RUN)
        for workflow in built.workflows:
            if ctx.abort_signal.triggered:
                break
            name = getattr(workflow, "id", type(workflow).__name__)
            progress(f"workflow {name} ({type(workflow).__name__}) started")
            workflow.start_controller(ctx)
            try:
                workflow.control_flow(ctx.abort_signal, ctx)
            finally:
                workflow.stop_controller(ctx)
            progress(f"workflow {name} done")
        deaths.ended()
        if deaths.failure is not None:
            raise JobError(deaths.failure[1])  # the status says it, below
        for failed, reason in comm.failed_sites().items():
            raise JobError(f"failed: {reason}", failed)
        status = {"ok": True}
    except OSError as exc:  # the workspace: a full disk, a folder that cannot be made
        status = {"ok": False, "site": "server", "error": storage_message(exc, workspace)}
        log.error("job failed: %s", exc)
    except ConfigError as exc:
        status = {"ok": False, "site": "server", "error": str(exc)}
    except FlconfigError as exc:
        site = getattr(exc, "site", None)
        error = getattr(exc, "message", None) if site else None
        status = {"ok": False, "site": site or "server", "error": error or str(exc)}
        if deaths is not None and deaths.failure is not None:
            # A site's process died and too few are left: that is why, whatever the
            # workflow made of it (a round that could no longer get its results).
            status = {"ok": False, "site": deaths.failure[0], "error": deaths.failure[1]}
        log.error("job failed: %s", exc)
    except Exception as exc:  # a component's bug: keep the traceback in the log, say what in status
        log.error("job failed:\n%s", traceback.format_exc())
        status = {"ok": False, "site": "server", "error": f"{type(exc).__name__}: {exc}"}
    finally:
        if deaths is not None:
            deaths.ended()
        if ctx is not None:
            ctx.fire_event(EventType.ABOUT_TO_END_RUN)
        if comm is not None:
            missing = comm.end_run(timeout=spec.end_timeout)
            if missing:
                progress(f"sites that did not finish cleanly: {', '.join(missing)}")
        if ctx is not None:
            try:
                ctx.fire_event(EventType.END_RUN)
            except StorageError as exc:
                ctx.report_failure(exc.message)
        if comm is not None:
            comm.stop()
            if comm.refused_calls:
                progress(f"refused {comm.refused_calls} call(s) without valid site credentials "
                         "(see the server log)")
        if live is not None:
            live.stop()  # already stopped by END_RUN unless the job failed before it
        if status["ok"]:
            # Records that could not be written fail the run, loudly, even if training finished.
            problem = (comm.storage_error if comm is not None else None) or next(
                iter([*(comm.failures if comm is not None else []),
                      *(ctx.failures if ctx is not None else [])]), None)
            if problem is not None:
                status = {"ok": False, "site": "server", "error": problem}
        status["elapsed_s"] = round(time.monotonic() - started, 2)
        _write_json(run_dir / STATUS_FILE, status)
        print(STATUS_MARKER + json.dumps(status), flush=True)
    return 0 if status["ok"] else 1


def _server_tls(spec: WorkerSpec) -> tuple[Any, Any]:
    """With ``tls`` in the spec (a deployed job): the server's credentials and its
    certificate check (:func:`flconfig.transport.tls.job_server_tls`); else (None, None)."""
    files = spec.tls
    if not files:
        return None, None
    from ..transport.tls import job_server_tls

    return job_server_tls(files)


def _short_list(names: list[str], limit: int = 8) -> str:
    names = sorted(names, key=lambda n: (len(n), n))
    if len(names) <= limit:
        return ", ".join(names)
    return f"{', '.join(names[:limit])} and {len(names) - limit} more"


# --- clients ---------------------------------------------------------------------------------


class _ProcessJob:
    """The run plan, read once per worker process and shared by its sites, and the
    process's training threads.

    The sites are coroutines on the process's event loop; everything that runs a
    component (building, events, tasks) runs on the training threads, never on the
    loop, so one site's work never stalls another site's link.
    """

    def __init__(self, plan: RunPlan, slots: int = 1, shared: bool = False) -> None:
        from concurrent.futures import ThreadPoolExecutor

        self._plan = plan
        # Threads are started as tasks come, at most ``slots``.
        self._pool = ThreadPoolExecutor(max(1, slots), thread_name_prefix="flconfig-train")
        self._lock = threading.Lock()
        self._warm = False
        #: Whether the process's sites share one gRPC channel (more than one site).
        self.shared = shared

    async def call(self, site: str, fn: Any, *args: Any) -> Any:
        """Run ``fn(*args)`` for ``site`` on the process's training threads (one per core
        given to the process) and return its result. A thousand sites training at once
        would only fight over the cores; on a few threads that do all the training,
        torch's and the allocator's memory is reused instead of held once per site."""
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(self._pool, _as_site, site, fn, *args)

    def close(self) -> None:
        self._pool.shutdown(wait=False)

    async def build(self, site: str) -> Any:
        """Build ``site``'s components from the plan (one site at a time; the first also
        does the process's heavy imports, see :func:`_warm_up`)."""
        return await self.call(site, self._build, site)

    def _build(self, site: str) -> Any:
        from .build import build_from_plan

        with self._lock:
            if not self._warm:
                _warm_up()
                self._warm = True
            return build_from_plan(self._plan, site)


async def run_site(spec: WorkerSpec, site: str, errors: dict[str, str],
                   job: _ProcessJob) -> None:
    """Run one client site, a coroutine on the worker's loop, until the server ends the run."""
    from ..transport.link import SiteLink, Task
    from .context import SiteContext
    from .fed_events import event_to_records

    workspace = Path(spec.workspace)
    job_id = spec.job_id
    link = None
    ctx = None
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
        # still import torch and build their components, instead of after it.
        await link.connect(timeout=spec.startup_timeout)
        try:
            built: BuiltSite = await job.build(site)
        except Exception as exc:
            # Tell the server at once, so the run fails now, naming this site and the cause.
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
            link = None
            raise
        sink = link.send_events
        ctx = await job.call(
            site,
            functools.partial(
                SiteContext,
                site,
                job_id,
                workspace,
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
        while True:
            task = await link.get_task()
            if task is None:
                continue
            if not isinstance(task, Task):
                break  # the server ended the run
            result = await job.call(site, _execute, built, ctx, task.name, task.data)
            await link.submit_result(task, result)
            # Not held while the site waits for its next task: a thousand sites would
            # each keep a copy of the global model and of their result.
            del task, result
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


def _channel_tls(spec: WorkerSpec) -> Any:
    """The site's TLS credentials from ``tls`` in the spec (a deployed job), else None."""
    files = spec.tls
    if not files:
        return None
    from ..transport.tls import channel_credentials

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


def _execute(built: BuiltSite, ctx: SiteContext, task_name: str, data: FLModel) -> FLModel:
    executor = built.executor_for(task_name)
    if executor is None:
        handled = sorted({t for tasks, _ in built.executors for t in tasks})
        return FLModel.error(
            ReturnCode.TASK_UNKNOWN,
            f"unknown task '{task_name}': this site handles {', '.join(handled)}",
        )
    for chain in built.filters:
        if chain.section == "task_data_filters" and _applies(chain, task_name):
            for f in chain.filters:
                data = f.process(data, ctx)
    ctx.props["current_task"] = task_name
    ctx.fire_event(EventType.BEFORE_TASK_EXECUTION)
    try:
        result = executor.execute(task_name, data, ctx, ctx.abort_signal)
    except Exception as exc:
        log.error("%s: task %s failed:\n%s", ctx.site_name, task_name, traceback.format_exc())
        result = FLModel.error(ReturnCode.EXECUTION_EXCEPTION, f"{type(exc).__name__}: {exc}")
    ctx.fire_event(EventType.AFTER_TASK_EXECUTION)
    for chain in built.filters:
        if chain.section == "task_result_filters" and _applies(chain, task_name):
            for f in chain.filters:
                result = f.process(result, ctx)
    return result


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
            if chain.section == section and _applies(chain, task_name):
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


def _applies(chain: Any, task_name: str) -> bool:
    import fnmatch

    return any(
        t == task_name or ("*" in t and fnmatch.fnmatchcase(task_name, t)) for t in chain.tasks
    )


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
    from .plan import load_plan

    job = _ProcessJob(load_plan(spec.plan), slots=spec.threads,
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


# --- tensorboard -----------------------------------------------------------------------------


def run_tensorboard(argv: list[str]) -> int:
    """Serve TensorBoard with its own command line ``argv`` until stopped."""
    from tensorboard.main import run_main

    sys.argv = ["tensorboard", *argv]
    run_main()  # exits through absl's app.run
    return 0


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["tensorboard"]:
        _watch_parent()
        return run_tensorboard(argv[1:])
    parser = argparse.ArgumentParser(prog="python -m flconfig.runtime.worker")
    parser.add_argument("role", choices=("server", "clients"))
    parser.add_argument("--spec", required=True)
    parser.add_argument("--sites", default="")
    ns = parser.parse_args(argv)
    _watch_parent()
    from ..compat import install

    # The job's code here talks to this process's site or server: its 'import nvflare' is
    # flconfig's FLARE API, FLARE installed or not (FLARE's own would find no FLARE runtime).
    install(force=True)
    try:
        spec = WorkerSpec.load(ns.spec)
    except JobError as exc:
        print(f"flconfig worker: {exc}", file=sys.stderr, flush=True)
        return 2
    _set_threads(spec.threads)
    if ns.role == "server":
        return run_server(spec)
    return run_clients(spec, [s for s in ns.sites.split(",") if s])


def _warm_up() -> None:
    """Do once per process, before its first site builds, the imports every site's first
    training step does (the first optimizer imports ``torch._dynamo``), so a thousand sites
    do not queue on the import lock. Sites connect before it: torch is not needed to
    say Hello, and the server's start-up need not compete with it for the cores."""
    import torch

    layer = torch.nn.Linear(1, 1)
    torch.optim.SGD(layer.parameters(), lr=0.1)


def _exit(code: int) -> None:
    """Exit once the logs and output are flushed, skipping the interpreter's teardown: a
    worker's files are all written and closed by now, and torch's exit handlers alone
    take seconds of CPU (undoing thousands of operator registrations) that the sites
    still finishing in other processes would rather have."""
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        try:
            stream.flush()
        except (OSError, ValueError):
            pass
    os._exit(code)


if __name__ == "__main__":
    _exit(main())
