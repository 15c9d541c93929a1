"""The FAISS backend's state and its write path (:class:`FaissStore`); reads, the freeze flag and
stats are in :class:`~engine.repository.faiss.FaissRepository`, which extends it.

Writes hold this object's mutex and the store's ``write.lock`` (``flock``, re-entrant within the
object). A batch is one SQLite transaction and does no index work; the in-memory index catches up
on the next query, and the index file is rewritten ("folded") when the log since the checkpoint
grows past ``max(fold_min, fold_fraction * count)``, after ``bulk_load`` and ``replace_all``, and by
``compact``.
"""

from __future__ import annotations

import dataclasses
import fcntl
import os
import threading
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import (
    ConflictError,
    IngestionPaused,
    InvalidRecord,
    StoreLocked,
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

from . import freeze
from .base import StoreSettings, WriteResult
from .faiss_exact import ExactSearch
from .faiss_index import (
    LiveIndex,
    remove_stale_checkpoints,
    write_checkpoint,
)
from .faiss_meta import MetaStore, State
from .faiss_prebuilt import PrebuiltIndex


class FaissStore:
    """A FAISS store kept in one directory: its settings, its records and index, and every write."""

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

    # --- settings ------------------------------------------------------------------------------

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

    # --- the index: folding -------------------------------------------------------------------

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
