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


def check_parquet(path: Path, expected_rows: Any, dimensions: Any, rows_name: str = "rows",
                  on_rows: Any = None) -> FileCheck:
    """Check one file: schema, dimensions, row count (``rows_name`` names the manifest value), every row.

    Rows must have matching vector hashes, finite vectors, canonical metadata and strictly
    ascending unique ids. Never raises: anything unreadable is a problem. ``on_rows(n)`` is told
    of every ``n`` rows checked (progress).
    """
    out = FileCheck()
    try:
        pf = open_embeddings(path)
    except Exception as exc:  # noqa: BLE001 - any failure to open is a finding, never a crash
        out.problems.append(f"is not readable Parquet ({exc})")
        return out
    schema = pf.schema_arrow
    file_dims = None
    if "vector" in schema.names:
        vtype = schema.field("vector").type
        file_dims = getattr(vtype, "list_size", None)
    out.dimensions = file_dims
    problems = out.problems
    if isinstance(dimensions, int) and file_dims is not None and file_dims != dimensions:
        problems.append(f"vectors have {file_dims} dimensions, the manifest says dimensions={dimensions}")
    structural = schema_problems(schema, file_dims if file_dims is not None else 0)
    problems += structural
    out.rows = rows = pf.metadata.num_rows
    if isinstance(expected_rows, int) and rows != expected_rows:
        problems.append(f"holds {rows} rows, the manifest says {rows_name}={expected_rows}")
    if structural or file_dims is None:
        return out
    tallies = {name: _Tally(name) for name in (
        "have a vector_hash that does not match their vector", "are out of ascending id order",
        "repeat the id of the row before them", "have NaN or Inf in their vector",
        "have metadata that is not a canonical JSON object")}
    t_hash, t_order, t_dup, t_nan, t_meta = tallies.values()
    last: str | None = None
    checked = 0
    try:
        for batch in iter_arrow(pf, BATCH):
            ids = batch.column("id").to_pylist()
            vectors = vectors_of(batch.column("vector"), file_dims)
            for rid, got, want in zip(ids, batch.column("vector_hash").to_pylist(), vector_hashes(vectors),
                                      strict=True):
                if got != want:
                    t_hash.add(rid)
            for rid in ids:
                if last is not None:
                    if rid == last:
                        t_dup.add(rid)
                    elif rid < last:
                        t_order.add(rid)
                else:
                    out.first_id = rid
                last = rid
            bad = ~np.isfinite(vectors).all(axis=1)
            for i in np.flatnonzero(bad):
                t_nan.add(ids[i])
            texts = batch.column("metadata").to_pylist()
            bad = first_noncanonical(texts)
            if bad is not None:
                for rid, text in zip(ids[bad:], texts[bad:], strict=True):
                    if not _metadata_ok(text):
                        t_meta.add(rid)
            checked += len(ids)
            if on_rows is not None:
                on_rows(len(ids))
    except Exception as exc:  # noqa: BLE001 - a damaged file is a finding, never a crash
        problems.append(f"cannot be read past row {checked} ({type(exc).__name__}: {str(exc)[:200]})")
    out.last_id = last
    out.rows_checked = checked
    problems += [m for t in tallies.values() if (m := t.message())]
    return out
