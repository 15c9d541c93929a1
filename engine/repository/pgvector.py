"""The pgvector backend: a store is one table in PostgreSQL with the ``vector`` extension.

``postgresql://user@host:port/db?table=NAME`` uses an existing server; ``postgresql+embedded:PATH``
starts (or reuses) the embedded server of the ``pgserver`` wheel with data directory ``PATH``.
Every write is one transaction that first takes the store's next change sequence from
``procos_store_state`` (which also serializes writers and carries the freeze flag); records move
in and out as ``COPY ... (FORMAT BINARY)`` encoded with NumPy (see :mod:`.pgcopy`).
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import replace
from itertools import chain
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
from psycopg import Connection, sql

from engine.errors import IngestionPaused, StoreError, StoreNotFound
from engine.owner import describe
from engine.records import EmbeddingRecord, OnConflict, RecordBatch, validate_batch

from . import freeze, pg_reads, pg_schema, pg_writes
from .base import Changes, Hit, StoreSettings, WriteResult, checked_ef_search
from .filters import normalize
from .freeze import Freeze
from .pg_artifacts import PgArtifactStore
from .uri import StoreURI


def connect(dsn: str, where: str, *, autocommit: bool = False) -> Connection:
    """A psycopg connection to ``dsn``; connection failures become StoreError naming ``where``."""
    try:
        return psycopg.connect(dsn, autocommit=autocommit, client_encoding="utf8", application_name="procos")
    except psycopg.OperationalError as exc:
        from engine.secrets import redact_text

        detail = redact_text(" ".join(str(exc).split()))  # libpq's message, on one line
        hint = "check that the server is running and the URI's user, host, port and database"
        if "password" in detail.lower():
            hint = ("stored URIs carry no password: give it to the process that opens the store with "
                    "PGPASSWORD, ~/.pgpass, or ?password_env=NAME in the URI")
        raise StoreError(f"cannot connect to {where}: {detail}", hint=hint) from exc


class PgVectorRepository:
    """A :class:`~engine.repository.base.VectorRepository` in one PostgreSQL table (one connection)."""

    backend = "pgvector"

    def __init__(self, conn: Connection, dsn: str, uri: str, table: str, settings: StoreSettings) -> None:
        self._conn: Connection | None = conn
        self._dsn = dsn
        self.uri = uri
        self.table = table
        self._settings = settings
        self._artifacts = PgArtifactStore(self._connection, table)

    @classmethod
    def open(cls, parsed: StoreURI, wanted: dict[str, Any], *, create: bool = True) -> PgVectorRepository:
        missing = StoreNotFound(f"no pgvector store {parsed.table!r} at {parsed.text}",
                                hint="check the URI and its ?table=, or create the store first")
        if parsed.scheme == "postgresql+embedded":
            if not create and not (Path(parsed.location) / "PG_VERSION").is_file():
                raise missing
            from .embedded import server_uri

            dsn = server_uri(parsed.location)
        else:
            dsn = parsed.location
        table = parsed.table
        pg_schema.check_table_name(table, parsed.text)
        conn = connect(dsn, parsed.text)
        try:
            if not create and not pg_schema.store_exists(conn, table):
                raise missing
            with conn.transaction():
                settings = pg_schema.prepare_store(conn, table, wanted, parsed.text)
        except BaseException:
            conn.close()
            raise
        return cls(conn, dsn, parsed.text, table, settings)

    # --- settings --------------------------------------------------------------------------------

    @property
    def store_id(self) -> str:
        return str(self._read(pg_schema.state_value, self.table, "store_id"))

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

    def _db_error(self, exc: psycopg.Error) -> StoreError:
        """The typed error of a psycopg failure: a lost connection, a full server disk, or anything else."""
        conn = self._conn
        state = exc.sqlstate or ""
        if isinstance(exc, psycopg.InterfaceError) or isinstance(exc, psycopg.OperationalError) and (
                conn is None or conn.closed or conn.broken or not state or state.startswith(("08", "57P"))):
            return self._lost(exc)  # this or a stream's own connection is gone (no SQLSTATE: client side)
        detail = " ".join(str(exc).split()) or type(exc).__name__
        if isinstance(exc, psycopg.errors.DiskFull):
            from engine.errors import DiskFull

            return DiskFull(f"the PostgreSQL server of {self.uri} ran out of disk space: {detail}",
                            hint="free space on the database server, then run it again; the operation was "
                                 "rolled back")
        if isinstance(exc, psycopg.errors.InsufficientPrivilege):
            return StoreError(f"PostgreSQL refused {self.uri}'s role: {detail}",
                              hint="grant the role the privileges on the store's tables, or use another role")
        return StoreError(f"PostgreSQL failed an operation on {self.uri}: {detail}",
                          hint="check the server's log; the operation was rolled back, run it again")

    def _lost(self, exc: Exception) -> StoreError:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        return StoreError(f"the PostgreSQL connection of {self.uri} failed: {first}",
                          hint="check that the server is running and reachable; the operation was rolled back, "
                               "run it again (the store reconnects)")

    def _refresh(self) -> StoreSettings:
        """Pick up the dimensions another process set since we opened a store that had none."""
        if self._settings.dimensions is None:
            conn = self._connection()
            with conn.transaction():
                state = pg_schema.read_state(conn, self.table)
            if state is not None and state["settings"].dimensions is not None:
                self._settings = replace(self._settings, dimensions=state["settings"].dimensions)
        return self._settings

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
        """One transaction; into an empty store the rows go to a fresh table indexed at the end.

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
        result = WriteResult()
        with self._writing(first) as (conn, seq, settings):
            rest = chain([first], checked)
            empty = conn.execute(sql.SQL("SELECT NOT EXISTS (SELECT 1 FROM {})").format(
                sql.Identifier(self.table))).fetchone()[0]
            if empty and rebuild:
                conn.execute("SET LOCAL client_connection_check_interval = '1s'")
                result = pg_writes.load_new_table(conn, self.table, settings, rest, seq, on_conflict, replace=False)
            else:
                for batch, deduped, payload in pg_writes.encoded(rest, seq, on_conflict):
                    result += pg_writes.write_batch(conn, self.table, batch, seq, on_conflict, (deduped, payload))
        if empty and rebuild:
            self.build_search_index()
        return result

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

        rows = self.count()
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

    # --- reads -----------------------------------------------------------------------------------

    def query(self, vector: Sequence[float] | np.ndarray, k: int,
              filters: dict[str, Any] | None = None, *, exact: bool = False) -> list[Hit]:
        clauses = normalize(filters)
        settings = self._refresh()
        if k <= 0 or settings.dimensions is None:
            return []
        return self._read(pg_reads.nearest, self.table, settings, vector, k, clauses, exact)

    def set_ef_search(self, ef_search: int) -> None:
        value = checked_ef_search(ef_search, self.uri)
        self._read(pg_schema.set_index_param, self.table, "ef_search", value)
        self._settings = replace(self._settings, index_params={**self._settings.index_params, "ef_search": value})

    def fetch(self, ids: Sequence[str]) -> list[EmbeddingRecord]:
        wanted = list(ids)
        if not wanted or self._refresh().dimensions is None:
            return []
        return self._read(pg_reads.fetch, self.table, wanted)

    def count(self) -> int:
        return 0 if self._refresh().dimensions is None else self._read(pg_reads.count, self.table)

    def iter_batches(self, batch_size: int = 10_000) -> Iterator[RecordBatch]:
        self._connection()  # refuse on a closed store
        dims = self._refresh().dimensions
        if dims is None:
            return
        # A connection of its own: the caller may use the store while the stream is open.
        reader = connect(self._dsn, self.uri, autocommit=True)
        try:
            reader.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
            yield from pg_reads.copy_out(reader, self.table, dims, sql.SQL("TRUE"), batch_size)
        finally:
            reader.close()

    def shared_snapshot(self) -> Any:
        """One exported snapshot of the store for several reading connections (``pg_dump -j``), or None
        for a store without dimensions. See :class:`~.pg_snapshot.SharedSnapshot`."""
        self._connection()
        dims = self._refresh().dimensions
        if dims is None:
            return None
        from .pg_snapshot import SharedSnapshot

        return SharedSnapshot(lambda: connect(self._dsn, self.uri, autocommit=True), self.table, dims)

    def iter_records(self, batch_size: int = 1_000) -> Iterator[EmbeddingRecord]:
        for batch in self.iter_batches(batch_size):
            yield from batch.records()

    def sequence(self) -> int:
        return int(self._read(pg_schema.state_value, self.table, "seq"))

    def changes_since(self, seq: int, batch_size: int = 10_000) -> Changes:
        dims = self._refresh().dimensions
        conn = self._connection()
        with conn.transaction():
            conn.execute("SET TRANSACTION ISOLATION LEVEL REPEATABLE READ READ ONLY")
            return pg_reads.changes(conn, self.table, dims, seq, batch_size)

    def _read(self, fn: Callable[..., Any], *args: Any) -> Any:
        """``fn(connection, *args)`` in a transaction of its own."""
        conn = self._connection()
        with conn.transaction():
            return fn(conn, *args)

    # --- freeze flag, artifacts, stats -----------------------------------------------------------

    def pause_ingestion(self, holder: dict[str, Any] | None = None,
                        lease_seconds: float | None = None) -> Freeze:
        freeze.check_lease(holder, lease_seconds)

        def pause(conn: Connection) -> Freeze:
            before = pg_schema.read_freeze(conn, self.table, lock=True)
            if freeze.may_pause(before, holder):
                pg_schema.set_freeze(conn, self.table, True, holder, freeze.expiry(lease_seconds))
            return before
        return self._read(pause)

    def renew_pause(self, holder: dict[str, Any], lease_seconds: float) -> bool:
        freeze.check_lease(holder, lease_seconds)
        with connect(self._dsn, self.uri) as conn:  # a connection of its own: renewals run on a keeper thread
            current = pg_schema.read_freeze(conn, self.table, lock=True)
            if not (current.paused and freeze.same_holder(current.held_by, holder)):
                return False
            pg_schema.set_freeze(conn, self.table, True, holder, freeze.expiry(lease_seconds))
            conn.commit()
            return True

    def resume_ingestion(self, holder: dict[str, Any] | None = None, *, stale_only: bool = False) -> Freeze:
        def resume(conn: Connection) -> Freeze:
            before = pg_schema.read_freeze(conn, self.table, lock=True)
            if freeze.may_resume(before, holder, stale_only):
                pg_schema.set_freeze(conn, self.table, False)
            return before
        return self._read(resume)

    def freeze_state(self) -> Freeze:
        return self._read(pg_schema.read_freeze, self.table)

    def is_paused(self) -> bool:
        return bool(self._read(pg_schema.state_value, self.table, "paused"))

    def _refuse_if_paused(self) -> None:
        frozen = self.freeze_state()
        if frozen.paused and not frozen.stale:
            raise self._paused_error(frozen)

    def compact(self) -> None:
        """Make sure every index of the store exists (HNSW included), then refresh planner statistics."""
        settings = self._refresh()
        if settings.dimensions is None:
            return
        conn = self._connection()
        with conn.transaction():
            pg_schema.create_secondary_indexes(conn, self.table)
        self.build_search_index()
        conn.execute(sql.SQL("ANALYZE {}").format(sql.Identifier(self.table)))
        conn.commit()

    def _paused_error(self, frozen: Freeze) -> IngestionPaused:
        by = f" by {describe(frozen.held_by)}" if frozen.held_by else ""
        return IngestionPaused(f"ingestion into {self.uri} is paused{by}; nothing was written",
                               hint=f"procos store resume {self.uri}")

    @property
    def artifacts(self) -> PgArtifactStore:
        return self._artifacts

    def stats(self) -> dict[str, Any]:
        settings = self._refresh()
        return {"backend": self.backend, "count": self.count(), "dimensions": settings.dimensions,
                "metric": settings.metric, "index": settings.index, **self.freeze_state().to_json(),
                "sequence": self.sequence(), "index_params": dict(settings.index_params),
                "store_id": self.store_id, "index_build": self.index_build()}

    def export_snapshot(self, dest: str) -> Any:
        from engine.snapshot import export_snapshot

        return export_snapshot(self, dest)

    def import_snapshot(self, src: str, mode: str = "append") -> Any:
        from engine.snapshot import import_snapshot

        return import_snapshot(self, src, mode=mode)

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None

    def __enter__(self) -> PgVectorRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"PgVectorRepository({self.uri!r})"


