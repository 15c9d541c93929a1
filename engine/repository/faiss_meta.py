"""The SQLite half of a FAISS store: records, tombstones, settings and the change log.

``store.sqlite`` is the source of truth (WAL, ``synchronous=FULL``: a write is durable when it
returns); the FAISS index is derived from it. Every write call takes the next change sequence
number, and every row it touches carries that number. Labels (the int64 ids FAISS knows) are
handed out in increasing order, so the rows written after sequence ``s`` are exactly those with a
label at or above the ``next_label`` of ``s``; a replaced or deleted record's label goes to
``dead_labels``.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from engine.errors import StoreCorrupt
from engine.records import RecordBatch

from .base import StoreSettings
from .faiss_rows import RECORD_COLUMNS, connect, rows_to_batch
from .faiss_state import FREEZE_COLUMNS, SCHEMA, State, holder

FORMAT = "1"
IN_CHUNK = 500  # ids per "IN (...)" query, below SQLite's variable limit

class MetaStore:
    """One connection to ``store.sqlite`` with explicit read and write transactions."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.conn = connect(path)
        if not self.conn.execute("SELECT 1 FROM sqlite_master WHERE name = 'dead_labels_seq'").fetchone():
            self.conn.executescript(SCHEMA)  # only a new store pays for a write at open
        self._freeze_select = self._upgrade()

    def _upgrade(self) -> str:
        """Add the freeze lease columns to a store made before they existed; the SELECT list to read them.

        A store this process may not write keeps its old shape and reads as holding no lease.
        """
        have = {row[1] for row in self.conn.execute("PRAGMA table_info(state)")}
        if all(c in have for c in FREEZE_COLUMNS):
            return ", ".join(FREEZE_COLUMNS)
        try:
            with self.write():
                have = {row[1] for row in self.conn.execute("PRAGMA table_info(state)")}
                for column, kind in zip(FREEZE_COLUMNS, ("TEXT", "REAL"), strict=True):
                    if column not in have:
                        self.conn.execute(f"ALTER TABLE state ADD COLUMN {column} {kind}")
        except sqlite3.OperationalError:  # read-only file or folder
            return "NULL, NULL"
        return ", ".join(FREEZE_COLUMNS)

    def close(self) -> None:
        self.conn.close()

    @contextmanager
    def read(self) -> Iterator[sqlite3.Connection]:
        """A read transaction: every query inside sees one snapshot (WAL readers never block).

        Inside a transaction already open on this connection, it simply joins that one.
        """
        if self.conn.in_transaction:
            yield self.conn
            return
        self.conn.execute("BEGIN")
        try:
            yield self.conn
        finally:
            self.conn.execute("COMMIT")

    @contextmanager
    def write(self) -> Iterator[sqlite3.Connection]:
        """A write transaction (``BEGIN IMMEDIATE``), committed durably or rolled back on error."""
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield self.conn
            self.conn.execute("COMMIT")
        except BaseException:
            # SQLite may already have rolled the transaction back itself (a full disk does that): a second
            # ROLLBACK would raise "no transaction is active" and hide the error that matters.
            if self.conn.in_transaction:
                self.conn.execute("ROLLBACK")
            raise

    # --- settings and state ------------------------------------------------------------------

    def settings(self) -> StoreSettings | None:
        rows = dict(self.conn.execute("SELECT key, value FROM settings").fetchall())
        if not rows:
            return None
        if rows.get("format") != FORMAT:
            raise StoreCorrupt(f"{self.path} has store format {rows.get('format')!r}; this tool reads {FORMAT!r}",
                               hint="upgrade procos-knowledge, or open the store with the tool that wrote it")
        return StoreSettings(dimensions=json.loads(rows["dimensions"]), metric=json.loads(rows["metric"]),
                             index=json.loads(rows["index"]), index_params=json.loads(rows["index_params"]))

    def save_settings(self, s: StoreSettings) -> None:
        """Store the settings of a new store (first writer wins; call inside a write transaction)."""
        values = {"format": FORMAT, "dimensions": json.dumps(s.dimensions), "metric": json.dumps(s.metric),
                  "index": json.dumps(s.index), "index_params": json.dumps(s.index_params, sort_keys=True),
                  "store_id": json.dumps(str(uuid.uuid4()))}
        self.conn.executemany("INSERT OR IGNORE INTO settings VALUES (?, ?)", values.items())

    def save_index_params(self, params: dict[str, int]) -> None:
        """Replace the stored index parameters (call inside a write transaction)."""
        self.conn.execute("UPDATE settings SET value = ? WHERE key = 'index_params'",
                          (json.dumps(params, sort_keys=True),))

    def store_id(self) -> str:
        """The store's id; a store created before ids existed gets one now (first writer wins)."""
        row = self.conn.execute("SELECT value FROM settings WHERE key = 'store_id'").fetchone()
        if row is None:
            with self.write():
                self.conn.execute("INSERT OR IGNORE INTO settings VALUES ('store_id', ?)",
                                  (json.dumps(str(uuid.uuid4())),))
            row = self.conn.execute("SELECT value FROM settings WHERE key = 'store_id'").fetchone()
        return str(json.loads(row[0]))

    def set_dimensions(self, dimensions: int) -> None:
        self.conn.execute("UPDATE settings SET value = ? WHERE key = 'dimensions' AND value = 'null'",
                          (json.dumps(dimensions),))

    def state(self) -> State:
        row = self.conn.execute("SELECT seq, paused, next_label, checkpoint_seq, checkpoint_file, "
                                f"checkpoint_label, clean_seq, floor_seq, {self._freeze_select} FROM state").fetchone()
        held_by = holder(row[8])
        return State(row[0], bool(row[1]), *row[2:8], held_by=held_by,
                     lease_expires=float(row[9]) if row[9] is not None and held_by is not None else None)

    def set_freeze(self, paused: bool, held_by: dict[str, Any] | None = None,
                   lease_expires: float | None = None) -> None:
        """Write the freeze flag (inside a write transaction)."""
        self.conn.execute("UPDATE state SET paused = ?, held_by = ?, lease_expires = ?",
                          (int(paused), json.dumps(held_by, sort_keys=True) if held_by is not None else None,
                           lease_expires))

    def update_state(self, **fields: Any) -> None:
        sets = ", ".join(f"{name} = ?" for name in fields)
        self.conn.execute(f"UPDATE state SET {sets}", [int(v) if isinstance(v, bool) else v
                                                        for v in fields.values()])

    # --- reads -------------------------------------------------------------------------------

    def count(self) -> int:
        return self.conn.execute("SELECT count(*) FROM records").fetchone()[0]

    def lookup(self, ids: Sequence[str]) -> dict[str, tuple[int, int, int]]:
        """``{id: (version, label, seq)}`` for the stored ids among ``ids``."""
        found: dict[str, tuple[int, int, int]] = {}
        for start in range(0, len(ids), IN_CHUNK):
            part = list(ids[start:start + IN_CHUNK])
            marks = ",".join("?" * len(part))
            for rid, version, label, seq in self.conn.execute(
                    f"SELECT id, version, label, seq FROM records WHERE id IN ({marks})", part):
                found[rid] = (version, label, seq)
        return found

    def fetch_rows(self, ids: Sequence[str]) -> dict[str, tuple]:
        found: dict[str, tuple] = {}
        for start in range(0, len(ids), IN_CHUNK):
            part = list(ids[start:start + IN_CHUNK])
            marks = ",".join("?" * len(part))
            for row in self.conn.execute(f"SELECT {RECORD_COLUMNS} FROM records WHERE id IN ({marks})", part):
                found[row[0]] = row
        return found

    def rows_by_label(self, labels: Sequence[int]) -> list[tuple[str, bytes, str]]:
        """``(id, vector blob, metadata)`` of the records holding ``labels`` (unknown labels skipped)."""
        out: list[tuple[str, bytes, str]] = []
        for start in range(0, len(labels), IN_CHUNK):
            part = [int(x) for x in labels[start:start + IN_CHUNK]]
            marks = ",".join("?" * len(part))
            out.extend(self.conn.execute(
                f"SELECT id, vector, metadata FROM records WHERE label IN ({marks})", part))
        return out

    def vectors_from_label(self, first_label: int, chunk: int) -> Iterator[tuple[np.ndarray, np.ndarray]]:
        """``(labels, float32 vectors)`` of every record with ``label >= first_label``, in label order."""
        last = first_label - 1
        while True:
            rows = self.conn.execute("SELECT label, vector FROM records WHERE label > ? ORDER BY label LIMIT ?",
                                     (last, chunk)).fetchall()
            if not rows:
                return
            labels = np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))
            vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
            yield labels, vectors.astype(np.float32)
            last = int(labels[-1])

    def changes(self, seq: int, batch_size: int, dims: int) -> tuple[list[RecordBatch], list[tuple[str, int, int]]]:
        """Records written and ids deleted after ``seq``, found through the seq indexes, in id order."""
        cur = self.conn.execute(f"SELECT {RECORD_COLUMNS} FROM records INDEXED BY records_seq "
                                "WHERE seq > ? ORDER BY id", (seq,))
        upserts = [rows_to_batch(rows, dims) for rows in iter(lambda: cur.fetchmany(batch_size), [])]
        deletes = [(r, int(v), int(s)) for r, v, s in self.conn.execute(
            "SELECT id, version, seq FROM tombstones INDEXED BY tombstones_seq WHERE seq > ? ORDER BY id", (seq,))]
        return upserts, deletes

    def dead_between(self, after_seq: int, upto_seq: int, below_label: int) -> np.ndarray:
        """Labels that died in ``(after_seq, upto_seq]`` and were handed out before ``below_label``."""
        rows = self.conn.execute("SELECT label FROM dead_labels WHERE seq > ? AND seq <= ? AND label < ?",
                                 (after_seq, upto_seq, below_label)).fetchall()
        return np.fromiter((r[0] for r in rows), dtype=np.int64, count=len(rows))

    def dead_count_since(self, seq: int) -> int:
        return self.conn.execute("SELECT count(*) FROM dead_labels WHERE seq > ?", (seq,)).fetchone()[0]

    def has_tombstones(self) -> bool:
        return self.conn.execute("SELECT EXISTS (SELECT 1 FROM tombstones)").fetchone()[0] == 1

    # --- writes (inside a write transaction) ---------------------------------------------------

    def upsert_rows(self, rows: RecordBatch, existing: dict[str, tuple[int, int, int]], state: State) -> None:
        """Write ``rows`` as change ``state.seq + 1``: replaced labels die, tombstones of the ids go."""
        seq = state.seq + 1
        self.kill([existing[r][1] for r in rows.ids if r in existing], seq)
        self.insert(rows, state.next_label, seq)
        self.untombstone([r for r in rows.ids if r not in existing])
        self.update_state(seq=seq, next_label=state.next_label + len(rows))

    def replace_rows(self, rows: RecordBatch, first_label: int, seq: int) -> None:
        """Inside ``replace_all``: write ``rows`` over any record with the same id (no dead-label log)."""
        self.conn.executemany("DELETE FROM records WHERE id = ?", ((r,) for r in rows.ids))
        self.insert(rows, first_label, seq)
        self.untombstone(rows.ids)

    def drop_older_than(self, seq: int, now_us: int) -> None:
        """Tombstone and delete every record written before ``seq``; forget the dead-label log."""
        self.conn.execute("INSERT INTO tombstones SELECT id, version, ?, ? FROM records WHERE seq < ? "
                          "ON CONFLICT (id) DO UPDATE SET version = excluded.version, seq = excluded.seq, "
                          "deleted_us = excluded.deleted_us", (seq, now_us, seq))
        self.conn.execute("DELETE FROM records WHERE seq < ?", (seq,))
        self.conn.execute("DELETE FROM dead_labels")

    def insert(self, batch: RecordBatch, first_label: int, seq: int) -> None:
        """Insert every row of ``batch`` with labels ``first_label, first_label + 1, ...``."""
        vectors = np.ascontiguousarray(batch.vectors, dtype="<f4")
        self.conn.executemany(
            "INSERT INTO records (label, id, vector, metadata, version, source_hash, created_us, updated_us, seq) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
            ((first_label + i, batch.ids[i], vectors[i].tobytes(), batch.metadata[i], int(batch.versions[i]),
              batch.source_hashes[i], int(batch.created_us[i]), int(batch.updated_us[i]), seq)
             for i in range(len(batch))))

    def kill(self, labels: Sequence[int], seq: int) -> None:
        """Remove the records holding ``labels`` and log the labels as dead at ``seq``."""
        self.conn.executemany("DELETE FROM records WHERE label = ?", ((int(x),) for x in labels))
        self.conn.executemany("INSERT INTO dead_labels VALUES (?, ?)", ((int(x), seq) for x in labels))

    def tombstone(self, rows: Sequence[tuple[str, int]], seq: int, now_us: int) -> None:
        self.conn.executemany(
            "INSERT INTO tombstones VALUES (?, ?, ?, ?) ON CONFLICT (id) DO UPDATE SET "
            "version = excluded.version, seq = excluded.seq, deleted_us = excluded.deleted_us",
            ((rid, version, seq, now_us) for rid, version in rows))

    def untombstone(self, ids: Sequence[str]) -> None:
        if self.has_tombstones():
            self.conn.executemany("DELETE FROM tombstones WHERE id = ?", ((rid,) for rid in ids))
