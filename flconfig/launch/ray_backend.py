"""``flconfig launch --backend ray``: the job's sites in Ray actors, placed across a Ray
cluster's nodes by Ray's scheduler; the server stays a process beside the launcher.

An actor hosts a group of sites exactly as a worker process does: it runs the worker's
own entry point (:func:`flconfig.runtime.worker.main`, ``clients``) in the actor's
process, from the plan and spec the launcher sends it (written to a private folder on
the actor's node, so the launcher's control folder need not be shared). The sites write
their run folders under the workspace path on the node that hosts them.

:class:`RayWorker` gives an actor the part of :class:`subprocess.Popen` the launcher's
watch loop uses, so a lost actor or node is reported, and told to the server, by its
sites' names, as a dead process is. Ray itself is imported only here, and only once the
launch asks for it: ``flconfig validate`` and the process backend never import it.
"""

from __future__ import annotations

import contextlib
import importlib.util
import io
import logging
import os
import signal
import socket
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from ..errors import LaunchError
from ..files import write_atomic
from ..runtime.process_events import short_list
from ..runtime.spec import WorkerSpec
from .resources import ActorPlan

log = logging.getLogger(__name__)

#: What ``--backend ray`` says when Ray is not installed.
RAY_MISSING = "--backend ray needs Ray, which is not installed: pip install 'flconfig[ray]'"
#: The exit code of an actor that died (its node lost, killed): as a process killed by SIGKILL.
LOST = -signal.SIGKILL


def ray_installed() -> bool:
    """Whether Ray can be imported here (looked up, not imported)."""
    try:
        return importlib.util.find_spec("ray") is not None
    except (ImportError, ValueError):
        return False


class SiteGroup:
    """The Ray actor hosting a group of sites (made remote by :meth:`RayCluster.start_actors`)."""

    def where(self) -> tuple[str, str]:
        """The IP address and id of the Ray node this actor runs on."""
        import ray

        return ray.util.get_node_ip_address(), ray.get_runtime_context().get_node_id()

    def prepare(self) -> None:
        """Import what the sites need (torch, gRPC, the runtime) while the server starts."""
        import torch  # noqa: F401

        from ..runtime import worker  # noqa: F401  (see run)

    def run(self, spec_json: str, plan_json: str, sites: list[str]) -> tuple[int, str]:
        """Run ``sites`` until the server ends the run, as ``python -m flconfig.runtime.worker
        clients`` would; (exit code, what it wrote to stderr: each failed site's line)."""
        # Here, in the actor's process: the launcher never runs sites, so never pays for gRPC.
        from ..runtime.worker import main

        captured = io.StringIO()
        # The spec holds the sites' tokens: its folder on this node goes with the run.
        with tempfile.TemporaryDirectory(prefix="flconfig-sites-") as tmp:
            folder = Path(tmp)
            plan_file = folder / "plan.json"
            write_atomic(plan_file, plan_json.encode("utf-8"), mode=0o600)
            spec = replace(WorkerSpec.from_json(spec_json), plan=str(plan_file))
            spec_file = spec.write(folder / "spec.json")
            with contextlib.redirect_stderr(captured):
                code = main(["clients", "--spec", str(spec_file), "--sites", ",".join(sites)])
        text = captured.getvalue()
        sys.stderr.write(text)  # into Ray's log of this worker too
        return code, text


