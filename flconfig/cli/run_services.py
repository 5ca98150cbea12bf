"""What ``flconfig run`` hands FLARE's job API so a script's jobs run: the launcher, an
admin's client and this machine's POC (:class:`flconfig.compat.jobapi.running.Services`)."""

from __future__ import annotations

import sys
from contextlib import AbstractContextManager
from pathlib import Path

from ..compat.jobapi.running import AdminCalls
from ..deploy import poc
from ..deploy.admin import Admin
from ..deploy.kit import load_kit


class RunServices:
    """The launcher, the admin's client and the POC of this machine, for a job script."""

    def __init__(self) -> None:
        self._poc = poc.poc_dir(None)

    def launch(self, folder: Path, workspace: Path, *, clients: list[str] | None,
               num_clients: int | None, job_id: str, processes: int | None,
               device: str | None) -> int:
        """Run the checked job with flconfig's launcher; its exit code (2 if it cannot start)."""
        from ..launch.launcher import LaunchError, LaunchOptions, launch

        options = LaunchOptions(job=folder, workspace=workspace, clients=clients, num_clients=num_clients,
                                job_id=job_id, processes=processes, device=device,
                                fork=sys.platform.startswith("linux"), out=sys.stdout)
        try:
            return launch(options)
        except LaunchError as exc:
            print(f"flconfig: {exc}", file=sys.stderr)
            return 2

    def admin(self, kit: Path) -> AbstractContextManager[AdminCalls]:
        """An admin's connection to the server, with the admin kit at ``kit``."""
        return Admin(load_kit(kit, "admin"))

    def poc_admin_kit(self) -> Path:
        """The admin kit of this machine's POC."""
        return self._poc / poc.ADMIN

    def poc_up(self, clients: list[str]) -> None:
        """Prepare the POC for ``clients`` unless it is (one of other sites is made afresh),
        and start it unless it runs."""
        folder = self._poc
        prepared = (folder / poc.SERVER).is_dir() and sorted(poc.sites_of(folder)) == sorted(clients)
        if not prepared:
            if poc.running(folder):
                poc.stop(folder)
            poc.prepare(folder, len(clients), port=0, force=True, sites=clients)
            print(f"flconfig: POC prepared in {folder}: {', '.join(clients)}")
        if not poc.running(folder):
            started = poc.start(folder)
            print(f"flconfig: POC started: {', '.join(started)}")

    def poc_down(self) -> None:
        """Stop the POC (its folder stays)."""
        stopped = poc.stop(self._poc)
        if stopped:
            print(f"flconfig: POC stopped: {', '.join(stopped)}")
