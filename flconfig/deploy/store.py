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
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..errors import FlconfigError

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
    seq INTEGER NOT NULL,
    submitter_org TEXT NOT NULL DEFAULT ''
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
    submitter_org: str = ""

    def to_json(self) -> dict[str, Any]:
        return {"id": self.id, "name": self.name, "state": self.state, "submitter": self.submitter,
                "submitter_org": self.submitter_org, "submitted_at": self.submitted_at,
                "started_at": self.started_at, "ended_at": self.ended_at, "sites": self.sites,
                "error": self.error}


class StoreError(FlconfigError):
    """The job store could not be read or written (a full or unwritable disk, a damaged
    file); the message is one line naming the store and the cause. Nothing of the failed
    change is kept: the caller may try again."""


class JobStore:
    """The jobs of one server workspace (see the module docstring); safe across threads.
    Every failure of the database is a :class:`StoreError`."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._lock = threading.Lock()
        try:
            self._db = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            columns = {row[1] for row in self._db.execute("PRAGMA table_info(jobs)")}
            if "submitter_org" not in columns:  # a store made before admins had orgs
                self._db.execute("ALTER TABLE jobs ADD COLUMN submitter_org TEXT NOT NULL DEFAULT ''")
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the job store {path}: {exc}") from None

    @contextmanager
    def _using(self, what: str) -> Iterator[sqlite3.Connection]:
        """The database, under the lock; its errors as one :class:`StoreError` line."""
        with self._lock:
            try:
                yield self._db
            except sqlite3.Error as exc:
                raise StoreError(f"cannot {what} the job store {self.path}: {exc}") from None

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def recover(self) -> list[JobRecord]:
        """At start-up: every job that was deploying or running when the server stopped is
        failed, saying so; waiting ones go back to the queue. Returns the failed ones."""
        now = time.time()
        with self._using("update") as db:
            rows = db.execute(
                "SELECT * FROM jobs WHERE state IN (?, ?)", (DEPLOYING, RUNNING)).fetchall()
            db.execute(
                "UPDATE jobs SET state=?, ended_at=?, error=? WHERE state IN (?, ?)",
                (FAILED, now, "the server stopped while the job was running; what its sites had "
                 "sent until then is kept", DEPLOYING, RUNNING))
            db.execute("UPDATE jobs SET state=? WHERE state=?", (SUBMITTED, WAITING))
        return [_record(r) for r in rows]

    def add(self, job_id: str, name: str, submitter: str, submitter_org: str = "") -> JobRecord:
        with self._using("add a job to") as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) + 1 FROM jobs").fetchone()[0]
            db.execute(
                "INSERT INTO jobs (id, name, state, submitter, submitted_at, seq, submitter_org) "
                "VALUES (?,?,?,?,?,?,?)",
                (job_id, name, SUBMITTED, submitter, time.time(), seq, submitter_org))
        record = self.get(job_id)
        assert record is not None
        return record

    def get(self, job_id: str) -> JobRecord | None:
        with self._using("read") as db:
            row = db.execute("SELECT * FROM jobs WHERE id=?", (job_id,)).fetchone()
        return _record(row) if row else None

    def all(self) -> list[JobRecord]:
        with self._using("read") as db:
            rows = db.execute("SELECT * FROM jobs ORDER BY seq").fetchall()
        return [_record(r) for r in rows]

    def queued(self) -> list[JobRecord]:
        with self._using("read") as db:
            rows = db.execute("SELECT * FROM jobs WHERE state=? ORDER BY seq", (SUBMITTED,)).fetchall()
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
        with self._using("update") as db:
            cur = db.execute(f"UPDATE jobs SET {', '.join(fields)} WHERE {where}",
                             (*values, job_id, *(ACTIVE if only_if_active else ())))
        return cur.rowcount == 1


def _record(row: tuple[Any, ...]) -> JobRecord:
    id_, name, state, submitter, submitted_at, started_at, ended_at, sites, error, _seq, org = row
    return JobRecord(id_, name, state, submitter, submitted_at, started_at, ended_at,
                     json.loads(sites), error, org)
