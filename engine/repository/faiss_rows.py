"""Rows of a FAISS store's ``store.sqlite`` as engine records: the column list, conversions to a
RecordBatch or an EmbeddingRecord, a snapshot read of every record in id order, and the connection
settings (WAL, ``synchronous=FULL``) every reader and writer uses.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from engine.records import EmbeddingRecord, RecordBatch, from_micros

RECORD_COLUMNS = "id, vector, metadata, version, source_hash, created_us, updated_us"


def rows_to_batch(rows: Sequence[Sequence[Any]], dimensions: int) -> RecordBatch:
    """Rows of ``RECORD_COLUMNS`` as a RecordBatch (one buffer join, no per-float Python objects)."""
    ids, blobs, metas, versions, hashes, created, updated = zip(*rows, strict=True) if rows else ([],) * 7
    vectors = np.frombuffer(b"".join(blobs), dtype="<f4").astype(np.float32).reshape(len(ids), dimensions)
    return RecordBatch(ids=list(ids), vectors=vectors, metadata=list(metas),
                       versions=np.asarray(versions, dtype=np.int64), source_hashes=list(hashes),
                       created_us=np.asarray(created, dtype=np.int64),
                       updated_us=np.asarray(updated, dtype=np.int64))


def record_from_row(row: Sequence[Any]) -> EmbeddingRecord:
    """One row of ``RECORD_COLUMNS`` as an EmbeddingRecord."""
    rid, blob, meta, version, source_hash, created, updated = row
    return EmbeddingRecord(id=rid, vector=np.frombuffer(blob, dtype="<f4").astype(np.float32),
                           metadata=json.loads(meta), version=version, source_hash=source_hash,
                           created_ts=from_micros(created), updated_ts=from_micros(updated))


def iter_batches(path: Path, batch_size: int) -> Iterator[RecordBatch]:
    """Every record in id order from one snapshot, on a connection of its own (keyset pagination)."""
    conn = connect(path)
    try:
        conn.execute("BEGIN")
        dims = json.loads(conn.execute("SELECT value FROM settings WHERE key = 'dimensions'").fetchone()[0])
        last = ""
        while rows := conn.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id > ? ORDER BY id LIMIT ?",
                                   (last, batch_size)).fetchall():
            yield rows_to_batch(rows, dims)
            last = rows[-1][0]
        conn.execute("COMMIT")
    finally:
        conn.close()


def connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30.0)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    return conn
