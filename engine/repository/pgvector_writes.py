"""The pgvector backend's state and its write path (:class:`PgStore`); reads, the freeze flag and
stats are in :class:`~engine.repository.pgvector.PgVectorRepository`, which extends it.

Every write is one transaction that first takes the store's next change sequence from
``procos_store_state`` (which also serializes writers and carries the freeze flag); rows go in as
``COPY ... (FORMAT BINARY)`` (see :mod:`.pg_writes`); an import into an empty store loads a fresh
table and builds the HNSW index afterwards, concurrently (see :mod:`.pg_index_build`).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import chain
from typing import Any

from psycopg import Connection, sql

from engine.errors import IngestionPaused, StoreError
from engine.owner import describe
from engine.records import EmbeddingRecord, OnConflict, RecordBatch, validate_batch

from . import freeze, pg_reads, pg_schema, pg_writes
from .base import StoreSettings, WriteResult
from .freeze import Freeze
from .pg_artifacts import PgArtifactStore
from .pg_connection import connect


class PgStore:
    """One pgvector store (one table, one connection): its settings and every write."""

    def __init__(self, conn: Connection, dsn: str, uri: str, table: str, settings: StoreSettings) -> None:
        self._conn: Connection | None = conn
        self._dsn = dsn
        self.uri = uri
        self.table = table
        self._settings = settings
        self._artifacts = PgArtifactStore(self._connection, table)

    # --- settings --------------------------------------------------------------------------------

    @property
    def dimensions(self) -> int | None:
        return self._refresh().dimensions

    @property
    def metric(self) -> str:
        return self._settings.metric

    @property
    def settings(self) -> StoreSettings:
        return self._refresh()

    def _connection(self) -> Connection:
        if self._conn is None:
            raise StoreError(f"store {self.uri} is closed", hint="open it again with open_repository()")
        if self._conn.closed or self._conn.broken:  # lost (server restarted, connection killed): reconnect
            self._conn = connect(self._dsn, self.uri)
        return self._conn

    def _refresh(self) -> StoreSettings:
        """Pick up the dimensions another process set since we opened a store that had none."""
        if self._settings.dimensions is None:
            conn = self._connection()
            with conn.transaction():
                state = pg_schema.read_state(conn, self.table)
            if state is not None and state["settings"].dimensions is not None:
                self._settings = replace(self._settings, dimensions=state["settings"].dimensions)
        return self._settings

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(connection, *args)`` in a transaction of its own."""
        conn = self._connection()
        with conn.transaction():
            return fn(conn, *args)

    # --- writes ----------------------------------------------------------------------------------

    @contextmanager
    def _writing(self, batch: RecordBatch | None) -> Iterator[tuple[Connection, int, StoreSettings]]:
        """One write transaction: (connection, this write's seq, settings with the table created)."""
        conn = self._connection()
        with conn.transaction():
            seq, frozen = pg_schema.bump_seq(conn, self.table)
            if frozen.paused:
                if not frozen.stale:
                    raise self._paused_error(frozen)
                pg_schema.set_freeze(conn, self.table, False)
                freeze.note_cleared(self.uri, frozen, "a write")
            settings = self._settings
            if settings.dimensions is None:
                state = pg_schema.read_state(conn, self.table)
                dims = state["settings"].dimensions if state else None
                if dims is None and batch is not None:
                    dims = batch.dimensions
                    pg_schema.set_dimensions(conn, self.table, dims)
                    pg_schema.create_store_tables(conn, self.table, replace(settings, dimensions=dims))
                if dims is not None:
                    settings = replace(settings, dimensions=dims)
                    if batch is not None:
                        validate_batch(batch, dimensions=dims)
            previous, self._settings = self._settings, settings
            try:
                yield conn, seq, settings
            except BaseException:
                self._settings = previous
                raise

    def _empty(self, conn: Connection) -> bool:
        return conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(
            sql.Identifier(self.table))).fetchone()[0]

    def _checked(self, batches: Iterable[RecordBatch]) -> Iterator[RecordBatch]:
        for batch in batches:
            if len(batch):
                validate_batch(batch, dimensions=self._settings.dimensions, metric=self.metric)
                yield batch

    def upsert(self, records: Iterable[EmbeddingRecord]) -> WriteResult:
        return self.write_batch(RecordBatch.from_records(records), OnConflict.NEWER_OR_EQUAL)

    def write_batch(self, batch: RecordBatch, on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL) -> WriteResult:
        return self._write([batch], on_conflict, rebuild=False)

    def bulk_load(self, batches: Iterable[RecordBatch],
                  on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL, *, search_index: str | None = None
                  ) -> WriteResult:
        """One transaction; into an empty store the rows go to a fresh table (HNSW built after the commit).

        ``search_index`` (a FAISS file) is of no use to PostgreSQL and is ignored."""
        return self._write(batches, on_conflict, rebuild=True)

    def _write(self, batches: Iterable[RecordBatch], on_conflict: OnConflict, *, rebuild: bool) -> WriteResult:
        on_conflict = OnConflict(on_conflict)
        self._refresh()
        checked = self._checked(batches)
        first = next(checked, None)
        if first is None:
            self._refuse_if_paused()
            return WriteResult()
        with self._writing(first) as (conn, seq, settings):
            rest = chain([first], checked)
            empty = self._empty(conn)
            if empty and rebuild:
                conn.execute("SET LOCAL client_connection_check_interval = '1s'")
                result = pg_writes.load_new_table(conn, self.table, settings, rest, seq, on_conflict, replace=False)
            else:
                result = pg_writes.merge_batches(conn, self.table, rest, seq, on_conflict)
        if empty and rebuild:
            self.build_search_index()
        return result

    def bulk_load_streams(self, streams: Sequence[Callable[[], Iterable[RecordBatch]]],
                          on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL, *, replace: bool = False
                          ) -> WriteResult:
        """Load several streams of rows side by side, one connection each, in one commit of the store.

        Each stream's ids should ascend and the streams must hold disjoint ids (a bundle's shard ranges
        do); two streams that share an id raise StreamsOverlap and nothing is written. Into an empty
        store (or with ``replace``) the streams load in parallel (:mod:`.pg_parallel`); into a store
        holding rows, they are written one after the other, as :meth:`bulk_load` would."""
        on_conflict = OnConflict(on_conflict)
        settings = self._refresh()
        if len(streams) < 2 or settings.dimensions is None:
            batches = chain.from_iterable(s() for s in streams)
            return self.replace_all(batches) if replace else self.bulk_load(batches, on_conflict)
        from . import pg_parallel

        more = lambda: connect(self._dsn, self.uri)  # noqa: E731 - one more connection to the store
        try:
            with self._writing(None) as (conn, seq, settings):
                empty = self._empty(conn)
                # the swap reads what the streams committed after this transaction began
                fresh_reads = conn.execute("SHOW transaction_isolation").fetchone()[0] == "read committed"
                if not (empty or replace) or not fresh_reads:
                    result = self._write_streams(conn, seq, streams, on_conflict, replace)
                else:
                    # the store lock must outlive the load: no idle-in-transaction timeout may end it
                    conn.execute("SET LOCAL idle_in_transaction_session_timeout = 0")
                    result = pg_parallel.load_streams(conn, more, self.table, settings, streams, seq, on_conflict,
                                                      replace=replace, checked=self._checked)
        except BaseException:
            pg_parallel.drop_staging(more, self.table)  # after the rollback, and only while the lock is free
            raise
        if empty or replace:
            self.build_search_index()
        return result

    def _write_streams(self, conn: Connection, seq: int, streams: Sequence[Callable[[], Iterable[RecordBatch]]],
                       on_conflict: OnConflict, replace: bool) -> WriteResult:
        """The streams one after the other, in the caller's transaction: merged into a store holding rows,
        or (``replace``) into a fresh table swapped in."""
        batches = chain.from_iterable(s() for s in streams)
        if replace:
            return pg_writes.load_new_table(conn, self.table, self._settings, self._checked(batches), seq,
                                            OnConflict.NEWER_OR_EQUAL, replace=True)
        return pg_writes.merge_batches(conn, self.table, self._checked(batches), seq, on_conflict)

    def replace_all(self, batches: Iterable[RecordBatch], *, search_index: str | None = None) -> WriteResult:
        """Staging table, indexes built there, swapped in one transaction (``search_index`` is ignored)."""
        self._refresh()
        checked = self._checked(batches)
        first = next(checked, None)
        with self._writing(first) as (conn, seq, settings):
            if settings.dimensions is None:  # nothing stored, nothing given
                return WriteResult()
            conn.execute("SET LOCAL client_connection_check_interval = '1s'")
            rest = chain([first], checked) if first is not None else checked
            result = pg_writes.load_new_table(conn, self.table, settings, rest, seq,
                                              OnConflict.NEWER_OR_EQUAL, replace=True)
        self.build_search_index()
        return result

    def drop_store(self) -> None:
        """Remove the store (its tables, state row and artifacts): an import that created it and then
        found the bundle bad leaves nothing behind."""
        self._read(pg_schema.drop_store, self.table)

    def build_search_index(self) -> bool:
        """Build the HNSW index (``CREATE INDEX CONCURRENTLY``; queries keep answering, exactly, meanwhile)
        when it is missing or a failed build left it invalid; False when there was nothing to build.
        See :mod:`.pg_index_build`."""
        settings = self._refresh()
        if settings.index != "hnsw" or settings.dimensions is None:
            return False
        from . import pg_index_build

        rows = self._read(pg_reads.count, self.table)
        return pg_index_build.build(lambda: connect(self._dsn, self.uri, autocommit=True), self.table, settings, rows)

    def index_build(self) -> dict[str, Any]:
        """``{"state": "building"|"ready"|"missing"|"invalid", "percent", "eta_seconds", "phase"}`` of the HNSW index."""
        from . import pg_index_build

        return self._read(pg_index_build.build_state, self.table, self._refresh())

    def delete(self, ids: Sequence[str]) -> int:
        unique = sorted(set(ids))
        with self._writing(None) as (conn, seq, settings):
            if settings.dimensions is None or not unique:
                return 0
            return pg_writes.delete_ids(conn, self.table, unique, seq)

    def compact(self) -> None:
        """Make sure every index of the store exists (HNSW included), then refresh planner statistics."""
        settings = self._refresh()
        if settings.dimensions is None:
            return
        conn = self._connection()
        with conn.transaction():
            pg_schema.create_secondary_indexes(conn, self.table)
        self.build_search_index()
        pg_writes.analyze(conn, self.table)
        conn.commit()

    def _refuse_if_paused(self) -> None:
        frozen = self._read(pg_schema.read_freeze, self.table)
        if frozen.paused and not frozen.stale:
            raise self._paused_error(frozen)

    def _paused_error(self, frozen: Freeze) -> IngestionPaused:
        by = f" by {describe(frozen.held_by)}" if frozen.held_by else ""
        return IngestionPaused(f"ingestion into {self.uri} is paused{by}; nothing was written",
                               hint=f"procos store resume {self.uri}")
