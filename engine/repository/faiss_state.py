"""The schema of a FAISS store's ``store.sqlite`` and its one ``state`` row (see :mod:`.faiss_meta`)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from . import freeze
from .freeze import Freeze

SCHEMA = """
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS state (
    one INTEGER PRIMARY KEY CHECK (one = 1),
    seq INTEGER NOT NULL, paused INTEGER NOT NULL, next_label INTEGER NOT NULL,
    checkpoint_seq INTEGER NOT NULL, checkpoint_file TEXT, checkpoint_label INTEGER NOT NULL,
    clean_seq INTEGER NOT NULL, floor_seq INTEGER NOT NULL, held_by TEXT, lease_expires REAL);
INSERT OR IGNORE INTO state (one, seq, paused, next_label, checkpoint_seq, checkpoint_file, checkpoint_label,
    clean_seq, floor_seq) VALUES (1, 0, 0, 0, 0, NULL, 0, 0, 0);
CREATE TABLE IF NOT EXISTS records (
    label INTEGER PRIMARY KEY, id TEXT NOT NULL UNIQUE, vector BLOB NOT NULL, metadata TEXT NOT NULL,
    version INTEGER NOT NULL, source_hash TEXT NOT NULL, created_us INTEGER NOT NULL,
    updated_us INTEGER NOT NULL, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS records_seq ON records (seq);
CREATE TABLE IF NOT EXISTS tombstones (
    id TEXT PRIMARY KEY, version INTEGER NOT NULL, seq INTEGER NOT NULL, deleted_us INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS tombstones_seq ON tombstones (seq);
CREATE TABLE IF NOT EXISTS dead_labels (label INTEGER PRIMARY KEY, seq INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS dead_labels_seq ON dead_labels (seq);
"""
FREEZE_COLUMNS = ("held_by", "lease_expires")  # added to older stores' state row on open


@dataclass(frozen=True)
class State:
    """The single ``state`` row.

    ``checkpoint_*`` describe the index file (its sequence, name, and the next_label at that
    sequence); dead labels with ``seq <= clean_seq`` are not in that file; an in-memory index older
    than ``floor_seq`` must be reloaded from the checkpoint (the log before it was dropped).
    ``held_by`` / ``lease_expires`` describe a leased freeze (see :mod:`.freeze`).
    """

    seq: int
    paused: bool
    next_label: int
    checkpoint_seq: int
    checkpoint_file: str | None
    checkpoint_label: int
    clean_seq: int
    floor_seq: int
    held_by: dict[str, Any] | None = None
    lease_expires: float | None = None

    def freeze(self) -> Freeze:
        return freeze.read(self.paused, self.held_by, self.lease_expires)


def holder(text: str | None) -> dict[str, Any] | None:
    """The stored holder record; a damaged one reads as an unknown holder (which nobody can prove alive)."""
    if text is None:
        return None
    try:
        value = json.loads(text)
    except ValueError:
        return {"damaged": text[:200]}
    return value if isinstance(value, dict) else {"damaged": text[:200]}
