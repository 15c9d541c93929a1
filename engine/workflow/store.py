"""Persisted instances: the :class:`InstanceStore` interface and the SQL both implementations share.

One store holds deployments, instances (the serialized workflow plus runner bookkeeping), the waiting
user tasks, the history/audit log and the events. Writes to an instance use an optimistic revision
check: :meth:`InstanceStore.update_instance` fails with :class:`ConcurrentUpdate` when someone else
saved the instance since it was read, so two approvers racing on one task cannot both win.
Implementations: SQLite in :mod:`.store_sqlite` (default, ``PROCOS_HOME/state.db``) and PostgreSQL
in :mod:`.store_pg` (``PROCOS_STATE_DSN``).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass, fields
from typing import Any, Protocol

from engine.errors import InstanceNotFound, WorkflowError
from engine.events import now_iso
from engine.secrets import redact_value

from .store_runs import RUN_TABLES, RunRecords
from .users import USER_TABLES, UserRecords

SCHEMA_VERSION = 4  # 2: users and audit; 3: instances.outcome and exit_code (added on open); 4: workers, schedules


class ConcurrentUpdate(WorkflowError):
    """The instance was saved by someone else since it was read."""

    exit_code = 75




@dataclass
class InstanceRow:
    instance_id: str
    process: str
    version: str
    status: str  # queued | running | waiting | completed | error | cancelled (interrupted is computed)
    started_by: str
    started_at: str
    updated_at: str
    revision: int = 0
    runner_pid: int | None = None
    runner_host: str | None = None
    runner_started: float | None = None  # the runner process's create time (guards against pid reuse)
    error: str | None = None
    state_json: str | None = None
    outcome: str | None = None  # succeeded | rejected | failed | drift | error | cancelled; None while unfinished
    exit_code: int | None = None  # the exit code of the error that stopped it (3 verification, 75 paused, ...)


@dataclass
class TaskRow:
    task_id: str
    instance_id: str
    process: str
    name: str
    lane: str | None
    bpmn_id: str
    environment: str = "dev"  # the instance's data["environment"] when the task became ready


class InstanceStore(Protocol):
    def record_deployment(self, process: str, version: str, path: str) -> None:
        """Remember that ``process`` was deployed at ``version`` (idempotent)."""

    def insert_instance(self, row: InstanceRow, tasks: list[TaskRow], history: list[dict]) -> None:
        """Create an instance with its waiting tasks and first history entries."""

    def update_instance(self, row: InstanceRow, expected_revision: int, tasks: list[TaskRow],
                        history: list[dict]) -> int:
        """Save ``row`` (+ replace its tasks, append history) atomically if its stored revision is
        ``expected_revision``; return the new revision; else raise :class:`ConcurrentUpdate`."""

    def get_instance(self, instance_id: str) -> InstanceRow:
        """The instance with its state; raises :class:`InstanceNotFound`."""

    def list_instances(self) -> list[InstanceRow]:
        """Every instance, oldest first, without ``state_json``."""

    def add_history(self, instance_id: str, entries: list[dict]) -> None:
        """Append audit entries (each a JSON object with at least ``time`` and ``kind``)."""

    def history(self, instance_id: str) -> list[dict]:
        """The instance's audit entries in the order they were written."""

    def list_tasks(self) -> list[TaskRow]:
        """Every waiting user task of every instance."""

    def find_task(self, task_id: str) -> TaskRow | None:
        """The waiting user task with this id, or None."""

    def add_event(self, event: dict) -> None:
        """Store an event (``event``, ``instance_id``, ``time`` and fields)."""

    def set_progress(self, instance_id: str, task: str, update: dict) -> None:
        """Record the running step's latest progress (one row per instance, replaced each time)."""

    def progress(self, instance_id: str) -> dict | None:
        """The latest progress of the instance's running step, or None."""

    def events(self, instance_id: str | None = None) -> list[dict]:
        """Stored events, oldest first, optionally of one instance."""

    def close(self) -> None: ...


INSTANCE_COLUMNS = [f.name for f in fields(InstanceRow)]
TASK_COLUMNS = [f.name for f in fields(TaskRow)]


