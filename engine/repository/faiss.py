"""The FAISS backend (URI ``faiss:PATH``): SQLite holds the records, FAISS the derived index.

Layout of PATH: ``store.sqlite`` (records, tombstones, change log; see :mod:`.faiss_meta`),
``index.<seq>.faiss`` (the index checkpoint; see :mod:`.faiss_index`), ``write.lock`` (held with
``flock`` while a write runs) and ``artifacts/``. A small write only touches SQLite; the index
file is rewritten ("folded") when the log since it grows past a threshold, after ``bulk_load`` and
``replace_all``, and by :meth:`FaissRepository.compact`. Queries bring the in-memory index up to
the store's current sequence first, so every open object sees what any process committed.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.errors import (
    StoreError,
    StoreNotFound,
)
from engine.records import (
    EmbeddingRecord,
    RecordBatch,
)

from . import faiss_errors, freeze, resolve_settings
from .artifacts import DirectoryArtifactStore
from .base import Changes, Hit, checked_ef_search
from .faiss_index import LiveIndex
from .faiss_meta import MetaStore, State
from .faiss_rows import iter_batches, record_from_row
from .faiss_scoring import check_query, exact_top, ranked, row_scores
from .faiss_writes import FaissStore
from .filters import normalize, sqlite_where
from .freeze import Freeze
from .uri import StoreURI

T = TypeVar("T")


class FaissRepository(FaissStore):
    """A :class:`~engine.repository.base.VectorRepository` kept in one directory (its state and writes:
    :class:`~.faiss_writes.FaissStore`)."""

    backend = "faiss"

    @classmethod
    def open(cls, parsed: StoreURI, wanted: dict[str, Any], *, create: bool = True) -> FaissRepository:
        path = Path(parsed.location)
        if not create and not (path / "store.sqlite").is_file():
            raise StoreNotFound(f"no FAISS store at {path}",
                                hint="check the path, or create the store first (e.g. procos store seed)")
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the store directory {path} ({exc.strerror})",
                             hint="give a path to a directory you can write, e.g. faiss:./store") from exc
        meta = MetaStore(path / "store.sqlite")
        try:
            stored = meta.settings()
            settings = resolve_settings(stored, wanted, where=parsed.text)
            if stored is None or (stored.dimensions is None and settings.dimensions is not None):
                with meta.write():
                    meta.save_settings(settings)
                    if settings.dimensions is not None:
                        meta.set_dimensions(settings.dimensions)
                settings = resolve_settings(meta.settings(), wanted, where=parsed.text)
        finally:
            meta.close()
        return cls(path, parsed.text, settings)

    # --- settings ------------------------------------------------------------------------------

    @property
    def store_id(self) -> str:
        with self._mutex:
            return self._meta.store_id()

    # --- reads --------------------------------------------------------------------------------

    def _synced(self, then: Callable[[State], T]) -> T:
        """Run ``then(state)`` in one read transaction with the in-memory index synced to that state."""
        return self._live.synced(self._meta, then, catchup_max=self.fold_min)

    def query(self, vector: Sequence[float] | np.ndarray, k: int,
              filters: dict[str, Any] | None = None, *, exact: bool = False) -> list[Hit]:
        clauses = normalize(filters)
        dims = self.dimensions
        if dims is None or k <= 0:
            return []
        q = check_query(vector, dims, self.metric)
        with self._mutex:
            if clauses:
                return self._exact(q, int(k), clauses)
            return self._synced(lambda state: self._nearest(q, int(k), exact))

    def _nearest(self, q: np.ndarray, k: int, exact: bool = False) -> list[Hit]:
        if exact:  # the index's stored vectors, searched exhaustively, then rescored from store.sqlite
            labels = self._exact_search.candidates(self._live, q, k)
        else:
            labels = self._live.nearest(q, k, int(self._settings.index_params.get("ef_search", 40)))
        if labels is None:  # never come back short while k records exist
            return self._exact(q, k, [])
        rows = self._meta.rows_by_label(labels)
        return ranked(rows, row_scores(rows, q, self.metric), k)

    def set_ef_search(self, ef_search: int) -> None:
        value = checked_ef_search(ef_search, self.uri)
        with self._mutex, self._meta.write():
            params = {**self._meta.settings().index_params, "ef_search": value}
            self._meta.save_index_params(params)
        self._settings = dataclasses.replace(self._settings,
                                             index_params={**self._settings.index_params, "ef_search": value})

    def _exact(self, q: np.ndarray, k: int, clauses: list) -> list[Hit]:
        where, params = sqlite_where(clauses)
        with self._meta.read() as conn:
            cursor = conn.execute(f"SELECT id, vector, metadata FROM records WHERE {where}", params)
            return exact_top(cursor, q, k, self.metric)

    def fetch(self, ids: Sequence[str]) -> list[EmbeddingRecord]:
        wanted = list(dict.fromkeys(ids))
        with self._mutex, self._meta.read():
            found = self._meta.fetch_rows(wanted)
        return [record_from_row(found[r]) for r in wanted if r in found]

    def count(self) -> int:
        with self._mutex:
            return self._meta.count()

    def iter_batches(self, batch_size: int = 10_000) -> Iterator[RecordBatch]:
        yield from iter_batches(self._meta.path, batch_size)

    def iter_records(self, batch_size: int = 1_000) -> Iterator[EmbeddingRecord]:
        for batch in self.iter_batches(batch_size):
            yield from batch.records()

    def search_graph(self) -> Any:
        """The store's HNSW graph with node ``i`` = the ``i``-th record in id order (what a bundle's
        ``index.faiss`` may carry so that an HNSW target needs no rebuild), or None for flat stores and
        graphs that still hold deleted records. Loads the index (the store's own memory) and hands it
        over: this object reloads its index when it is queried next."""
        if self.settings.index != "hnsw" or self.dimensions is None:
            return None
        from .faiss_graph import graph_in_row_order

        def take(state: State) -> Any:
            with self._meta.read() as conn:
                labels = np.fromiter((r[0] for r in conn.execute("SELECT label FROM records ORDER BY id")),
                                     dtype=np.int64)
            carried = graph_in_row_order(self._live, labels)
            if carried is None:
                return None
            self._graph_owner = carried[1]  # owns the graph's memory until this store is closed
            return carried[0]

        with self._mutex:
            try:
                return self._synced(take)
            finally:
                self._live = LiveIndex(self._settings, self.path)

    def sequence(self) -> int:
        with self._mutex:
            return self._meta.state().seq

    def changes_since(self, seq: int, batch_size: int = 10_000) -> Changes:
        dims = self.dimensions
        with self._mutex, self._meta.read():
            until = self._meta.state().seq
            upserts, deletes = self._meta.changes(seq, batch_size, dims or 0)
        return Changes(since=seq, until=until, upserts=upserts, deletes=deletes)

    # --- freeze flag, artifacts, stats ------------------------------------------------------------

    def pause_ingestion(self, holder: dict[str, Any] | None = None,
                        lease_seconds: float | None = None) -> Freeze:
        freeze.check_lease(holder, lease_seconds)
        with self._mutex, self._meta.write():
            before = self._meta.state().freeze()
            if freeze.may_pause(before, holder):
                self._meta.set_freeze(True, holder, freeze.expiry(lease_seconds))
        return before

    def renew_pause(self, holder: dict[str, Any], lease_seconds: float) -> bool:
        freeze.check_lease(holder, lease_seconds)
        meta = MetaStore(self._meta.path)  # a connection of its own: renewals run on a keeper thread
        try:
            with meta.write():
                current = meta.state().freeze()
                if not (current.paused and freeze.same_holder(current.held_by, holder)):
                    return False
                meta.set_freeze(True, holder, freeze.expiry(lease_seconds))
                return True
        finally:
            meta.close()

    def resume_ingestion(self, holder: dict[str, Any] | None = None, *, stale_only: bool = False) -> Freeze:
        with self._mutex, self._meta.write():
            before = self._meta.state().freeze()
            if freeze.may_resume(before, holder, stale_only):
                self._meta.set_freeze(False)
        return before

    def freeze_state(self) -> Freeze:
        with self._mutex, self._meta.read():
            return self._meta.state().freeze()

    def is_paused(self) -> bool:
        with self._mutex:
            return self._meta.state().paused

    @property
    def artifacts(self) -> DirectoryArtifactStore:
        return DirectoryArtifactStore(self.path / "artifacts")

    def stats(self) -> dict[str, Any]:
        s = self.settings
        with self._mutex, self._meta.read():
            state, count = self._meta.state(), self._meta.count()
        return {"backend": self.backend, "count": count, "dimensions": s.dimensions, "metric": s.metric,
                "index": s.index, **state.freeze().to_json(), "sequence": state.seq,
                "index_params": dict(s.index_params), "store_id": self.store_id,
                "index_build": {"state": "ready", "percent": 100.0, "eta_seconds": 0.0, "phase": None}}

    def export_snapshot(self, dest: str) -> Any:
        from engine.snapshot import export_snapshot
        return export_snapshot(self, dest)

    def import_snapshot(self, src: str, mode: str = "append") -> Any:
        from engine.snapshot import import_snapshot
        return import_snapshot(self, src, mode=mode)

    def close(self) -> None:
        with self._mutex:
            self._graph_owner = None
            self._meta.close()
            self._live = LiveIndex(self._settings, self.path)

    def __enter__(self) -> FaissRepository:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


faiss_errors.translate(FaissRepository)
