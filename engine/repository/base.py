"""The VectorRepository protocol: the one contract every vector store backend implements.

A backend lives in its own module (``faiss.py``, ``pgvector.py``) and knows nothing of snapshots
or workflows. ``tests/test_conformance.py`` runs one suite against every backend; a backend is
done when that suite passes.

Scores: ``Hit.score`` is the metric's *distance*, lower is closer, exactly as pgvector's operators
define it: cosine distance ``1 - cos``, Euclidean distance for ``l2`` (not squared), and the
negative inner product for ``inner_product``. Ties are ordered by ascending id.

Search effort: an HNSW store answers unfiltered queries approximately, examining ``ef_search``
candidates (pgvector's ``hnsw.ef_search``, FAISS's ``efSearch``); ``query(..., exact=True)`` always
answers exactly, and :meth:`VectorRepository.set_ef_search` changes the stored effort.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, runtime_checkable

import numpy as np

from engine.errors import InvalidInput
from engine.records import EmbeddingRecord, OnConflict, RecordBatch

from .freeze import Freeze

INDEX_TYPES = ("hnsw", "flat")
# ef_construction 128, not pgvector's 64: on clustered data (the synthetic stores, real topic-grouped
# corpora) 3 of 22 pgvector builds at 64 of 50,000 x 256 left a cluster poorly reachable (recall 0.94
# to 0.98 for that cluster at ef_search 320, some queries finding none of their neighbours); builds at
# 128 served >= 0.996 at ef_search 320, for about 15% more build time (43% at 100,000 x 768, where
# recall at ef_search 320 rose from 0.965 to 0.981; bench/bench_hnsw_graph.py)
DEFAULT_HNSW = {"m": 16, "ef_construction": 128, "ef_search": 40}
MAX_EF_SEARCH = 1000  # pgvector's upper limit for hnsw.ef_search; the same bound for FAISS stores


def checked_ef_search(value: object, where: str) -> int:
    """``value`` as an HNSW search effort, or InvalidInput saying the allowed range."""
    if isinstance(value, bool) or not isinstance(value, int | np.integer) or not 1 <= int(value) <= MAX_EF_SEARCH:
        raise InvalidInput(f"ef_search for {where} must be an integer from 1 to {MAX_EF_SEARCH}, got {value!r}",
                           hint=f"give a value from 1 to {MAX_EF_SEARCH}")
    return int(value)


@dataclass(frozen=True)
class Hit:
    """One query result: the record's id, its distance to the query (lower is closer), its metadata."""

    id: str
    score: float
    metadata: dict[str, Any]


@dataclass(frozen=True)
class WriteResult:
    """What a write did: rows written (inserted or replaced) and rows skipped by the conflict rule."""

    written: int = 0
    skipped: int = 0

    def __add__(self, other: WriteResult) -> WriteResult:
        return WriteResult(self.written + other.written, self.skipped + other.skipped)


@dataclass(frozen=True)
class StoreSettings:
    """A store's fixed settings, taken from the URI / keywords when new and from the store when not."""

    dimensions: int | None = None
    metric: str = "cosine"
    index: str = "hnsw"
    index_params: dict[str, int] = field(default_factory=lambda: dict(DEFAULT_HNSW))


@dataclass(frozen=True)
class Changes:
    """What changed after a sequence number: upserted records (ascending id) and deleted ids."""

    since: int
    until: int
    upserts: list[RecordBatch]
    deletes: list[tuple[str, int, int]]  # (id, version at delete, seq)


