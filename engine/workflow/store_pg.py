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
        with self._tx() as cur:
            cur.execute(f"CREATE SCHEMA IF NOT EXISTS {SCHEMA}")
            cur.execute(f"SET search_path TO {SCHEMA}")
            for stmt in TABLES.format(serial="BIGSERIAL PRIMARY KEY").split(";"):
                cur.execute(stmt)
            cur.execute("INSERT INTO meta (key, value) VALUES ('schema_version', %s) ON CONFLICT DO NOTHING",
                        (str(SCHEMA_VERSION),))
            cur.execute("SELECT value FROM meta WHERE key = 'schema_version'")
            _check_schema(cur.fetchone()[0], SCHEMA)
            for table, columns in ADDED_COLUMNS.items():
                for name, kind in columns:
                    cur.execute(f"ALTER TABLE {table} ADD COLUMN IF NOT EXISTS {name} {kind}")
            cur.execute(upgrade_sql("%s"), (str(SCHEMA_VERSION),))
        self.conn.execute(f"SET search_path TO {SCHEMA}")

    @contextmanager
    def _tx(self) -> Iterator[Any]:
        with self.conn.transaction():
            yield self.conn.cursor()

    def close(self) -> None:
        self.conn.close()
