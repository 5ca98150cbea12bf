"""The job's server process: it listens for the sites, runs the workflows, and says how it ended.

:func:`run_server` is what ``python -m flconfig.runtime.worker server --spec SPEC.json``
runs (see :mod:`flconfig.runtime.worker`). Its final status is written to ``status.json``
in its run folder and printed as the last line of its output after
:data:`~flconfig.runtime.spec.STATUS_MARKER`, for the launcher. Its live events (what
the sites do, rounds, metrics: :mod:`flconfig.runtime.live_events`) are lines of its
output too, after :data:`~flconfig.runtime.live_events.EVENT_MARKER`.
"""

from __future__ import annotations

import json
import logging
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import Any

from ..errors import ConfigError, FlconfigError, JobError, StorageError, storage_message
from ..files import write_atomic
from ..transport.server import CommServer
from ..transport.tls import job_server_tls
from ..types import EventType
from .build import build_from_plan
from .context import SiteContext
from .fed_events import records_to_events
from .filters import FilteredComm
from .live_events import LiveEvents, event_line
from .live_metrics import LiveMetrics
from .logs import add_log_file
from .plan import load_plan
from .process_events import SiteProcesses, short_list
from .spec import STATUS_FILE, STATUS_MARKER, WorkerSpec

log = logging.getLogger(__name__)


def _write_json(path: Path, data: dict[str, Any]) -> None:
    try:
        write_atomic(path, json.dumps(data, indent=2).encode("utf-8"))
    except OSError as exc:
        log.error("could not write %s: %s", path, exc)


def run_server(spec: WorkerSpec) -> int:
    """Run the job's server until its workflows end; 0 when the run succeeded. Its final
    status goes to ``status.json`` in its run folder and, as the last line, to stdout."""
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

    said = threading.Lock()  # one line at a time: progress and live events share stdout

    def say(line: str) -> None:
        # One write per line: print() writes the text and its newline apart, and the live
        # metrics' thread printing between them ran two lines together.
        with said:
            sys.stdout.write(line)
            sys.stdout.flush()

    def progress(message: str) -> None:
        say(f"[{time.monotonic() - started:6.1f}s] {message}\n")
        log.info(message)

    comm = None
    ctx = None
    deaths: SiteProcesses | None = None  # what the launcher says of the sites' processes
    # The latest value of each site's scalars, printed every few seconds (0: never), and
    # sent as live events with what each site does.
    interval = spec.live_metrics_interval
    live = LiveMetrics(progress if interval else None, interval or 2.0)
    live_events = LiveEvents(lambda event: say(event_line(event)), len(spec.sites), live.take_changed)
    try:
        run_plan = load_plan(spec.plan)
        built = build_from_plan(run_plan, "server")
        ctx = SiteContext(
            "server",
            job_id,
            workspace,
            built.components,
            [*built.handlers, live, live_events],
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
            live.observe(site, events)
            live_events.count_records(len(records))

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
        say(event_line({"event": "listening", "address": comm.address, "need": need, "of": len(sites)}))
        live_events.watch(comm.activity)
        live_events.start()
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
        progress(f"{len(joined)} sites connected: {short_list(joined)}")
        live_events.snapshot()  # the view says so before the first round
        deaths.started()
        live.start()
        ctx.fire_event(EventType.ABOUT_TO_START_RUN)
        ctx.fire_event(EventType.START_RUN)
        for workflow in built.workflows:
            if ctx.abort_signal.triggered:
                break
            name = getattr(workflow, "id", type(workflow).__name__)
            progress(f"workflow {name} ({type(workflow).__name__}) started")
            say(event_line({"event": "workflow", "name": name, "kind": type(workflow).__name__,
                            "state": "started"}))
            workflow.start_controller(ctx)
            try:
                workflow.control_flow(ctx.abort_signal, ctx)
            finally:
                workflow.stop_controller(ctx)
            progress(f"workflow {name} done")
            say(event_line({"event": "workflow", "name": name, "kind": type(workflow).__name__,
                            "state": "done"}))
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
        live.stop()  # already stopped by END_RUN unless the job failed before it
        live_events.stop()  # the sites' last states (done, after their Bye) and metrics
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
    return job_server_tls(files)
