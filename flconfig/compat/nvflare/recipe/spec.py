"""FLARE's ``nvflare.recipe.spec``: ``Recipe``, a ready-made job, and ``ExecEnv``, where it runs.

A recipe builds a :class:`~flconfig.compat.nvflare.job_config.api.FedJob`; ``export(dir)``
writes it as a job folder, ``run(env)`` checks it and runs it in ``env`` (``SimEnv``: the
launcher; ``PocEnv``: a POC; ``ProdEnv``: a deployed server) and ``execute(env)`` does
the same, unless the command line asked for ``--export [--export-dir DIR]``: then it
exports the job there and exits, as FLARE does.

``--export`` and ``--export-dir`` are taken from ``sys.argv`` when this module is first
imported, so that the script's own argument parser does not see them; unlike FLARE,
flconfig says so in one line on stderr.
"""

from __future__ import annotations

import contextlib
import sys
from abc import ABC, abstractmethod
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from ...jobapi.checking import check, say_problems
from ...jobapi.standins import make
from ..job_config.api import FedJob
from ..job_config.defs import ALL_SITES, SERVER_SITE_NAME, FilterType
from .run import Run

#: Where ``--export`` writes when ``--export-dir`` is not given (relative to the working folder).
DEFAULT_EXPORT_DIR = "./fl_job"


def _consume_recipe_args(argv: list[str]) -> tuple[bool, str]:
    """Take ``--export``, ``--export-dir X`` and ``--export-dir=X`` out of ``argv`` (in place);
    ``(export asked, export dir)``."""
    export, folder, rest, taken = False, DEFAULT_EXPORT_DIR, [], []
    i = 1
    while i < len(argv):
        arg = argv[i]
        if arg == "--export":
            export = True
            taken.append(arg)
        elif arg == "--export-dir":
            if i + 1 >= len(argv):  # dangling: left for the script's parser, export off
                return False, DEFAULT_EXPORT_DIR
            folder = argv[i + 1]
            taken += [arg, argv[i + 1]]
            i += 1
        elif arg.startswith("--export-dir="):
            folder = arg.split("=", 1)[1]
            taken.append(arg)
        else:
            rest.append(arg)
        i += 1
    if taken:
        argv[1:] = rest
        print(f"flconfig: {' '.join(taken)} taken by FLARE's recipe API ("
              + (f"execute() exports the job to {folder} instead of running it" if export else
                 "--export-dir without --export exports nothing")
              + "); the script's own arguments are: " + (" ".join(rest) or "(none)"), file=sys.stderr)
    return export, folder


_EXPORT, _EXPORT_DIR = _consume_recipe_args(sys.argv)


def export_asked() -> tuple[bool, str]:
    """Whether the command line asked for ``--export``, and where to."""
    return _EXPORT, _EXPORT_DIR


class ExecEnv(ABC):
    """Where a recipe's job runs: it deploys a job and answers for it."""

    def __init__(self, extra: dict[str, Any] | None = None) -> None:
        self.extra = dict(extra or {})

    @abstractmethod
    def deploy(self, job: FedJob) -> str:
        """Check and start ``job``; its id."""

    @abstractmethod
    def get_job_status(self, job_id: str) -> str | None:
        """The job's state."""

    @abstractmethod
    def abort_job(self, job_id: str) -> None:
        """Abort the job."""

    @abstractmethod
    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        """Where the job's results are (waiting up to ``timeout`` seconds where it runs on)."""

    def stop(self, clean_up: bool = False) -> None:  # noqa: B027 - optional, as in FLARE
        """Release what the environment started (nothing, unless an environment says so)."""

    def get_extra_prop(self, name: str, default: Any = None) -> Any:
        return self.extra.get(name, default)