@runtime_checkable
class VectorRepository(Protocol):
    """A vector store holding :class:`EmbeddingRecord` rows and its knowledge artifacts.

    Writes are durable when they return. ``upsert`` and ``delete`` raise
    :class:`~engine.errors.IngestionPaused` while the store's freeze flag is set (from any process)
    unless that freeze is stale (its holder is gone or its lease expired, see
    :mod:`engine.repository.freeze`): a write clears a stale freeze, logs it, and proceeds;
    they raise :class:`~engine.errors.StoreLocked` when another process holds the store's write lock and
    the backend cannot wait for it. Invalid input raises :class:`~engine.errors.InvalidRecord` and
    writes nothing of the batch.
    """

    uri: str
    """The URI the store was opened with, password removed."""

    backend: str
    """The backend's name: ``faiss`` or ``pgvector``."""

    @property
    def store_id(self) -> str:
        """A random id the store got when it was created; bundles record it so that deltas and chains
        can tell one store's history from another's."""

    @property
    def dimensions(self) -> int | None:
        """Vector dimensions, or None for a new store that has not seen a record yet."""

    @property
    def metric(self) -> str:
        """``cosine``, ``l2`` or ``inner_product``."""

    @property
    def settings(self) -> StoreSettings:
        """Dimensions, metric, index type and index parameters."""

    def upsert(self, records: Iterable[EmbeddingRecord]) -> WriteResult:
        """Insert records, or replace stored ones whose version is <= the incoming version."""

    def write_batch(self, batch: RecordBatch, on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL
                    ) -> WriteResult:
        """Bulk write one columnar batch atomically, resolving id collisions by ``on_conflict``."""

    def bulk_load(self, batches: Iterable[RecordBatch],
                  on_conflict: OnConflict = OnConflict.NEWER_OR_EQUAL, *,
                  search_index: str | None = None) -> WriteResult:
        """Write many batches (seeding, import); may defer index maintenance until the end.

        ``search_index`` optionally names a FAISS index file whose row ``i`` holds the ``i``-th
        record of ``batches`` (a bundle's ``index.faiss``); a backend that can use it checks it
        against every row and adopts it instead of building its own index, and ignores it otherwise.
        """

    def replace_all(self, batches: Iterable[RecordBatch], *, search_index: str | None = None) -> WriteResult:
        """Atomically replace every record with ``batches``: readers see the old or the new, never a mix.

        ``search_index`` as for :meth:`bulk_load`.
        """

    def query(self, vector: Sequence[float] | np.ndarray, k: int,
              filters: dict[str, Any] | None = None, *, exact: bool = False) -> list[Hit]:
        """The ``k`` nearest records (fewer only if fewer match), closest first, ties by id.

        An HNSW store answers an unfiltered query approximately (see ``ef_search``). With ``filters``,
        or with ``exact=True``, the answer is exact on every backend: the true ``k`` nearest by the
        distances above, whatever the index type (FAISS ranks its stored vectors exhaustively, pgvector
        scans the table with index scans disabled, in a read-only transaction).
        """

    def fetch(self, ids: Sequence[str]) -> list[EmbeddingRecord]:
        """The stored records among ``ids``, in the order of ``ids``; unknown ids are left out."""

    def delete(self, ids: Sequence[str]) -> int:
        """Delete records by id (remembered as tombstones); returns how many existed."""

    def count(self) -> int:
        """Number of records stored."""

    def iter_batches(self, batch_size: int = 10_000) -> Iterator[RecordBatch]:
        """All records in ascending id order, ``batch_size`` rows at a time, from one consistent view."""

    def iter_records(self, batch_size: int = 1_000) -> Iterator[EmbeddingRecord]:
        """All records one by one in ascending id order, reading ``batch_size`` rows at a time."""

    def sequence(self) -> int:
        """The store's current change sequence (0 for a store never written)."""

    def changes_since(self, seq: int, batch_size: int = 10_000) -> Changes:
        """Records upserted and ids deleted after change sequence ``seq`` (without a full scan)."""

    def set_ef_search(self, ef_search: int) -> None:
        """Store the HNSW search effort (1 to ``MAX_EF_SEARCH``) in the store's settings.

        This object and every process that opens the store afterwards query with it (a URI's own
        ``ef_search=`` still overrides it for that one opening). Allowed while ingestion is paused;
        a flat store keeps the value but searches exhaustively anyway. Raises InvalidInput when out
        of range.
        """

    def compact(self) -> None:
        """Rebuild search structures: fold write logs into the index, recreate missing indexes, refresh statistics."""

    def pause_ingestion(self, holder: dict[str, Any] | None = None,
                        lease_seconds: float | None = None) -> Freeze:
        """Set the freeze flag (persisted in the store; every process sees it); return the flag as it was.

        Without arguments, an operator's pause: no holder, no expiry; it replaces any freeze, is never
        stale, and only ``resume_ingestion()`` without a holder clears it. With ``holder`` (an owner
        record, :func:`engine.repository.freeze.holder`) and ``lease_seconds``, a leased freeze: set
        over a clear flag or a stale freeze, renewed over the holder's own, and otherwise (a live
        holder's freeze, an operator's pause) nothing changes. The caller holds the freeze afterwards
        exactly when :func:`~engine.repository.freeze.may_pause` says so for the returned state.
        Giving only one of ``holder`` and ``lease_seconds`` raises ValueError.
        """

    def renew_pause(self, holder: dict[str, Any], lease_seconds: float) -> bool:
        """Extend the lease of the freeze ``holder`` holds to now + ``lease_seconds``; safe from another thread.

        A holder naming a process instance takes the freeze over for the calling process. Returns
        False, changing nothing, when the flag is clear or set by someone else (the freeze was lost).
        """

    def resume_ingestion(self, holder: dict[str, Any] | None = None, *, stale_only: bool = False) -> Freeze:
        """Clear the freeze flag; return the flag as it was.

        Without a holder it clears any freeze (the operator's resume); with ``holder`` only that
        holder's freeze; with ``stale_only`` only a stale freeze (see :func:`~engine.repository.freeze.may_resume`).
        """

    def freeze_state(self) -> Freeze:
        """The freeze flag with its holder, lease expiry and whether it is stale (decided now)."""

    def is_paused(self) -> bool:
        """Whether the freeze flag is set (stale or not)."""

    @property
    def artifacts(self) -> ArtifactStore:
        """The knowledge artifacts that travel with this store."""

    def stats(self) -> dict[str, Any]:
        """``{"backend", "count", "dimensions", "metric", "index", "paused", "stale", "held_by",
        "lease_expires", "sequence", ...}``."""

    def export_snapshot(self, dest: str) -> Any:
        """Write a snapshot bundle of this store into the snapshots folder ``dest``."""

    def import_snapshot(self, src: str, mode: str = "append") -> Any:
        """Import a verified bundle (directory or ``.tar.zst``) with ``mode`` append or replace."""

    def close(self) -> None:
        """Release connections and file handles; the store stays on disk."""


@dataclass(frozen=True)
class ArtifactInfo:
    """One knowledge artifact: its bundle-relative path, sha256 and size in bytes."""

    path: str
    sha256: str
    size: int


@runtime_checkable
class ArtifactStore(Protocol):
    """Knowledge artifacts (BPMN, prompts, patterns, examples, domains, logs) stored beside vectors.

    Paths are relative POSIX paths laid out like a bundle (``bpmn/export_v1.bpmn``); see
    :func:`engine.repository.artifacts.check_artifact_path`.
    """

    def list(self) -> list[ArtifactInfo]:
        """Every artifact, sorted by path."""

    def read(self, path: str) -> bytes:
        """The artifact's bytes; raises StoreError when it does not exist."""

    def write(self, path: str, data: bytes) -> None:
        """Create or replace one artifact, atomically."""

    def delete(self, path: str) -> bool:
        """Remove one artifact; returns whether it existed."""

    def replace_all(self, files: dict[str, bytes]) -> None:
        """Make the artifact set exactly ``files``, atomically."""
