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
import fcntl
import os
import threading
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from engine.errors import (
    ConflictError,
    IngestionPaused,
    InvalidRecord,
    StoreError,
    StoreLocked,
    StoreNotFound,
)
from engine.owner import describe
from engine.records import (
    EmbeddingRecord,
    OnConflict,
    RecordBatch,
    dedupe_batch,
    to_micros,
    utc_now,
    validate_batch,
    wins,
)

from . import faiss_errors, freeze, resolve_settings
from .artifacts import DirectoryArtifactStore
from .base import Changes, Hit, StoreSettings, WriteResult, checked_ef_search
from .faiss_exact import ExactSearch
from .faiss_index import (
    LiveIndex,
    PrebuiltIndex,
    check_query,
    exact_top,
    ranked,
    remove_stale_checkpoints,
    row_scores,
    write_checkpoint,
)
from .faiss_meta import MetaStore, State, iter_batches, record_from_row
from .filters import normalize, sqlite_where
from .freeze import Freeze
from .uri import StoreURI

T = TypeVar("T")
EXACT_CHUNK = 4_096


class FaissRepository:
    """A :class:`~engine.repository.base.VectorRepository` kept in one directory."""

    backend = "faiss"
    fold_min = 20_000  # fold when the log since the checkpoint exceeds max(fold_min, fold_fraction * count)
    fold_fraction = 0.25
    rebuild_fraction = 0.25  # an hnsw fold rebuilds from live vectors when more than this share is dead

    def __init__(self, path: Path, uri: str, settings: StoreSettings, *, fold_min: int | None = None) -> None:
        self.path = path
        self.uri = uri
        self._settings = settings
        self._meta = MetaStore(path / "store.sqlite")
        self._live = LiveIndex(settings, path)
        self._exact_search = ExactSearch()
        self._mutex = threading.RLock()
        self._lock_fd: int | None = None
        self._lock_depth = 0
        self._graph_owner: Any = None
        if fold_min is not None:
            self.fold_min = fold_min

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

    @property
    def settings(self) -> StoreSettings:
        if self._settings.dimensions is None:
            with self._mutex:
                stored = self._meta.settings()
                if stored is not None and stored.dimensions is not None:
                    self._learn_dimensions(stored.dimensions)
        return self._settings

    @property
    def dimensions(self) -> int | None:
        return self.settings.dimensions

    @property
    def metric(self) -> str:
        return self._settings.metric

    def _learn_dimensions(self, dimensions: int) -> None:
        self._settings = dataclasses.replace(self._settings, dimensions=dimensions)
        self._live = LiveIndex(self._settings, self.path)

    # --- writes --------------------------------------------------------------------------------

    @contextmanager
    def _writing(self) -> Iterator[None]:
        """Hold this process's mutex and the store's write lock (re-entrant within this object)."""
        with self._mutex:
            if self._lock_depth == 0:
                fd = os.open(self.path / "write.lock", os.O_RDWR | os.O_CREAT, 0o644)
                try:
                    fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
                except BlockingIOError:
                    os.close(fd)
                    raise StoreLocked(f"store {self.uri} is locked: another process is writing to it",
                                      hint="wait for the other writer to finish and retry") from None
                self._lock_fd = fd
            self._lock_depth += 1
            try:
                yield
            finally:
                self._lock_depth -= 1
                if self._lock_depth == 0 and self._lock_fd is not None:
                    os.close(self._lock_fd)  # closing the descriptor releases the flock
                    self._lock_fd = None

    def _check_writable(self, state: State, *, clear: bool = True) -> None:
        """Refuse a write while the store is frozen; a stale freeze is cleared (inside the write
        transaction, with ``clear``) and logged instead."""
        if not state.paused:
            return
        current = state.freeze()
        if not current.stale:
            raise IngestionPaused(f"ingestion into store {self.uri} is paused"
                                  + (f" by {describe(current.held_by)}" if current.held_by else ""),
                                  hint=f"run `procos store resume {self.uri}` or call resume_ingestion()")
        if clear:
            self._meta.set_freeze(False)
            freeze.note_cleared(self.uri, current, "a write")

    def _claim_dimensions(self, batch: RecordBatch) -> None:
        """Inside a write transaction: check the batch against the stored dimensions, or set them."""
        stored = self._meta.settings()
        have = stored.dimensions if stored else None
        if have is None:
            self._meta.set_dimensions(batch.dimensions)
        elif have != batch.dimensions:
            raise InvalidRecord(batch.ids[0], f"has {batch.dimensions} dimensions, the store has {have}")

    def upsert(self, records: Iterable[EmbeddingRecord]) -> WriteResult:
        return self.write_batch(RecordBatch.from_records(records), OnConflict.NEWER_OR_EQUAL)

    def write_batch(self, batch: RecordBatch, on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL) -> WriteResult:
        with self._writing():
            result = self._write(batch, OnConflict(on_conflict))
            self._maybe_fold()
        return result

    def bulk_load(self, batches: Iterable[RecordBatch],
                  on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL, *,
                  search_index: str | os.PathLike[str] | None = None) -> WriteResult:
        """See the protocol; ``search_index`` (a bundle's index.faiss) is adopted into an empty store
        when it matches every row written, instead of building the index again."""
        total = WriteResult()
        with self._writing():
            with self._meta.read():
                start = self._meta.state()
                empty = self._meta.count() == 0
            prebuilt = PrebuiltIndex(search_index, self.settings) if search_index and empty else None
            for batch in batches:
                if prebuilt is not None and self.dimensions is not None:
                    prebuilt.check(batch.vectors, self.metric)
                total += self._write(batch, OnConflict(on_conflict))
            if prebuilt is not None:
                with self._meta.read():
                    state = self._meta.state()
                    fresh = not len(self._meta.dead_between(start.seq, state.seq, state.next_label))
                adopted = prebuilt.adopt(start.next_label, state.next_label - start.next_label) if fresh else None
                if adopted is not None:
                    self._live.adopt(adopted, state)
            self._fold()
        return total

    def _write(self, batch: RecordBatch, on_conflict: OnConflict) -> WriteResult:
        """One batch in one transaction, no index work (queries and folds catch the index up)."""
        if not len(batch):
            with self._meta.read():
                self._check_writable(self._meta.state(), clear=False)
            return WriteResult()
        validate_batch(batch, dimensions=self.dimensions, metric=self.metric)
        given = len(batch)
        batch = dedupe_batch(batch, on_conflict)
        with self._meta.write():
            state = self._meta.state()
            self._check_writable(state)
            self._claim_dimensions(batch)
            existing = self._meta.lookup(batch.ids)
            if on_conflict is OnConflict.ERROR and existing:
                rid = next(r for r in batch.ids if r in existing)
                raise ConflictError(f"record {rid!r} already exists in {self.uri} "
                                    f"({len(existing)} of the batch collide; nothing was written)",
                                    hint="write with on_conflict version, newer_or_equal, keep or overwrite")
            take = [i for i, rid in enumerate(batch.ids)
                    if rid not in existing or wins(int(batch.versions[i]), existing[rid][0], on_conflict)]
            if take:
                self._meta.upsert_rows(batch if len(take) == len(batch) else batch.take(take), existing, state)
        if self._settings.dimensions is None:
            self._learn_dimensions(batch.dimensions)
        return WriteResult(len(take), given - len(take))

    def replace_all(self, batches: Iterable[RecordBatch], *,
                    search_index: str | os.PathLike[str] | None = None) -> WriteResult:
        """See the protocol; ``search_index`` (a bundle's index.faiss) is adopted when it matches every
        row, instead of building the index again."""
        given = written = 0
        with self._writing():
            try:
                with self._meta.write():
                    state = self._meta.state()
                    self._check_writable(state)
                    seq, label = state.seq + 1, state.next_label
                    first_label = label
                    prebuilt = PrebuiltIndex(search_index, self.settings) if search_index else None
                    for batch in batches:
                        if not len(batch):
                            continue
                        validate_batch(batch, dimensions=self.dimensions, metric=self.metric)
                        given += len(batch)
                        batch = dedupe_batch(batch, OnConflict.NEWER_OR_EQUAL)
                        self._claim_dimensions(batch)
                        if self._settings.dimensions is None:
                            self._learn_dimensions(batch.dimensions)
                        existing = self._meta.lookup(batch.ids)
                        take = [i for i, rid in enumerate(batch.ids) if rid not in existing
                                or existing[rid][2] < seq or int(batch.versions[i]) >= existing[rid][0]]
                        rows = batch.take(take)
                        if prebuilt is not None:
                            prebuilt.check(rows.vectors, self.metric)
                        self._meta.replace_rows(rows, label, seq)
                        label, written = label + len(rows), written + len(rows)
                    self._meta.drop_older_than(seq, to_micros(utc_now(), record_id=None, name="now"))
                    name = None
                    if self.dimensions is not None:
                        new = dataclasses.replace(state, seq=seq, next_label=label)
                        adopted = prebuilt.adopt(first_label, label - first_label) if prebuilt else None
                        if adopted is not None and written == given:
                            self._live.adopt(adopted, new)
                        else:
                            self._live.sync(self._meta, new, rebuild=True)
                        name = write_checkpoint(self._live.index, self.path, seq)
                    self._meta.update_state(seq=seq, next_label=label, checkpoint_seq=seq, checkpoint_file=name,
                                            checkpoint_label=label, clean_seq=seq, floor_seq=seq)
            except BaseException:
                self._live = LiveIndex(self._settings, self.path)  # it may hold rows that were rolled back
                raise
            remove_stale_checkpoints(self.path, name)
        return WriteResult(written, given - written)

    def delete(self, ids: Sequence[str]) -> int:
        wanted = list(dict.fromkeys(ids))
        with self._writing():
            with self._meta.write():
                state = self._meta.state()
                self._check_writable(state)
                existing = self._meta.lookup(wanted)
                if not existing:
                    return 0
                seq = state.seq + 1
                gone = [r for r in wanted if r in existing]
                now = to_micros(utc_now(), record_id=None, name="now")
                self._meta.tombstone([(r, existing[r][0]) for r in gone], seq, now)
                self._meta.kill([existing[r][1] for r in gone], seq)
                self._meta.update_state(seq=seq)
            self._maybe_fold()
        return len(existing)

    # --- the index: catch-up and folding ---------------------------------------------------------

    def _synced(self, then: Callable[[State], T]) -> T:
        """Run ``then(state)`` in one read transaction with the in-memory index synced to that state."""
        return self._live.synced(self._meta, then, catchup_max=self.fold_min)

    def _maybe_fold(self) -> None:
        with self._meta.read():
            state = self._meta.state()
            pending = state.next_label - state.checkpoint_label + self._meta.dead_count_since(state.checkpoint_seq)
            due = pending > self.fold_min and pending > self.fold_fraction * self._meta.count()
        if due:
            self._fold()

    def _fold(self, purge: bool = False) -> None:
        """Write the index as a new checkpoint (caller holds the write lock)."""
        if self.dimensions is not None:
            self._live.fold(self._meta, purge=purge, rebuild_fraction=self.rebuild_fraction,
                            catchup_max=self.fold_min)

    def compact(self) -> None:
        """Write a fresh checkpoint now (an hnsw index is rebuilt without dead vectors) and clean up files."""
        with self._writing():
            self._fold(purge=True)

    # --- reads ---------------------------------------------------------------------------------

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