class RayWorker:
    """One actor of the launch, watched as a process (``poll``, ``wait``, ``kill``, ...):
    its exit code is the sites' worker's, or :data:`LOST` when the actor died (its node
    lost, or killed); its stderr lines go to ``err_file`` when it ends."""

    stdin = None
    stdout = None

    def __init__(self, actor: Any, plan: ActorPlan, err_file: Path) -> None:
        self._actor = actor
        self.plan = plan
        self.sites = list(plan.sites)
        self.err_file = err_file
        #: Where it runs, once Ray has placed it (see :func:`locate`).
        self.where = actor.where.remote()
        actor.prepare.remote()
        self._run: Any = None
        self.returncode: int | None = None
        self.node_ip = ""
        self.node_id = ""
        #: Why the actor ended without an exit code of its own ("" while it has one).
        self.lost = ""

    @property
    def node(self) -> str:
        """Its node as the launch output names it: ``IP (short id)``."""
        return f"{self.node_ip} ({self.node_id[:8]})" if self.node_ip else "an unknown node"

    def start(self, spec: WorkerSpec, plan_json: str) -> None:
        """Start its sites with ``spec`` (the server's address known) and the run plan."""
        # Its own sites' tokens only: the spec travels through Ray to another node.
        mine = replace(spec, threads=self.plan.threads, port_file=None,
                       credentials={site: spec.credentials[site] for site in self.sites})
        self._run = self._actor.run.remote(mine.to_json(), plan_json, self.sites)

    def poll(self) -> int | None:
        """Its exit code once it has ended, else None."""
        if self.returncode is None and self._run is not None:
            import ray

            ready, _ = ray.wait([self._run], timeout=0)
            if ready:
                self._collect()
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        """Wait until it ends; :class:`subprocess.TimeoutExpired` after ``timeout`` seconds."""
        if self.returncode is None and self._run is not None:
            import ray

            ready, _ = ray.wait([self._run], timeout=timeout)
            if not ready:
                raise subprocess.TimeoutExpired(f"Ray actor of {', '.join(self.sites)}", timeout or 0.0)
            self._collect()
        if self.returncode is None:  # never started, or killed before it did
            self.returncode = LOST
        return self.returncode

    def _collect(self) -> None:
        import ray

        try:
            code, text = ray.get(self._run)
        except ray.exceptions.RayError as exc:
            self.returncode = LOST
            self.lost = self._why_lost(exc)
            return
        self.returncode = int(code)
        with contextlib.suppress(OSError):
            self.err_file.write_text(text)

    def _why_lost(self, exc: Exception) -> str:
        """Why the actor is gone: its node lost (Ray says so, or its raylet no longer
        answers: the actor's calls fail before Ray's health checks mark the node dead), or
        the actor itself died. The actor is killed either way, so a half-broken one cannot
        keep sites the server has given up."""
        import ray

        with contextlib.suppress(Exception):
            ray.kill(self._actor, no_restart=True)
        try:
            node = next((n for n in ray.nodes() if n.get("NodeID") == self.node_id), None)
        except Exception:  # noqa: BLE001 - the reason then comes from the error alone
            node = None
        if node is not None and (not node.get("Alive") or not _answers(
                str(node.get("NodeManagerAddress", "")), int(node.get("NodeManagerPort") or 0))):
            return f"its Ray node {self.node} was lost"
        text = str(exc).strip()
        first = text.split(". ")[0].splitlines()[0][:120] if text else ""
        return f"its Ray actor died ({type(exc).__name__}{': ' + first if first else ''})"

    def send_signal(self, sig: int) -> None:
        """End the actor (Ray kills its process whatever the signal)."""
        if self.returncode is None:
            import ray

            with contextlib.suppress(Exception):
                ray.kill(self._actor, no_restart=True)
            if self._run is None:
                self.returncode = LOST

    def terminate(self) -> None:
        self.send_signal(signal.SIGTERM)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)

    def ended(self, code: int) -> str:
        """The launch output's line for its end with ``code``."""
        sites = short_list(self.sites)
        if self.lost:
            return f"{sites}: {self.lost}"
        return f"the Ray actor of {sites} on {self.node} exited with code {code}"


class RayCluster:
    """Ray for one launch: a local instance it starts (and shuts down at :meth:`close`), or
    the running cluster at ``address`` (``auto`` or ``host:port``), which it leaves up."""

    def __init__(self, address: str | None = None) -> None:
        self.address = address
        self._connected = False

    def connect(self) -> None:
        """Start or join Ray; LaunchError in one line when it cannot be."""
        if not ray_installed():
            raise LaunchError(RAY_MISSING)
        import ray

        # Ray's own lines stay out of the launch output: its workers' output goes to
        # Ray's log files (and each site's lines to its own log in the workspace).
        quiet: dict[str, Any] = {"log_to_driver": False, "logging_level": logging.ERROR,
                                 "configure_logging": True}
        if self.address is not None:
            problem = _unreachable(self.address)
            if problem is not None:
                raise LaunchError(f"cannot start or reach the Ray cluster at {self.address}: {problem}")
        try:
            if self.address is None:
                ray.init(num_cpus=os.cpu_count() or 1, include_dashboard=False, **quiet)
            else:
                ray.init(address=self.address, **quiet)
        except (ConnectionError, RuntimeError, ValueError, OSError) as exc:
            where = f"the Ray cluster at {self.address}" if self.address else "a local Ray instance"
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise LaunchError(f"cannot start or reach {where}: {first}") from None
        self._connected = True
        _keep_ray_errors_out_of_the_output()

    def nodes(self) -> list[tuple[float, float]]:
        """Each live node's CPUs and GPUs."""
        import ray

        return [(float(n.get("Resources", {}).get("CPU", 0.0)), float(n.get("Resources", {}).get("GPU", 0.0)))
                for n in ray.nodes() if n.get("Alive")]

    def server_host(self) -> str:
        """Where the job's server listens so every actor reaches it: loopback for a local
        instance, this node's IP for a cluster."""
        if self.address is None:
            return "127.0.0.1"
        import ray

        return str(ray.util.get_node_ip_address())

    def start_actors(self, plans: Sequence[ActorPlan], control: Path) -> list[RayWorker]:
        """Create one actor per plan, spread over the nodes (Ray's SPREAD strategy); they
        start their processes while the server starts."""
        import ray

        remote = ray.remote(SiteGroup)
        workers = []
        for i, plan in enumerate(plans):
            actor = remote.options(num_cpus=plan.cpus, num_gpus=plan.gpus, scheduling_strategy="SPREAD",
                                   max_restarts=0, name=None).remote()
            workers.append(RayWorker(actor, plan, control / f"worker-{i}.err"))
        return workers

    def close(self) -> None:
        """Disconnect; a local instance this launch started is shut down with its actors."""
        if self._connected:
            import ray

            with contextlib.suppress(Exception):
                ray.shutdown()
            self._connected = False


