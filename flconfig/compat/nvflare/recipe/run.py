"""FLARE's ``nvflare.recipe.run``: ``Run``, a handle on a job a recipe started."""

from __future__ import annotations

import logging
import threading
from typing import Any

log = logging.getLogger(__name__)


class Run:
    """A started job: its id, its status, its results. ``get_result`` also stops the
    environment (as FLARE does); later calls answer what was found then."""

    def __init__(self, exec_env: Any, job_id: str) -> None:
        if exec_env is None:
            raise ValueError("exec_env must be given")
        if not job_id:
            raise ValueError("job_id must be given")
        self.exec_env = exec_env
        self.job_id = job_id
        self._lock = threading.Lock()
        self._stopped = False
        self._status: str | None = None
        self._result: str | None = None

    def get_job_id(self) -> str:
        return self.job_id

    def get_status(self) -> str | None:
        """The job's status: ``FINISHED:COMPLETED``, ``FINISHED:EXECUTION_EXCEPTION``,
        ``FINISHED:ABORTED``, ``RUNNING`` ... (FLARE's SimEnv says None; flconfig's says how
        the run ended)."""
        with self._lock:
            if self._stopped:
                return self._status
            try:
                return self.exec_env.get_job_status(self.job_id)
            except Exception as exc:  # as FLARE: a failed query is logged, not raised
                log.warning("could not get the status of job %s: %s", self.job_id, exc)
                return None

    def get_result(self, timeout: float = 0.0, clean_up: bool = True) -> str | None:
        """Where the job's results are (waiting up to ``timeout`` seconds, 0: no limit),
        then stop the environment."""
        with self._lock:
            if self._stopped:
                return self._result
            self._result = self.exec_env.get_job_result(self.job_id, timeout)
            try:
                self._status = self.exec_env.get_job_status(self.job_id)
            except Exception as exc:
                log.warning("could not get the status of job %s: %s", self.job_id, exc)
            self.exec_env.stop(clean_up)
            self._stopped = True
            return self._result

    def abort(self) -> None:
        with self._lock:
            if self._stopped:
                return
            try:
                self.exec_env.abort_job(self.job_id)
            except Exception as exc:
                log.warning("could not abort job %s: %s", self.job_id, exc)
