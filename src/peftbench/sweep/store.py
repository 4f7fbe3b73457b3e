"""The results store: one SQLite database (WAL mode) beside a suite's run directories.

Each run's directory stays the source of truth (its `metrics.json` is written last and
atomically); the store indexes runs by id with their status, so a sweep can be queried,
and restarted after a crash without redoing finished runs or reading half-written ones.

Statuses: pending -> running -> done | diverged | failed; a `running` row whose process
is gone (the sweep or a worker was killed) is reset to `interrupted` and run again.
"""

from __future__ import annotations

import json
import os
import socket
import sqlite3
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator, Optional

STORE_FILE = "results.sqlite"
FINAL = ("done", "diverged")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    run_id     TEXT PRIMARY KEY,
    suite      TEXT NOT NULL,
    method     TEXT NOT NULL,
    task       TEXT NOT NULL,
    seed       INTEGER,
    status     TEXT NOT NULL DEFAULT 'pending',
    attempts   INTEGER NOT NULL DEFAULT 0,
    host       TEXT,
    pid        INTEGER,
    error      TEXT,
    config     TEXT NOT NULL,
    metrics    TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
"""


def _alive(pid: Optional[int]) -> bool:
    if not pid:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:  # a zombie (killed, not yet reaped) is not running anything
        with open(f"/proc/{pid}/stat") as handle:
            return handle.read().split(")")[-1].split()[0] != "Z"
    except OSError:
        return True


class ResultStore:
    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        with self._connect() as db:
            db.execute("PRAGMA journal_mode=WAL")
            db.executescript(_SCHEMA)

    @contextmanager
    def _connect(self) -> Iterator[sqlite3.Connection]:
        # A connection per operation: safe across worker processes; WAL lets readers
        # proceed while a writer commits, and the timeout rides out short write locks.
        db = sqlite3.connect(self.path, timeout=60, isolation_level=None)
        db.row_factory = sqlite3.Row
        try:
            yield db
        finally:
            db.close()

    def register(self, run_id: str, suite: str, method: str, task: str, seed: Optional[int], config: dict) -> None:
        with self._connect() as db:
            db.execute(
                "INSERT OR IGNORE INTO runs (run_id, suite, method, task, seed, config, updated_at) VALUES (?,?,?,?,?,?,?)",
                (run_id, suite, method, task, seed, json.dumps(config, sort_keys=True), time.time()),
            )

    def claim(self, run_id: str) -> bool:
        """Mark a run as running in this process; False if it is finished or running elsewhere."""
        with self._connect() as db:
            cursor = db.execute(
                "UPDATE runs SET status='running', attempts=attempts+1, host=?, pid=?, error=NULL, updated_at=? "
                "WHERE run_id=? AND status NOT IN ('running', 'done', 'diverged')",
                (socket.gethostname(), os.getpid(), time.time(), run_id),
            )
            return cursor.rowcount == 1

    def finish(self, run_id: str, status: str, metrics: Optional[dict] = None, error: Optional[str] = None) -> None:
        with self._connect() as db:
            db.execute(
                "UPDATE runs SET status=?, metrics=?, error=?, pid=NULL, updated_at=? WHERE run_id=?",
                (status, json.dumps(metrics, default=str) if metrics is not None else None, error, time.time(), run_id),
            )

    def reconcile(self) -> list[str]:
        """Reset `running` rows of this host whose process is gone; return their ids."""
        host = socket.gethostname()
        with self._connect() as db:
            stale = [r["run_id"] for r in db.execute("SELECT run_id, host, pid FROM runs WHERE status='running'")
                     if r["host"] == host and not _alive(r["pid"])]
            for run_id in stale:
                db.execute("UPDATE runs SET status='interrupted', pid=NULL, updated_at=? WHERE run_id=?",
                           (time.time(), run_id))
        return stale

    def get(self, run_id: str) -> Optional[dict]:
        with self._connect() as db:
            row = db.execute("SELECT * FROM runs WHERE run_id=?", (run_id,)).fetchone()
        return self._decode(row) if row else None

    def rows(self, status: Optional[str] = None) -> list[dict]:
        query, args = "SELECT * FROM runs", ()
        if status:
            query, args = query + " WHERE status=?", (status,)
        with self._connect() as db:
            return [self._decode(r) for r in db.execute(query + " ORDER BY run_id", args)]

    def statuses(self) -> dict[str, tuple[str, Optional[str]]]:
        """run id -> (status, error), without decoding configs and metrics (a progress poll)."""
        with self._connect() as db:
            return {r["run_id"]: (r["status"], r["error"]) for r in db.execute("SELECT run_id, status, error FROM runs")}

    @staticmethod
    def _decode(row: sqlite3.Row) -> dict:
        out = dict(row)
        out["config"] = json.loads(out["config"])
        out["metrics"] = json.loads(out["metrics"]) if out["metrics"] else None
        return out