#: Seconds to wait for a Ray cluster's GCS port to accept a connection.
PROBE_TIMEOUT = 10.0


def _unreachable(address: str) -> str | None:
    """Why nothing answers at the Ray cluster ``address`` (``auto`` or HOST:PORT), or None.
    Checked before Ray tries, which would retry an address where nothing listens for
    minutes, its own C++ lines on stderr; other forms (``ray://``) are left to Ray."""
    target = address
    if address == "auto":
        from ray._private.services import canonicalize_bootstrap_address

        try:
            target = canonicalize_bootstrap_address(address) or ""
        except (ConnectionError, RuntimeError, ValueError) as exc:
            return str(exc).strip().splitlines()[0] if str(exc).strip() else "no running Ray cluster found"
        if not target:
            return "no running Ray cluster found on this machine (start one with: ray start --head)"
    host, sep, port = target.rpartition(":")
    if not sep or not port.isdigit() or "://" in target:
        return None
    refused = _refusal(host.strip("[]"), int(port), PROBE_TIMEOUT)
    return None if refused is None else f"nothing answers at {target} ({refused})"


def _refusal(host: str, port: int, timeout: float) -> str | None:
    """Why nothing accepts a connection at ``host:port`` within ``timeout`` seconds, or
    None when something does."""
    try:
        with socket.create_connection((host, port), timeout=timeout):
            return None
    except OSError as exc:
        return str(exc.strerror or exc)


def _answers(host: str, port: int, timeout: float = 2.0) -> bool:
    """Whether something accepts a connection at ``host:port`` within ``timeout`` seconds."""
    return bool(host and port) and _refusal(host, port, timeout) is None


def _keep_ray_errors_out_of_the_output() -> None:
    """Send the cluster's error messages (a raylet gone, with its last 20 log lines) to this
    module's logger instead of the launch output: Ray's driver prints them on stdout
    whatever ``log_to_driver`` says. The launch says in its own words what was lost."""
    import ray._private.worker as ray_worker

    if not callable(getattr(ray_worker, "print_to_stdstream", None)):
        return  # another Ray: its messages stay as they are

    def to_log(data: dict[str, Any], ignore_prefix: bool = False) -> None:
        for line in data.get("lines", ()):
            log.info("ray (%s): %s", data.get("pid", ""), line)

    ray_worker.print_to_stdstream = to_log


def locate(workers: Sequence[RayWorker], timeout: float) -> None:
    """Learn which node each actor runs on, once Ray has placed them (waiting at most
    ``timeout`` seconds in all); one not placed by then is named "an unknown node"."""
    import ray

    pending = {worker.where: worker for worker in workers}
    ready, _ = ray.wait(list(pending), num_returns=len(pending), timeout=timeout)
    for ref in ready:
        worker = pending[ref]
        try:
            worker.node_ip, worker.node_id = ray.get(ref)
        except ray.exceptions.RayError as exc:  # gone already: the watch loop says how
            log.debug("could not learn where %s runs: %s", worker.sites, exc)


def placement_lines(workers: Sequence[RayWorker]) -> list[str]:
    """One line per actor: its sites and the node they run on (or that they have not
    started yet: Ray is slow to start the actor, or the cluster's resources are taken)."""
    return [f"flconfig: {short_list(w.sites)} on Ray node {w.node}" if w.node_ip else
            f"flconfig: {short_list(w.sites)} not started yet: Ray is still starting its actor, "
            f"or no node has {w.plan.cpus:g} CPU" + (f", {w.plan.gpus:g} GPU" if w.plan.gpus else "")
            + " free"
            for w in workers]

