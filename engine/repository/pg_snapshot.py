"""One consistent view of a pgvector store read by several connections at once, as ``pg_dump -j`` does.

A coordinating connection opens a REPEATABLE READ transaction and exports its snapshot with
``pg_export_snapshot()``; every reader opens its own connection and adopts that snapshot with
``SET TRANSACTION SNAPSHOT`` before it reads, so all of them see exactly the same rows whatever is
committed meanwhile. The coordinator keeps its transaction open until every reader is done.
Readers stream id ranges (``lo <= id < hi``) in ascending id order with the store's ordinary
``COPY BINARY`` decoding (:func:`~.pg_reads.copy_out`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

from psycopg import Connection, sql

from engine.records import RecordBatch

from . import pg_reads, pg_schema


class SharedSnapshot:
    """An exported snapshot of one store table; :meth:`ranges` cuts it into readers of ``rows`` rows each."""

    def __init__(self, connect: Callable[[], Connection], table: str, dimensions: int) -> None:
        self._connect = connect
        self.table = table
        self.dimensions = dimensions
        self._conn = connect()
        try:
            self._conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            self.snapshot_id = str(self._conn.execute("SELECT pg_export_snapshot()").fetchone()[0])
            self.count = pg_reads.count(self._conn, table)
            self.sequence = int(pg_schema.state_value(self._conn, table, "seq"))
        except BaseException:
            self._conn.close()
            raise

    def range_starts(self, rows: int) -> list[str]:
        """The first id of every run of ``rows`` rows in id order (one scan of the primary key)."""
        stmt = sql.SQL("SELECT id FROM (SELECT id, row_number() OVER (ORDER BY id) - 1 AS n FROM {}) s"
                       " WHERE n %% %s = 0 ORDER BY id").format(sql.Identifier(self.table))
        return [r[0] for r in self._conn.execute(stmt, (int(rows),)).fetchall()]

    def ranges(self, rows: int, batch_size: int) -> list[Callable[[], Iterator[RecordBatch]]]:
        """One stream factory per run of ``rows`` rows (the last may be shorter), in id order."""
        starts = self.range_starts(rows)
        bounds = list(zip(starts, [*starts[1:], None], strict=False))
        return [lambda lo=lo, hi=hi: self.batches(lo, hi, batch_size) for lo, hi in bounds]

    def batches(self, lo: str, hi: str | None, batch_size: int) -> Iterator[RecordBatch]:
        """Rows with ``lo <= id < hi`` (``hi`` None: to the end) from the shared snapshot, ascending id."""
        conn = self._connect()
        try:
            conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            conn.execute(sql.SQL("SET TRANSACTION SNAPSHOT {}").format(sql.Literal(self.snapshot_id)))
            where = sql.SQL("id >= {}").format(sql.Literal(lo))
            if hi is not None:
                where += sql.SQL(" AND id < {}").format(sql.Literal(hi))
            yield from pg_reads.copy_out(conn, self.table, self.dimensions, where, batch_size)
        finally:
            conn.close()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> SharedSnapshot:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()
