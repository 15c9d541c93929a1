"""Embedding records, their validation, and the columnar batch that bulk paths move.

An :class:`EmbeddingRecord` is one row of the knowledge layer. A :class:`RecordBatch` holds many
rows as columns (a 2-D float32 NumPy array for the vectors, int64 microsecond timestamps), which is
what exports, imports and seeding move; per-record objects exist only at the edges of the API.

Metadata is kept as *canonical JSON text* (sorted keys, no whitespace, UTF-8, no NaN), so a record
leaves every backend byte-for-byte the way it came in.
"""

from __future__ import annotations

import enum
import hashlib
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from engine.errors import InvalidRecord

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
METRICS = ("cosine", "l2", "inner_product")


class OnConflict(enum.StrEnum):
    """What a write does when an incoming record's id is already stored."""

    NEWER_OR_EQUAL = "newer_or_equal"  # upsert rule: replace when incoming.version >= stored.version
    VERSION = "version"  # import default: replace when incoming.version > stored.version (ties keep)
    KEEP = "keep"  # never replace a stored record
    OVERWRITE = "overwrite"  # always replace
    ERROR = "error"  # any collision raises ConflictError and nothing is written


def utc_now() -> datetime:
    """The current time, timezone-aware UTC, truncated to microseconds (what every store keeps)."""
    return datetime.now(UTC)


def canonical_json(value: Any, *, record_id: object = None) -> str:
    """Serialize ``value`` as canonical JSON text; raise InvalidRecord when it is not plain JSON."""
    try:
        return json.dumps(value, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord(record_id, f"metadata is not plain JSON ({exc})",
                            hint="use only str, int, float, bool, None, lists and dicts with str keys") from exc


def first_noncanonical(texts: Sequence[str]) -> int | None:
    """Index of the first text that is not a canonical JSON object, or None when every one is.

    The whole batch is parsed and serialized once (``[t0,t1,...]``: one call into the C parser instead
    of one per row); only a batch that fails is looked at row by row. A text is canonical when it is a
    JSON object whose :func:`canonical_json` is exactly the text, so the joined array is canonical
    exactly when every element is.
    """
    if not texts:
        return None
    joined = "[" + ",".join(texts) + "]"
    try:
        values = json.loads(joined)
        if (len(values) == len(texts) and all(type(v) is dict for v in values)
                and json.dumps(values, sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                               allow_nan=False) == joined):
            return None
    except (TypeError, ValueError, RecursionError):
        pass
    for i, text in enumerate(texts):
        try:
            value = json.loads(text)
            if not isinstance(value, dict) or canonical_json(value) != text:
                return i
        except (TypeError, ValueError, RecursionError, InvalidRecord):
            return i
    return None


def to_micros(ts: datetime, *, record_id: object, name: str) -> int:
    """Microseconds since the Unix epoch of an aware datetime; naive datetimes are refused."""
    if not isinstance(ts, datetime):
        raise InvalidRecord(record_id, f"{name} must be a datetime, got {type(ts).__name__}")
    if ts.tzinfo is None or ts.utcoffset() is None:
        raise InvalidRecord(record_id, f"{name} is a naive datetime",
                            hint="pass timezone-aware timestamps, e.g. datetime.now(timezone.utc)")
    delta = ts - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def from_micros(us: int) -> datetime:
    """The aware UTC datetime of a microsecond count since the epoch."""
    return EPOCH + timedelta(microseconds=int(us))


def vector_sha256(vector: np.ndarray) -> str:
    """sha256 hex digest of a vector's little-endian float32 bytes (the bundle's ``vector_hash``)."""
    return hashlib.sha256(np.ascontiguousarray(vector, dtype="<f4").tobytes()).hexdigest()


@dataclass(frozen=True, eq=False)
class EmbeddingRecord:
    """One embedding with its metadata, version and provenance.

    Construction validates and normalizes: ``vector`` becomes a 1-D float32 array with only finite
    values, ``metadata`` must be a JSON object, timestamps must be timezone-aware and are kept in
    UTC. A violation raises :class:`~engine.errors.InvalidRecord` naming the record's id.
    """

    id: str
    vector: np.ndarray
    metadata: dict[str, Any] = field(default_factory=dict)
    version: int = 1
    source_hash: str = ""
    created_ts: datetime = field(default_factory=utc_now)
    updated_ts: datetime = field(default_factory=utc_now)

    def __post_init__(self) -> None:
        rid = self.id
        if not isinstance(rid, str) or not rid:
            raise InvalidRecord(rid, "id must be a non-empty string")
        if "\x00" in rid:
            raise InvalidRecord(rid, "id contains a NUL character")
        try:
            vec = np.asarray(self.vector, dtype=np.float32)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(rid, f"vector is not numeric ({exc})") from exc
        if vec.ndim != 1 or vec.size == 0:
            raise InvalidRecord(rid, f"vector must be 1-D and non-empty, got shape {vec.shape}")
        if not np.isfinite(vec).all():
            raise InvalidRecord(rid, "vector contains NaN or Inf")
        object.__setattr__(self, "vector", np.ascontiguousarray(vec))
        if not isinstance(self.metadata, dict):
            raise InvalidRecord(rid, f"metadata must be a JSON object, got {type(self.metadata).__name__}")
        canonical_json(self.metadata, record_id=rid)
        if isinstance(self.version, bool) or not isinstance(self.version, int | np.integer):
            raise InvalidRecord(rid, f"version must be an integer, got {self.version!r}")
        if not 0 <= int(self.version) < 2**63:
            raise InvalidRecord(rid, f"version must be between 0 and 2**63-1, got {self.version}")
        object.__setattr__(self, "version", int(self.version))
        if not isinstance(self.source_hash, str):
            raise InvalidRecord(rid, "source_hash must be a string")
        for name in ("created_ts", "updated_ts"):
            us = to_micros(getattr(self, name), record_id=rid, name=name)
            object.__setattr__(self, name, from_micros(us))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, EmbeddingRecord):
            return NotImplemented
        return (self.id == other.id and np.array_equal(self.vector, other.vector)
                and canonical_json(self.metadata) == canonical_json(other.metadata)
                and self.version == other.version and self.source_hash == other.source_hash
                and self.created_ts == other.created_ts and self.updated_ts == other.updated_ts)

    __hash__ = None  # type: ignore[assignment]


