"""The pgvector backend: a store is one table in PostgreSQL with the ``vector`` extension.

``postgresql://user@host:port/db?table=NAME`` uses an existing server; ``postgresql+embedded:PATH``
starts (or reuses) the embedded server of the ``pgserver`` wheel with data directory ``PATH``.
Every write is one transaction that first takes the store's next change sequence from
``procos_store_state`` (which also serializes writers and carries the freeze flag); records move
in and out as ``COPY ... (FORMAT BINARY)`` encoded with NumPy (see :mod:`.pgcopy`). Connections and typed errors: :mod:`.pg_connection`; state and writes:
:mod:`.pgvector_writes`.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import numpy as np
from psycopg import Connection, sql

from engine.errors import StoreNotFound
from engine.records import EmbeddingRecord, RecordBatch

from . import freeze, pg_reads, pg_schema
from .base import Changes, Hit, checked_ef_search
from .filters import normalize
from .freeze import Freeze
from .pg_artifacts import PgArtifactStore
from .pg_connection import connect, translate_errors
from .pgvector_writes import PgStore
from .uri import StoreURI


class PgVectorRepository(PgStore):
    """A :class:`~engine.repository.base.VectorRepository` in one PostgreSQL table (one connection; its
    state and writes: :class:`~.pgvector_writes.PgStore`)."""

    backend = "pgvector"

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



translate_errors(PgVectorRepository, (
    "upsert", "write_batch", "bulk_load", "bulk_load_streams", "replace_all", "query", "fetch", "delete", "count", "iter_batches",
    "iter_records", "sequence", "changes_since", "pause_ingestion", "resume_ingestion", "renew_pause", "freeze_state",
    "is_paused", "stats", "compact", "set_ef_search", "build_search_index", "index_build"))

__all__ = ["PgVectorRepository", "connect"]
