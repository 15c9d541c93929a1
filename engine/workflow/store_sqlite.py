"""The instance store in SQLite (``PROCOS_HOME/state.db``); see :class:`~.store.InstanceStore`."""

from __future__ import annotations

import sqlite3
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.files import private_dir, private_file

from .store import ADDED_COLUMNS, SCHEMA_VERSION, TABLES, SqlStore, _check_schema, upgrade_sql


class SqliteStore(SqlStore):
    """The store in ``PROCOS_HOME/state.db`` (WAL mode, waits up to 30 s for a writer).

    The file holds token hashes and the audit history: it is created readable by its owner only
    (SQLite gives its -wal and -shm files the same mode), in a folder only its owner can enter.
    """

    def __init__(self, path: Path) -> None:
        private_dir(path.parent)
        private_file(path)
        self.path = path
        self.conn = sqlite3.connect(str(path), timeout=30, isolation_level=None, check_same_thread=False)
        self.conn.execute("PRAGMA journal_mode=WAL")
        self.conn.execute("PRAGMA synchronous=NORMAL")
        with self._tx() as cur:
            for stmt in TABLES.format(serial="INTEGER PRIMARY KEY AUTOINCREMENT").split(";"):
                cur.execute(stmt)
            cur.execute("INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                        (str(SCHEMA_VERSION),))
            _check_schema(cur.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0], path)
            for table, columns in ADDED_COLUMNS.items():
                have = {r[1] for r in cur.execute(f"PRAGMA table_info({table})").fetchall()}
                for name, kind in columns:
                    if name not in have:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            cur.execute(upgrade_sql(), (str(SCHEMA_VERSION),))

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        cur = self.conn.cursor()
        cur.execute("BEGIN IMMEDIATE")
        try:
            yield cur
        except BaseException:
            cur.execute("ROLLBACK")
            raise
        cur.execute("COMMIT")

    def close(self) -> None:
        self.conn.close()