class Recipe:
    """A job built from a few arguments (see the module docstring)."""

    def __init__(self, job: FedJob) -> None:
        self._job = job
        self.name = job.name
        self._per_site: dict[str, dict[str, Any]] = {}
        self._client_apps_prepared = False
        self._cse_added = False

    # FLARE 2.7 and 2.8 named it ``job``; 2.9 ``_job``: both work here.
    @property
    def job(self) -> FedJob:
        return self._job

    # -- running -----------------------------------------------------------------------------

    def export(self, job_dir: str, server_exec_params: dict[str, Any] | None = None,
               client_exec_params: dict[str, Any] | None = None, env: ExecEnv | None = None) -> str:
        """Write the job folder ``job_dir/<name>``, then check it (its problems are printed
        at the script's lines); the folder."""

        with self._exec_params(server_exec_params, client_exec_params):
            self._prepare()
            folder, provenance, problems = self._job.write(Path(job_dir))
        say_problems(check(folder, provenance, problems))
        return str(folder)

    def run(self, env: ExecEnv, server_exec_params: dict[str, Any] | None = None,
            client_exec_params: dict[str, Any] | None = None) -> Any:
        """Check the job and run it in ``env``; its :class:`~flconfig.compat.nvflare.recipe.run.Run`."""

        with self._exec_params(server_exec_params, client_exec_params):
            self._prepare()
            self.process_env(env)
            job_id = env.deploy(self._job)
        return Run(env, job_id)

    def execute(self, env: ExecEnv, server_exec_params: dict[str, Any] | None = None,
                client_exec_params: dict[str, Any] | None = None) -> Any:
        """:meth:`run`; with ``--export`` on the command line, :meth:`export` and exit."""
        export, folder = export_asked()
        if export:
            written = self.export(folder, server_exec_params, client_exec_params, env)
            print(f"Job exported to: {written}")
            raise SystemExit(0)
        return self.run(env, server_exec_params, client_exec_params)

    def _prepare(self) -> None:
        self._prepare_client_apps()
        self.finalize()

    def process_env(self, env: ExecEnv) -> None:
        """A hook: adjust the job to the environment."""

    def finalize(self) -> None:
        """A hook: complete the job before it is written."""

    @contextlib.contextmanager
    def _exec_params(self, server: dict[str, Any] | None, client: dict[str, Any] | None) -> Iterator[None]:
        """The exec params of one export or run (an explicit ``{}`` clears them for it)."""
        self._prepare_client_apps()
        saved = {t: dict(a.params) for t, a in self._job._apps.items()}
        try:
            for target, given in [(SERVER_SITE_NAME, server)] + [(t, client) for t in self._client_targets()]:
                if given is not None and target in self._job._apps:
                    app = self._job._apps[target]
                    app.params = {**app.params, **given} if given else {}
            yield
        finally:
            for target, params in saved.items():
                self._job._apps[target].params = params

    # -- client apps -------------------------------------------------------------------------

    def _client_targets(self) -> list[str]:
        return list(self._per_site) or [ALL_SITES]

    def _prepare_client_apps(self) -> None:
        if not self._client_apps_prepared:
            self._client_apps_prepared = True
            self.prepare_client_apps()

    def prepare_client_apps(self) -> None:
        """A hook: add the clients' executors (after per-site configuration is known)."""

    def _add_to_client_apps(self, obj: Any, clients: list[str] | None = None, **kwargs: Any) -> list[Any]:
        if clients is not None:
            if not isinstance(clients, list) or not clients:
                raise ValueError("clients must be a non-empty list of site names")
            if not self._per_site:
                raise ValueError("cannot target specific clients: the recipe's client app is @ALL "
                                 "(call set_per_site_config first)")
            unknown = [c for c in clients if c not in self._per_site]
            if unknown:
                raise ValueError(f"no per-site app for {', '.join(unknown)}")
        self._prepare_client_apps()
        return [self._job.to(obj, target, **kwargs) for target in (clients or self._client_targets())]

    def set_per_site_config(self, config: dict[str, dict[str, Any]]) -> None:
        """Per-site overrides (the recipe's meaning): one client app per listed site."""
        if self._per_site:
            raise RuntimeError("set_per_site_config may be called once")
        if self._client_apps_prepared:
            raise RuntimeError("set_per_site_config must come before any client-side customization")
        if not isinstance(config, dict) or not config or not all(
                isinstance(k, str) and isinstance(v, dict) for k, v in config.items()):
            raise ValueError("per-site config must be a non-empty dict of site name -> dict")
        bad = [k for k in config if k in (SERVER_SITE_NAME, ALL_SITES)]
        if bad:
            raise ValueError(f"per-site config names {bad[0]!r}, which is no client site")
        self._per_site = {k: dict(v) for k, v in config.items()}

    def configured_sites(self) -> list[str]:
        return list(self._per_site)

    # -- adders ------------------------------------------------------------------------------

    def add_client_input_filter(self, filter: Any, tasks: list[str] | None = None,  # noqa: A002
                                clients: list[str] | None = None) -> None:
        self._add_to_client_apps(filter, clients, filter_type=FilterType.TASK_DATA, tasks=tasks or ["*"])

    def add_client_output_filter(self, filter: Any, tasks: list[str] | None = None,  # noqa: A002
                                 clients: list[str] | None = None) -> None:
        self._add_to_client_apps(filter, clients, filter_type=FilterType.TASK_RESULT, tasks=tasks or ["*"])

    def add_server_input_filter(self, filter: Any, tasks: list[str] | None = None) -> None:  # noqa: A002
        self._job.to(filter, SERVER_SITE_NAME, filter_type=FilterType.TASK_RESULT, tasks=tasks or ["*"])

    def add_server_output_filter(self, filter: Any, tasks: list[str] | None = None) -> None:  # noqa: A002
        self._job.to(filter, SERVER_SITE_NAME, filter_type=FilterType.TASK_DATA, tasks=tasks or ["*"])

    def add_client_config(self, config: dict[str, Any], clients: list[str] | None = None) -> None:
        if not isinstance(config, dict):
            raise TypeError("config must be a dict")
        self._add_to_client_apps(dict(config), clients)

    def add_server_config(self, config: dict[str, Any]) -> None:
        if not isinstance(config, dict):
            raise TypeError("config must be a dict")
        self._job.to(dict(config), SERVER_SITE_NAME)

    def add_client_file(self, file_path: str, clients: list[str] | None = None) -> None:
        if not isinstance(file_path, str):
            raise TypeError("file_path must be a str")
        self._add_to_client_apps(file_path, clients)

    def add_server_file(self, file_path: str) -> None:
        if not isinstance(file_path, str):
            raise TypeError("file_path must be a str")
        self._job.to(file_path, SERVER_SITE_NAME)

    def enable_log_streaming(self, *file_names: str) -> None:
        """Each site's log streamed to the server (FLARE's JobLogStreamer / JobLogReceiver)."""

        for name in file_names or ("log.json",):
            self._add_to_client_apps(make("nvflare.app_common.logging.job_log_streamer.JobLogStreamer",
                                          kind="widget", log_file_name=name))
        self._job.to_server(make("nvflare.app_common.logging.job_log_receiver.JobLogReceiver", kind="widget"))

    def enable_tensor_streaming(self, format: str = "pytorch", tasks: list[str] | None = None,  # noqa: A002
                                tensor_send_timeout: float = 30.0,
                                wait_send_task_data_all_clients_timeout: float = 300.0) -> None:
        """FLARE's tensor streaming (flconfig's transport streams large models in chunks itself)."""

        server = make("nvflare.app_opt.tensor_stream.server.TensorServerStreamer", kind="widget", format=format,
                      tasks=tasks, tensor_send_timeout=tensor_send_timeout,
                      wait_send_task_data_all_clients_timeout=wait_send_task_data_all_clients_timeout)
        self._job.to_server(server, id="tensor_server_streamer")
        client = make("nvflare.app_opt.tensor_stream.client.TensorClientStreamer", kind="widget", format=format,
                      tasks=tasks, tensor_send_timeout=tensor_send_timeout)
        self._add_to_client_apps(client, id="tensor_client_streamer")

    def add_decomposers(self, decomposers: list[Any]) -> None:
        names = [d if isinstance(d, str) else f"{type(d).__module__}.{type(d).__name__}" for d in decomposers]
        register = make("nvflare.app_common.widgets.decomposer_reg.DecomposerRegister", kind="widget",
                        classes=names)
        self._job.to_server(register, id="decomposer_reg")
        self._add_to_client_apps(register, id="decomposer_reg")
