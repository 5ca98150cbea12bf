"""FLARE's ``nvflare.recipe.poc_env``: ``PocEnv``, a recipe's job on a POC of this machine.

``deploy`` prepares a POC (``flconfig poc prepare``) for the job's sites when there is none
fit for it, starts it when it is not running (``flconfig poc start``: it returns once every
site is connected), checks the job and submits it with the POC's admin kit; the result is
the job's files, downloaded into the admin kit's ``transfer/`` folder once it has ended.
``stop`` stops the POC (its folder is kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .spec import ExecEnv


class PocEnv(ExecEnv):
    """See the module docstring (FLARE 2.9's signature; ``gpu_ids``, ``use_he``,
    ``docker_image`` and ``project_conf_path`` are not used by flconfig's POC)."""

    def __init__(self, *, num_clients: int = 2, clients: list[str] | None = None, gpu_ids: list[int] | None = None,
                 use_he: bool = False, docker_image: str | None = None, project_conf_path: str = "",
                 username: str = "admin@nvidia.com", study: str = "default",
                 extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)
        if clients is not None and not clients:
            raise ValueError("clients must not be empty")
        if clients and num_clients and num_clients != 2 and num_clients != len(clients):
            raise ValueError(f"num_clients ({num_clients}) and the clients given ({len(clients)}) disagree")
        if use_he or docker_image:
            raise ValueError("flconfig's POC runs without homomorphic encryption and docker")
        self.clients = list(clients) if clients else [f"site-{i}" for i in range(1, num_clients + 1)]
        self.username = username
        self.study = study
        from ....deploy.poc import poc_dir

        self.folder = poc_dir(None)

    @property
    def kit(self) -> Path:
        from ....deploy.poc import ADMIN

        return self.folder / ADMIN

    def deploy(self, job: Any) -> str:
        from ....deploy import poc
        from ...jobapi.running import checking_only, submit
        from ...jobapi.writer import staged

        if checking_only():  # nothing of the POC is prepared or started
            with staged(job) as (folder, provenance, problems):
                return submit(folder, provenance, problems, self.kit)
        prepared = (self.folder / poc.SERVER).is_dir() and sorted(poc.sites_of(self.folder)) == sorted(self.clients)
        if not prepared:  # none, or one of other sites: made afresh for this job's sites
            if poc.running(self.folder):
                poc.stop(self.folder)
            poc.prepare(self.folder, len(self.clients), port=0, force=True, sites=self.clients)
            print(f"flconfig: POC prepared in {self.folder}: {', '.join(self.clients)}")
        if not poc.running(self.folder):
            started = poc.start(self.folder)
            print(f"flconfig: POC started: {', '.join(started)}")
        with staged(job) as (folder, provenance, problems):
            return submit(folder, provenance, problems, self.kit)

    def get_job_status(self, job_id: str) -> str | None:
        from ...jobapi.running import FLARE_STATUS, job_state

        state = job_state(self.kit, job_id).get("state")
        return FLARE_STATUS.get(state, state) if state else None

    def abort_job(self, job_id: str) -> None:
        from ...jobapi.running import abort

        abort(self.kit, job_id)

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        from ...jobapi.running import wait_and_download

        found = wait_and_download(self.kit, job_id, self.kit / "transfer", timeout)
        return str(found) if found is not None else None

    def stop(self, clean_up: bool = False) -> None:
        from ....deploy import poc
        from ...jobapi.running import checking_only

        if checking_only():
            return

        stopped = poc.stop(self.folder)
        if stopped:
            print(f"flconfig: POC stopped: {', '.join(stopped)}")