def _translate_connection_errors(method: Callable[..., Any]) -> Callable[..., Any]:
    """Turn a psycopg error inside ``method`` into a typed StoreError on one line with a hint (generators too)."""
    if inspect.isgeneratorfunction(method):
        @functools.wraps(method)
        def stream(self: PgVectorRepository, *args: Any, **kwargs: Any) -> Iterator[Any]:
            try:
                yield from method(self, *args, **kwargs)
            except psycopg.Error as exc:
                raise self._db_error(exc) from exc
        return stream

    @functools.wraps(method)
    def call(self: PgVectorRepository, *args: Any, **kwargs: Any) -> Any:
        try:
            return method(self, *args, **kwargs)
        except psycopg.Error as exc:
            raise self._db_error(exc) from exc
    return call


for _name in ("upsert", "write_batch", "bulk_load", "replace_all", "query", "fetch", "delete", "count",
              "iter_batches", "iter_records", "sequence", "changes_since", "pause_ingestion", "resume_ingestion",
              "renew_pause", "freeze_state", "is_paused", "stats", "compact", "set_ef_search", "build_search_index",
              "index_build"):
    setattr(PgVectorRepository, _name, _translate_connection_errors(getattr(PgVectorRepository, _name)))

__all__ = ["PgVectorRepository", "connect"]
