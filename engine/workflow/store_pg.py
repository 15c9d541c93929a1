"""The instance store in PostgreSQL (``PROCOS_STATE_DSN``), in its own schema ``procos_workflow``.

Same tables and contract as :class:`~engine.workflow.store.SqliteStore`; see :class:`InstanceStore`.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from engine.errors import WorkflowError

from .store import ADDED_COLUMNS, SCHEMA_VERSION, TABLES, SqlStore, _check_schema, upgrade_sql

SCHEMA = "procos_workflow"
SCHEMA_LOCK = 7_402_118  # pg_advisory_xact_lock key held while the schema is created or upgraded


class PostgresStore(SqlStore):
    placeholder = "%s"

    def __init__(self, dsn: str) -> None:
        import psycopg

        try:
            self.conn = psycopg.connect(dsn, autocommit=True)
        except psycopg.Error as exc:
            from engine.repository.uri import redact

            detail = redact(" ".join(str(exc).split()))
            raise WorkflowError(f"cannot open the workflow state DB {redact(dsn)}: {detail}",
                                hint="check PROCOS_STATE_DSN, or unset it to use SQLite") from exc
        if not self._current():
            self._create()
        self.conn.execute(f"SET search_path TO {SCHEMA}")

    def _current(self) -> bool:
        """Whether the schema exists at this version already (then nothing is locked or altered)."""
        with self._tx() as cur:
            cur.execute(f"SELECT to_regclass('{SCHEMA}.meta')")
            if cur.fetchone()[0] is None:
                return False
            cur.execute(f"SELECT value FROM {SCHEMA}.meta WHERE key = 'schema_version'")
            found = cur.fetchone()
        if found is not None:
            _check_schema(found[0], SCHEMA)
        return found is not None and int(found[0]) == SCHEMA_VERSION

    def _create(self) -> None:
        """Create or upgrade the schema, one process at a time (many workers may open the store at once)."""
        with self._tx() as cur:
            cur.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"SET LOCAL search_path TO {SCHEMA}")
            for stmt in TABLES.format(serial="BIGSERIAL PRIMARY KEY").split(";"):
                if stmt.strip():
                    cur.execute(stmt)
            cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                        (str(SCHEMA_VERSION),))
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            _check_schema(cur.fetchone()[0], SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                cur.execute("SELECT column_name FROM information_schema.columns WHERE table_schema = %s "
                            "AND table_name = %s", (SCHEMA, table))
                have = {r[0] for r in cur.fetchall()}
                for name, kind in columns:
                    if name not in have:
                        cur.execute(f"ALTER TABLE {table} ADD COLUMN {name} {kind}")
            cur.execute(upgrade_sql("%s"), (str(SCHEMA_VERSION),))

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.conn.transaction():
            yield self.conn.cursor()

    def close(self) -> None:
        self.conn.close()
