"""FLARE's ``nvflare.recipe.poc_env``: ``PocEnv``, a recipe's job on a POC of this machine.

``deploy`` prepares a POC (``flconfig poc prepare``) for the job's sites when there is none
fit for it, starts it when it is not running (``flconfig poc start``: it returns once every
site is connected), checks the job and submits it with the POC's admin kit; the result is
the job's files, downloaded into the admin kit's ``transfer/`` folder once it has ended.
``stop`` stops the POC (its folder is kept).
"""

from __future__ import annotations

from typing import Any

from ...jobapi.running import checking_only, services
from .prod_env import KitEnv


class PocEnv(KitEnv):
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

        self.kit = services().poc_admin_kit()

    def deploy(self, job: Any) -> str:
        if checking_only():  # nothing of the POC is prepared or started
            return super().deploy(job)
        services().poc_up(self.clients)
        return super().deploy(job)

    def stop(self, clean_up: bool = False) -> None:
        if checking_only():
            return
        services().poc_down()
