"""An import that checks every row in the same pass that loads it, inside the load's transaction.

Verification is two halves: everything about files (manifest, every file's sha256 against
``checksums.sha256``, counts, content hash, shard footers and schema, ``index.faiss``, signature),
and the row-level checks of the shards (each row's vector hash, strictly ascending unique ids across
shards, finite vectors, canonical metadata, each shard's first and last id as the manifest says).
Into a store whose bulk loads are one transaction (pgvector), an import runs the first half before
it creates or writes anything, then streams the rows to the store through :func:`verified_rows`,
which checks them as they pass (decoding each shard once, not once to verify and again to load)
and, after the last row, raises BundleInvalid with every problem found: the store rolls the whole
load back. So nothing unverified is ever committed, and verification costs no second pass.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.records import RecordBatch

from . import layout
from .data_checks import RowChecker, open_checked
from .findings import failed
from .parquet_io import iter_arrow, numpy_of


def verified_rows(root: Path, doc: dict[str, Any], batch_size: int, name: object) -> Iterator[RecordBatch]:
    """The bundle's rows (schema_version 2) as RecordBatches, every row checked; raises BundleInvalid
    (every problem) after the last row when any check failed. Call after the file-level verification."""
    dims = int(doc["dimensions"])
    problems: list[dict[str, str]] = []
    previous: tuple[str, str] | None = None
    for i, entry in enumerate(doc["embeddings"]["shards"]):
        rel = entry["file"]
        head, pf = open_checked(layout.member(root, rel), entry.get("rows"), dims, f"embeddings.shards[{i}].rows")
        problems += [{"path": rel, "problem": p} for p in head.problems]
        if pf is None:
            continue
        checker = RowChecker(dims)
        for batch in iter_arrow(pf, batch_size):
            ids, vectors, texts = checker.feed(batch)
            yield RecordBatch(
                ids=ids, vectors=vectors, metadata=texts,
                versions=numpy_of(batch.column("version")), source_hashes=batch.column("source_hash").to_pylist(),
                created_us=numpy_of(batch.column("created_ts").view(pa.int64())),
                updated_us=numpy_of(batch.column("updated_ts").view(pa.int64())))
        problems += [{"path": rel, "problem": p} for p in checker.problems()]
        for key, got in (("first_id", checker.first_id), ("last_id", checker.last_id)):
            if checker.checked and entry.get(key) != got:
                problems.append({"path": rel, "problem": f"its {key.replace('_', ' ')} is {got!r}, the manifest "
                                 f"says {key}={entry.get(key)!r}"})
        if checker.first_id is not None and previous is not None and checker.first_id <= previous[1]:
            problems.append({"path": rel, "problem": f"its first id {checker.first_id!r} is not after the last id "
                             f"{previous[1]!r} of {previous[0]} (ids must ascend across shards)"})
        if checker.last_id is not None:
            previous = (rel, checker.last_id)
    if problems:
        raise failed(name, problems, "nothing was imported (the load was rolled back)")
