"""Workers and schedule runs in the state store (mixed into :class:`~engine.workflow.store.SqlStore`).

- ``workers``: every running ``procos worker`` (name ``host:pid``), with its heartbeat (epoch seconds,
  renewed every few seconds). A worker whose heartbeat is older than the lease is presumed dead; the
  instances it held are resumed by another worker (see :mod:`.leases`).
- ``schedules`` / ``schedule_runs``: one row per schedule entry (its baseline: the occurrence before the
  first scheduler saw it) and one per due occurrence. A run is claimed by inserting its ``(schedule,
  due)`` row: the primary key lets exactly one scheduler win, however many run against the same state.
"""

from __future__ import annotations

import json
import time
from typing import Any

from engine.events import now_iso

RUN_TABLES = """
CREATE TABLE IF NOT EXISTS workers (worker TEXT PRIMARY KEY, host TEXT NOT NULL, pid INTEGER NOT NULL,
    started_at TEXT NOT NULL, heartbeat DOUBLE PRECISION NOT NULL, queues TEXT NOT NULL,
    concurrency INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS schedules (schedule TEXT PRIMARY KEY, baseline TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS schedule_runs (schedule TEXT NOT NULL, due TEXT NOT NULL, instance_id TEXT,
    state TEXT NOT NULL, scheduler TEXT NOT NULL, claimed_at TEXT NOT NULL, error TEXT,
    PRIMARY KEY (schedule, due))
"""


class RunRecords:
    """Workers registry and schedule claims (SQL shared by SQLite and PostgreSQL)."""

    # --- workers ------------------------------------------------------------------------------

    def register_worker(self, worker: str, host: str, pid: int, queues: list[str], concurrency: int) -> None:
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM workers WHERE worker = ?", (worker,))
            self._exec(cur, "INSERT INTO workers (worker, host, pid, started_at, heartbeat, queues, concurrency) "
                       "VALUES (?, ?, ?, ?, ?, ?, ?)", (worker, host, pid, now_iso(), time.time(),
                                                        json.dumps(queues), concurrency))

    def worker_heartbeat(self, worker: str) -> None:
        with self._tx() as cur:
            self._exec(cur, "UPDATE workers SET heartbeat = ? WHERE worker = ?", (time.time(), worker))

    def unregister_worker(self, worker: str) -> None:
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM workers WHERE worker = ?", (worker,))

    def list_workers(self) -> list[dict[str, Any]]:
        """``[{"worker", "host", "pid", "started_at", "heartbeat", "queues", "concurrency"}]`` by name."""
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT worker, host, pid, started_at, heartbeat, queues, concurrency "
                              "FROM workers ORDER BY worker").fetchall()
        return [{"worker": r[0], "host": r[1], "pid": int(r[2]), "started_at": r[3], "heartbeat": float(r[4]),
                 "queues": json.loads(r[5]), "concurrency": int(r[6])} for r in rows]

    def worker_heartbeat_of(self, host: str, pid: int) -> float | None:
        """The heartbeat (epoch seconds) of the worker process ``pid`` on ``host``, or None if none is registered."""
        with self._tx() as cur:
            row = self._exec(cur, "SELECT heartbeat FROM workers WHERE host = ? AND pid = ?", (host, pid)).fetchone()
        return float(row[0]) if row else None

    def prune_workers(self, older_than_seconds: float) -> int:
        with self._tx() as cur:
            return self._exec(cur, "DELETE FROM workers WHERE heartbeat < ?",
                              (time.time() - older_than_seconds,)).rowcount

    # --- schedules ----------------------------------------------------------------------------

    def schedule_baseline(self, schedule: str, baseline: str) -> str:
        """The schedule's baseline occurrence: the first one recorded wins (``baseline`` if none yet)."""
        with self._tx() as cur:
            self._exec(cur, "INSERT INTO schedules (schedule, baseline) VALUES (?, ?) ON CONFLICT DO NOTHING",
                       (schedule, baseline))
            return str(self._exec(cur, "SELECT baseline FROM schedules WHERE schedule = ?",
                                  (schedule,)).fetchone()[0])

    def claim_schedule_run(self, schedule: str, due: str, scheduler: str, state: str = "claimed") -> bool:
        """Claim occurrence ``due`` of ``schedule``; True for exactly one caller per (schedule, due)."""
        with self._tx() as cur:
            done = self._exec(cur, "INSERT INTO schedule_runs (schedule, due, instance_id, state, scheduler, "
                              "claimed_at) VALUES (?, ?, NULL, ?, ?, ?) ON CONFLICT DO NOTHING",
                              (schedule, due, state, scheduler, now_iso()))
            return done.rowcount == 1

    def finish_schedule_run(self, schedule: str, due: str, *, instance_id: str | None, state: str,
                            error: str | None = None) -> None:
        with self._tx() as cur:
            self._exec(cur, "UPDATE schedule_runs SET instance_id = ?, state = ?, error = ? WHERE schedule = ? "
                       "AND due = ?", (instance_id, state, error, schedule, due))

    def last_schedule_run(self, schedule: str, *, scheduled_only: bool = False) -> dict[str, Any] | None:
        """The newest run: ``{"due", "instance_id", "state", "scheduler", "error"}``, or None
        (``scheduled_only``: leave out runs started by ``schedule run-now``)."""
        only = " AND scheduler NOT LIKE ?" if scheduled_only else ""
        params = (schedule, "run-now%") if scheduled_only else (schedule,)
        with self._tx() as cur:
            row = self._exec(cur, "SELECT due, instance_id, state, scheduler, error FROM schedule_runs "
                             f"WHERE schedule = ?{only} ORDER BY due DESC LIMIT 1", params).fetchone()
        return None if row is None else {"due": row[0], "instance_id": row[1], "state": row[2],
                                         "scheduler": row[3], "error": row[4]}

    def schedule_runs(self, schedule: str | None = None) -> list[dict[str, Any]]:
        with self._tx() as cur:
            sql = "SELECT schedule, due, instance_id, state, scheduler, error FROM schedule_runs"
            rows = (self._exec(cur, sql + " WHERE schedule = ? ORDER BY due", (schedule,)) if schedule
                    else self._exec(cur, sql + " ORDER BY schedule, due")).fetchall()
        return [{"schedule": r[0], "due": r[1], "instance_id": r[2], "state": r[3], "scheduler": r[4],
                 "error": r[5]} for r in rows]