@dataclass(frozen=True, eq=False)
class RecordBatch:
    """Many records as columns: the unit every bulk path (seed, export, import) moves.

    ``vectors`` is a C-contiguous ``(n, d)`` float32 array; ``metadata`` holds canonical JSON text;
    timestamps are int64 microseconds since the epoch (UTC). Use :meth:`from_records` or
    :func:`make_batch` to build one with validation.
    """

    ids: list[str]
    vectors: np.ndarray
    metadata: list[str]
    versions: np.ndarray
    source_hashes: list[str]
    created_us: np.ndarray
    updated_us: np.ndarray

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def dimensions(self) -> int:
        return int(self.vectors.shape[1])

    @classmethod
    def from_records(cls, records: Iterable[EmbeddingRecord]) -> RecordBatch:
        recs = list(records)
        if not recs:
            return empty_batch(0)
        dims = {r.vector.shape[0] for r in recs}
        if len(dims) > 1:
            first = recs[0].vector.shape[0]
            bad = next(r for r in recs if r.vector.shape[0] != first)
            raise InvalidRecord(bad.id, f"has {bad.vector.shape[0]} dimensions, the batch has {first}")
        return make_batch(
            ids=[r.id for r in recs],
            vectors=np.stack([r.vector for r in recs]),
            metadata=[canonical_json(r.metadata, record_id=r.id) for r in recs],
            versions=[r.version for r in recs],
            source_hashes=[r.source_hash for r in recs],
            created_us=[to_micros(r.created_ts, record_id=r.id, name="created_ts") for r in recs],
            updated_us=[to_micros(r.updated_ts, record_id=r.id, name="updated_ts") for r in recs],
            validate=False,
        )

    def record(self, i: int) -> EmbeddingRecord:
        """Row ``i`` as an :class:`EmbeddingRecord` (for the per-record API edges only)."""
        return EmbeddingRecord(
            id=self.ids[i], vector=self.vectors[i].copy(), metadata=json.loads(self.metadata[i]),
            version=int(self.versions[i]), source_hash=self.source_hashes[i],
            created_ts=from_micros(self.created_us[i]), updated_ts=from_micros(self.updated_us[i]))

    def records(self) -> list[EmbeddingRecord]:
        return [self.record(i) for i in range(len(self))]

    def take(self, index: Sequence[int] | np.ndarray) -> RecordBatch:
        """The rows at ``index`` (in that order) as a new batch."""
        idx = np.asarray(index, dtype=np.int64)
        return RecordBatch(
            ids=[self.ids[i] for i in idx], vectors=np.ascontiguousarray(self.vectors[idx]),
            metadata=[self.metadata[i] for i in idx], versions=self.versions[idx],
            source_hashes=[self.source_hashes[i] for i in idx],
            created_us=self.created_us[idx], updated_us=self.updated_us[idx])

    def sorted_by_id(self) -> RecordBatch:
        order = sorted(range(len(self)), key=self.ids.__getitem__)
        return self if order == list(range(len(self))) else self.take(order)

    def vector_hashes(self) -> list[str]:
        """sha256 of each row's little-endian float32 bytes."""
        raw = np.ascontiguousarray(self.vectors, dtype="<f4")
        return [hashlib.sha256(row.tobytes()).hexdigest() for row in raw]


