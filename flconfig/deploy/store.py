"""The server's job store: an SQLite database beside each job's folder.

``WORKSPACE/jobs.db`` holds one row per job (its state, who submitted it, its sites,
why it failed); ``WORKSPACE/JOB_ID/`` holds its files (``job/`` as submitted, the
server's log, global model, ``tb_events/SITE/``, cross-site results, the sites' logs
under ``sites/``). Every change is committed before it is acted on (WAL, synchronous
FULL), so the store survives the server being killed: a job that was running then
is reported failed when the server starts again, and a queued job runs.
"""

from __future__ import annotations

import json
import sqlite3
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

SUBMITTED, WAITING, DEPLOYING, RUNNING = "submitted", "waiting", "deploying", "running"
FINISHED, FAILED, ABORTED = "finished", "failed", "aborted"
#: States of a job that has not ended.
ACTIVE = (SUBMITTED, WAITING, DEPLOYING, RUNNING)
ENDED = (FINISHED, FAILED, ABORTED)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    state TEXT NOT NULL,
    submitter TEXT NOT NULL,
    submitted_at REAL NOT NULL,
    started_at REAL,
    ended_at REAL,
    sites TEXT NOT NULL DEFAULT '[]',
    error TEXT NOT NULL DEFAULT '',
    seq INTEGER NOT NULL
)
"""


@dataclass(frozen=True)
class JobRecord:
    """One row of the store."""

    id: str
    name: str
    state: str
    submitter: str
    submitted_at: float
    started_at: float | None
    ended_at: float | None
    sites: list[str]
    error: str

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "submitter": self.submitter,
                "submitted_at": self.submitted_at, "started_at": self.started_at,
                "ended_at": self.ended_at, "sites": self.sites, "error": self.error}


class JobStore:
    """The jobs of one server workspace (see the module docstring); safe across threads."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")
        self._db.execute(_SCHEMA)

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> list[JobRecord]:
        """At start-up: every job that was deploying or running when the server stopped is
        failed, saying so; waiting ones go back to the queue. Returns the failed ones."""
        now = time.time()
        with self._lock:
            rows = self._db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?)", (DEPLOYING, RUNNING)).fetchall()
            self._db.execute(
                "UPDATE jobs SET state=?, ended_at=?, error=? WHERE state IN (?, ?)",
                (FAILED, now, "the server stopped while the job was running; what its sites had "
                 "sent until then is kept", DEPLOYING, RUNNING))
            self._db.execute("UPDATE jobs SET state=? WHERE state=?", (SUBMITTED, WAITING))
        return [_record(r) for r in rows]

    def add(self, job_id: str, name: str, submitter: str) -> JobRecord:
        with self._lock:
            seq = self._db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            self._db.execute(
                "INSERT INTO jobs (id, name, state, submitter, submitted_at, seq) VALUES (?,?,?,?,?,?)",
                (job_id, name, SUBMITTED, submitter, time.time(), seq))
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._lock:
            row = self._db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        return [_record(r) for r in rows]

    def queued(self) -> list[JobRecord]:
        with self._lock:
            rows = self._db.execute("SELECT * FROM jobs WHERE state=? ORDER BY seq", (SUBMITTED,)).fetchall()
        return [_record(r) for r in rows]

    def set_state(self, job_id: str, state: str, *, error: str | None = None,
                  sites: list[str] | None = None, only_if_active: bool = True) -> bool:
        """Move a job to ``state``; False if it had ended already (with ``only_if_active``)."""
        now = time.time()
        fields = ["state=?"]
        values: list[Any] = [state]
        if state == RUNNING:
            fields.append("started_at=?")
            values.append(now)
        if state in ENDED:
            fields.append("ended_at=?")
            values.append(now)
        if error is not None:
            fields.append("error=?")
            values.append(error)
        if sites is not None:
            fields.append("sites=?")
            values.append(json.dumps(sites))
        where = "id=?" + (f" AND state IN ({','.join('?' * len(ACTIVE))})" if only_if_active else "")
        with self._lock:
            cur = self._db.execute(f"UPDATE jobs SET {', '.join(fields)} WHERE {where}",
                                   (*values, job_id, *(ACTIVE if only_if_active else ())))
        return cur.rowcount == 1


def _record(row: tuple[Any, ...]) -> JobRecord:
    id_, name, state, submitter, submitted_at, started_at, ended_at, sites, error, _seq = row
    return JobRecord(id_, name, state, submitter, submitted_at, started_at, ended_at,
                     json.loads(sites), error)
