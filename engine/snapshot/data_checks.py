"""Row-level checks of one embeddings Parquet file (``embeddings.parquet`` or a shard), streamed in bounded batches.

Problems are aggregated per kind (count plus the first few ids), so a damaged million-row file
gives a handful of readable findings rather than a million.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from engine.records import canonical_json, first_noncanonical

from .parquet_io import COLUMNS, iter_arrow, open_embeddings, schema_problems, vector_hashes, vectors_of

BATCH = 8_192
EXAMPLES = 3


class _Tally:
    def __init__(self, what: str) -> None:
        self.what = what
        self.count = 0
        self.examples: list[str] = []

    def add(self, rid: str) -> None:
        self.count += 1
        if len(self.examples) < EXAMPLES:
            self.examples.append(rid)

    def message(self) -> str | None:
        if not self.count:
            return None
        shown = ", ".join(repr(x) for x in self.examples)
        return f"{self.count} row(s) {self.what} (first: {shown})"


def _metadata_ok(text: str) -> bool:
    try:
        value = json.loads(text)
    except ValueError:
        return False
    return isinstance(value, dict) and canonical_json(value) == text


@dataclass
class FileCheck:
    """What checking one Parquet file found: its problems, rows read, and its first and last ids."""

    problems: list[str] = field(default_factory=list)
    rows: int | None = None  # from the footer, None when unreadable
    rows_checked: int = 0
    first_id: str | None = None
    last_id: str | None = None
    dimensions: int | None = None


def check_embeddings(path: Path, record_count: Any, dimensions: Any, stats: dict[str, Any]) -> list[str]:
    """Every problem of the file against the manifest's ``record_count`` and ``dimensions``."""
    result = check_parquet(path, record_count, dimensions, "record_count")
    stats["rows_checked"] = result.rows_checked
    stats["columns"] = list(COLUMNS)
    return result.problems


class RowChecker:
    """The per-row checks of one embeddings file, fed batch by batch in file order: vector hashes, finite
    vectors, canonical metadata, strictly ascending unique ids. Used by :func:`check_parquet` and by an
    import that checks rows in the same pass that loads them (:mod:`.verified_load`)."""

    def __init__(self, dimensions: int) -> None:
        self.dimensions = dimensions
        self.tallies = {name: _Tally(name) for name in (
            "have a vector_hash that does not match their vector", "are out of ascending id order",
            "repeat the id of the row before them", "have NaN or Inf in their vector",
            "have metadata that is not a canonical JSON object")}
        self.first_id: str | None = None
        self.last_id: str | None = None
        self.checked = 0

    def feed(self, batch: Any) -> tuple[list[str], np.ndarray, list[str]]:
        """Check one Arrow batch; return its ``(ids, vectors, metadata texts)`` for reuse."""
        t_hash, t_order, t_dup, t_nan, t_meta = self.tallies.values()
        ids = batch.column("id").to_pylist()
        vectors = vectors_of(batch.column("vector"), self.dimensions)
        for rid, got, want in zip(ids, batch.column("vector_hash").to_pylist(), vector_hashes(vectors),
                                  strict=True):
            if got != want:
                t_hash.add(rid)
        last = self.last_id
        if ids and ((last is not None and ids[0] <= last) or any(a >= b for a, b in zip(ids, ids[1:], strict=False))):
            for rid in ids:
                if last is not None and rid == last:
                    t_dup.add(rid)
                elif last is not None and rid < last:
                    t_order.add(rid)
                last = rid
        if ids:
            if self.first_id is None and self.last_id is None:
                self.first_id = ids[0]
            self.last_id = ids[-1]
        bad = ~np.isfinite(vectors).all(axis=1)
        for i in np.flatnonzero(bad):
            t_nan.add(ids[i])
        texts = batch.column("metadata").to_pylist()
        first_bad = first_noncanonical(texts)
        if first_bad is not None:
            for rid, text in zip(ids[first_bad:], texts[first_bad:], strict=True):
                if not _metadata_ok(text):
                    t_meta.add(rid)
        self.checked += len(ids)
        return ids, vectors, texts

    def problems(self) -> list[str]:
        return [m for t in self.tallies.values() if (m := t.message())]


def open_checked(path: Path, expected_rows: Any, dimensions: Any, rows_name: str = "rows") -> tuple[FileCheck, Any]:
    """The file-level checks of :func:`check_parquet` (readable, schema, dimensions, row count from the
    footer): ``(result, ParquetFile or None when rows cannot be checked)``. Never raises."""
    out = FileCheck()
    try:
        pf = open_embeddings(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a finding, never a crash
        out.problems.append(f"is not readable Parquet ({exc})")
        return out, None
    schema = pf.schema_arrow
    file_dims = None
    if "vector" in schema.names:
        vtype = schema.field("vector").type
        file_dims = getattr(vtype, "list_size", None)
    out.dimensions = file_dims
    if isinstance(dimensions, int) and file_dims is not None and file_dims != dimensions:
        out.problems.append(f"vectors have {file_dims} dimensions, the manifest says dimensions={dimensions}")
    structural = schema_problems(schema, file_dims if file_dims is not None else 0)
    out.problems += structural
    out.rows = pf.metadata.num_rows
    if isinstance(expected_rows, int) and out.rows != expected_rows:
        out.problems.append(f"holds {out.rows} rows, the manifest says {rows_name}={expected_rows}")
    return out, (None if structural or file_dims is None else pf)


def check_parquet(path: Path, expected_rows: Any, dimensions: Any, rows_name: str = "rows",
                  on_rows: Any = None, rows: bool = True) -> FileCheck:
    """Check one file: schema, dimensions, row count (``rows_name`` names the manifest value), every row.

    Rows must have matching vector hashes, finite vectors, canonical metadata and strictly
    ascending unique ids. Never raises: anything unreadable is a problem. ``on_rows(n)`` is told
    of every ``n`` rows checked (progress). ``rows=False`` does the file-level checks only (an import
    that checks the rows while it loads them).
    """
    out, pf = open_checked(path, expected_rows, dimensions, rows_name)
    if pf is None or not rows:
        return out
    checker = RowChecker(int(out.dimensions or 0))
    try:
        for batch in iter_arrow(pf, BATCH):
            checker.feed(batch)
            if on_rows is not None:
                on_rows(batch.num_rows)
    except Exception as exc:  # noqa: BLE001 - a damaged file is a finding, never a crash
        out.problems.append(f"cannot be read past row {checker.checked} ({type(exc).__name__}: {str(exc)[:200]})")
    out.first_id, out.last_id = checker.first_id, checker.last_id
    out.rows_checked = checker.checked
    out.problems += checker.problems() + unread_rows(checker.checked, out.rows)
    return out


def unread_rows(read: int, footer: int | None) -> list[str]:
    """A problem when the row groups held fewer or more rows than the footer claims (Parquet readers
    trust the footer's count; a forged one would make a shard look whole)."""
    if footer is None or read == footer:
        return []
    return [f"its row groups hold {read} rows, its footer says {footer}"]
