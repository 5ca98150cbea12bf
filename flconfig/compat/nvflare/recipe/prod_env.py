"""FLARE's ``nvflare.recipe.prod_env``: ``ProdEnv``, a recipe's job on a deployed server.

``startup_kit_location`` is an admin's startup kit (from ``flconfig provision``); the job is
checked here, then submitted with it (``flconfig submit``); the result is the job's files,
downloaded into the kit's ``transfer/`` folder once the job has ended.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from ...jobapi.running import (
    FLARE_STATUS,
    abort,
    checking_only,
    job_state,
    submit,
    wait_and_download,
)
from ...jobapi.writer import staged
from .spec import ExecEnv


class KitEnv(ExecEnv):
    """An environment whose jobs go to a server with an admin's kit (``self.kit``): checked
    here, submitted, asked after, aborted, and downloaded into the kit's ``transfer/`` folder."""

    kit: Path

    def deploy(self, job: Any) -> str:
        with staged(job) as (folder, provenance, problems):
            return submit(folder, provenance, problems, self.kit)

    def get_job_status(self, job_id: str) -> str | None:
        state = job_state(self.kit, job_id).get("state")
        return FLARE_STATUS.get(state, state) if state else None

    def abort_job(self, job_id: str) -> None:
        abort(self.kit, job_id)

    def get_job_result(self, job_id: str, timeout: float = 0.0) -> str | None:
        found = wait_and_download(self.kit, job_id, self.kit / "transfer", timeout)
        return str(found) if found is not None else None


class ProdEnv(KitEnv):
    """See the module docstring (FLARE 2.9's signature)."""

    def __init__(self, startup_kit_location: str, login_timeout: float = 5.0, username: str = "admin@nvidia.com",
                 study: str = "default", extra: dict[str, Any] | None = None) -> None:
        super().__init__(extra)

        if not Path(startup_kit_location).exists():
            if not checking_only():
                raise ValueError(f"startup_kit_location {startup_kit_location} does not exist")
            print(f"flconfig: startup_kit_location {startup_kit_location} does not exist (the job is only "
                  "checked: --check)")
        if not login_timeout > 0:
            raise ValueError("login_timeout must be above 0")
        self.kit = Path(startup_kit_location)
        self.login_timeout = login_timeout
        self.username = username
        self.study = study