class SqlStore(UserRecords, RunRecords):
    """The SQL shared by both implementations; subclasses provide ``_tx`` and the DDL."""

    placeholder = "?"
    DDL: list[str] = []

    @contextmanager
    def _tx(self) -> Iterator[Any]:  # yields an object with execute(sql, params) -> cursor
        raise NotImplementedError

    def _sql(self, sql: str) -> str:
        return sql if self.placeholder == "?" else sql.replace("?", self.placeholder)

    def _exec(self, cur: Any, sql: str, params: tuple | list = ()) -> Any:
        return cur.execute(self._sql(sql), tuple(params))

    def record_deployment(self, process: str, version: str, path: str) -> None:
        with self._tx() as cur:
            self._exec(cur, "INSERT INTO deployments (process, version, path, deployed_at) VALUES (?, ?, ?, ?) "
                       "ON CONFLICT DO NOTHING", (process, version, path, now_iso()))

    def insert_instance(self, row: InstanceRow, tasks: list[TaskRow], history: list[dict]) -> None:
        cols = ", ".join(INSTANCE_COLUMNS)
        marks = ", ".join("?" * len(INSTANCE_COLUMNS))
        with self._tx() as cur:
            self._exec(cur, f"INSERT INTO instances ({cols}) VALUES ({marks})", list(asdict(row).values()))
            self._write_tasks(cur, row.instance_id, tasks)
            self._write_history(cur, row.instance_id, history)

    def update_instance(self, row: InstanceRow, expected_revision: int, tasks: list[TaskRow],
                        history: list[dict]) -> int:
        values = asdict(row)
        values["revision"] = expected_revision + 1
        sets = ", ".join(f"{c} = ?" for c in INSTANCE_COLUMNS if c != "instance_id")
        params = [values[c] for c in INSTANCE_COLUMNS if c != "instance_id"]
        with self._tx() as cur:
            done = self._exec(cur, f"UPDATE instances SET {sets} WHERE instance_id = ? AND revision = ?",
                              [*params, row.instance_id, expected_revision])
            if done.rowcount != 1:
                raise ConcurrentUpdate(f"instance {row.instance_id} was changed by someone else meanwhile",
                                       hint=f"look again: procos instance show {row.instance_id}")
            self._write_tasks(cur, row.instance_id, tasks)
            self._write_history(cur, row.instance_id, history)
        row.revision = expected_revision + 1
        return row.revision

    def _write_tasks(self, cur: Any, instance_id: str, tasks: list[TaskRow]) -> None:
        self._exec(cur, "DELETE FROM tasks WHERE instance_id = ?", (instance_id,))
        marks = ", ".join("?" * len(TASK_COLUMNS))
        for t in tasks:
            self._exec(cur, f"INSERT INTO tasks ({', '.join(TASK_COLUMNS)}) VALUES ({marks})",
                       list(asdict(t).values()))

    def _write_history(self, cur: Any, instance_id: str, entries: list[dict]) -> None:
        for e in redact_value(entries):
            self._exec(cur, "INSERT INTO history (instance_id, time, kind, entry) VALUES (?, ?, ?, ?)",
                       (instance_id, e["time"], e["kind"], json.dumps(e, sort_keys=True)))

    def get_instance(self, instance_id: str) -> InstanceRow:
        with self._tx() as cur:
            found = self._exec(cur, f"SELECT {', '.join(INSTANCE_COLUMNS)} FROM instances WHERE instance_id = ?",
                               (instance_id,)).fetchone()
        if found is None:
            raise InstanceNotFound(f"no instance {instance_id!r}", hint="procos instance list shows them all")
        return InstanceRow(*found)

    def list_instances(self) -> list[InstanceRow]:
        cols = ", ".join(c if c != "state_json" else "NULL" for c in INSTANCE_COLUMNS)
        with self._tx() as cur:
            rows = self._exec(cur, f"SELECT {cols} FROM instances ORDER BY started_at, instance_id").fetchall()
        return [InstanceRow(*r) for r in rows]

    def add_history(self, instance_id: str, entries: list[dict]) -> None:
        with self._tx() as cur:
            self._write_history(cur, instance_id, entries)

    def history(self, instance_id: str) -> list[dict]:
        with self._tx() as cur:
            rows = self._exec(cur, "SELECT entry FROM history WHERE instance_id = ? ORDER BY seq",
                              (instance_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]

    def list_tasks(self) -> list[TaskRow]:
        with self._tx() as cur:
            rows = self._exec(cur, f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks ORDER BY instance_id, name")
            return [TaskRow(*r) for r in rows.fetchall()]

    def find_task(self, task_id: str) -> TaskRow | None:
        with self._tx() as cur:
            r = self._exec(cur, f"SELECT {', '.join(TASK_COLUMNS)} FROM tasks WHERE task_id = ?",
                           (task_id,)).fetchone()
        return TaskRow(*r) if r else None

    def add_event(self, event: dict) -> None:
        event = redact_value(event)
        with self._tx() as cur:
            self._exec(cur, "INSERT INTO events (time, event, instance_id, body) VALUES (?, ?, ?, ?)",
                       (event["time"], event["event"], event.get("instance_id"), json.dumps(event, sort_keys=True)))

    def set_progress(self, instance_id: str, task: str, update: dict) -> None:
        """Record the running step's latest progress (one row per instance, replaced each time)."""
        body = json.dumps({"task": task, **update}, sort_keys=True)
        with self._tx() as cur:
            self._exec(cur, "DELETE FROM progress WHERE instance_id = ?", (instance_id,))
            self._exec(cur, "INSERT INTO progress (instance_id, task, body, updated_at) VALUES (?, ?, ?, ?)",
                       (instance_id, task, body, now_iso()))

    def progress(self, instance_id: str) -> dict | None:
        """The latest progress of the instance's running step (``{"task","op","done","total",...}``), or None."""
        with self._tx() as cur:
            row = self._exec(cur, "SELECT body, updated_at FROM progress WHERE instance_id = ?",
                             (instance_id,)).fetchone()
        return {**json.loads(row[0]), "updated_at": row[1]} if row else None

    def events(self, instance_id: str | None = None) -> list[dict]:
        with self._tx() as cur:
            if instance_id is None:
                rows = self._exec(cur, "SELECT body FROM events ORDER BY seq").fetchall()
            else:
                rows = self._exec(cur, "SELECT body FROM events WHERE instance_id = ? ORDER BY seq",
                                  (instance_id,)).fetchall()
        return [json.loads(r[0]) for r in rows]


TABLES = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS deployments (process TEXT NOT NULL, version TEXT NOT NULL, path TEXT NOT NULL,
    deployed_at TEXT NOT NULL, PRIMARY KEY (process, version));
CREATE TABLE IF NOT EXISTS instances (instance_id TEXT PRIMARY KEY, process TEXT NOT NULL,
    version TEXT NOT NULL, status TEXT NOT NULL, started_by TEXT NOT NULL, started_at TEXT NOT NULL,
    updated_at TEXT NOT NULL, revision INTEGER NOT NULL, runner_pid INTEGER, runner_host TEXT,
    runner_started DOUBLE PRECISION, error TEXT, state_json TEXT, outcome TEXT, exit_code INTEGER);
CREATE TABLE IF NOT EXISTS tasks (task_id TEXT PRIMARY KEY, instance_id TEXT NOT NULL, process TEXT NOT NULL,
    name TEXT NOT NULL, lane TEXT, bpmn_id TEXT NOT NULL, environment TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS history (seq {serial}, instance_id TEXT NOT NULL, time TEXT NOT NULL,
    kind TEXT NOT NULL, entry TEXT NOT NULL);
CREATE INDEX IF NOT EXISTS history_instance ON history (instance_id, seq);
CREATE TABLE IF NOT EXISTS events (seq {serial}, time TEXT NOT NULL, event TEXT NOT NULL, instance_id TEXT,
    body TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS progress (instance_id TEXT PRIMARY KEY, task TEXT NOT NULL, body TEXT NOT NULL,
    updated_at TEXT NOT NULL);
""" + USER_TABLES + ";" + RUN_TABLES


ADDED_COLUMNS = {"instances": [("outcome", "TEXT"), ("exit_code", "INTEGER")]}  # schema 3


def upgrade_sql(placeholder: str = "?") -> str:
    """Record the current schema version once the (additive) DDL of newer versions has run."""
    return f"UPDATE meta SET value = {placeholder} WHERE key = 'schema_version' AND CAST(value AS INTEGER) < {SCHEMA_VERSION}"


def _check_schema(found: str, where: object) -> None:
    if int(found) > SCHEMA_VERSION:
        raise WorkflowError(f"workflow state in {where} has schema version {found}; this procos knows "
                            f"{SCHEMA_VERSION}", hint="upgrade procos, or point PROCOS_HOME elsewhere")


def open_store(settings: Any) -> InstanceStore:
    """PostgreSQL when ``settings.state_dsn`` is set, else SQLite under ``settings.home``."""
    if settings.state_dsn:
        from .store_pg import PostgresStore

        return PostgresStore(settings.state_dsn)
    from .store_sqlite import SqliteStore

    return SqliteStore(settings.state_db_path)