def empty_batch(dimensions: int) -> RecordBatch:
    return RecordBatch([], np.zeros((0, dimensions), np.float32), [], np.zeros(0, np.int64), [],
                       np.zeros(0, np.int64), np.zeros(0, np.int64))


def make_batch(*, ids: Sequence[str], vectors: np.ndarray, metadata: Sequence[str],
               versions: Sequence[int] | np.ndarray, source_hashes: Sequence[str],
               created_us: Sequence[int] | np.ndarray, updated_us: Sequence[int] | np.ndarray,
               validate: bool = True) -> RecordBatch:
    """Build a batch from columns; with ``validate`` every row is checked like a record."""
    batch = RecordBatch(
        ids=list(ids), vectors=np.ascontiguousarray(vectors, dtype=np.float32),
        metadata=list(metadata), versions=np.asarray(versions, dtype=np.int64),
        source_hashes=list(source_hashes), created_us=np.asarray(created_us, dtype=np.int64),
        updated_us=np.asarray(updated_us, dtype=np.int64))
    n = len(batch.ids)
    if batch.vectors.ndim != 2 or batch.vectors.shape[0] != n:
        raise InvalidRecord(None, f"vectors must have shape (n, d) with n={n}, got {batch.vectors.shape}")
    for name in ("metadata", "versions", "source_hashes", "created_us", "updated_us"):
        if len(getattr(batch, name)) != n:
            raise InvalidRecord(None, f"column {name} has {len(getattr(batch, name))} rows, ids have {n}")
    if validate:
        validate_batch(batch)
    return batch


def validate_batch(batch: RecordBatch, *, dimensions: int | None = None, metric: str | None = None) -> None:
    """Check every row; raise InvalidRecord naming the first bad record (the batch is then not written)."""
    if dimensions is not None and len(batch) and batch.dimensions != dimensions:
        raise InvalidRecord(batch.ids[0], f"has {batch.dimensions} dimensions, the store has {dimensions}",
                            hint="embed with the model the store was created for, or use a new store")
    for rid in batch.ids:
        if not isinstance(rid, str) or not rid or "\x00" in rid:
            raise InvalidRecord(rid, "id must be a non-empty string without NUL characters")
    finite = np.isfinite(batch.vectors).all(axis=1)
    if not finite.all():
        raise InvalidRecord(batch.ids[int(np.argmin(finite))], "vector contains NaN or Inf")
    if metric == "cosine" and len(batch):
        zero = ~np.any(batch.vectors != 0, axis=1)
        if zero.any():
            raise InvalidRecord(batch.ids[int(np.argmax(zero))], "vector is all zeros, which has no cosine",
                                hint="drop the record or use metric l2 / inner_product")
    bad = first_noncanonical(batch.metadata)
    for rid, text in zip(batch.ids[bad:] if bad is not None else [], batch.metadata[bad:] if bad is not None else [],
                         strict=True):
        try:
            value = json.loads(text)
        except (TypeError, ValueError) as exc:
            raise InvalidRecord(rid, f"metadata is not JSON text ({exc})") from exc
        if not isinstance(value, dict):
            raise InvalidRecord(rid, "metadata must be a JSON object")
        if canonical_json(value, record_id=rid) != text:
            raise InvalidRecord(rid, "metadata text is not canonical JSON",
                                hint="build batches with engine.records.canonical_json")
    if len(batch) and (batch.versions < 0).any():
        raise InvalidRecord(batch.ids[int(np.argmin(batch.versions))], "version is negative")
    for rid, sh in zip(batch.ids, batch.source_hashes, strict=True):
        if not isinstance(sh, str):
            raise InvalidRecord(rid, "source_hash must be a string")


def dedupe_batch(batch: RecordBatch, on_conflict: OnConflict) -> RecordBatch:
    """Resolve repeated ids inside one batch as if the rows were written one after another."""
    if len(set(batch.ids)) == len(batch.ids):
        return batch
    winner: dict[str, int] = {}
    for i, rid in enumerate(batch.ids):
        j = winner.get(rid)
        if j is None:
            winner[rid] = i
        elif on_conflict is OnConflict.ERROR:
            raise InvalidRecord(rid, "appears twice in one batch")
        elif wins(int(batch.versions[i]), int(batch.versions[j]), on_conflict):
            winner[rid] = i
    return batch.take(sorted(winner.values()))


def wins(incoming_version: int, stored_version: int, on_conflict: OnConflict) -> bool:
    """Whether an incoming record replaces a stored one with the same id."""
    if on_conflict is OnConflict.NEWER_OR_EQUAL:
        return incoming_version >= stored_version
    if on_conflict is OnConflict.VERSION:
        return incoming_version > stored_version
    if on_conflict is OnConflict.OVERWRITE:
        return True
    return False
