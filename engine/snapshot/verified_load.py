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

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.errors import StreamsOverlap
from engine.records import OnConflict, RecordBatch
from engine.repository.base import WriteResult

from . import layout
from .data_checks import RowChecker, open_checked, unread_rows
from .findings import failed
from .parquet_io import iter_arrow, numpy_of


def verified_rows(root: Path, doc: dict[str, Any], batch_size: int, name: object) -> Iterator[RecordBatch]:
    """The bundle's rows (schema_version 2) as RecordBatches, every row checked; raises BundleInvalid
    (every problem) after the last row when any check failed. Call after the file-level verification."""
    yield from _segment(root, doc, range(len(doc["embeddings"]["shards"])), batch_size, name)


def verified_streams(root: Path, doc: dict[str, Any], batch_size: int, name: object, parts: int
                     ) -> list[Callable[[], Iterator[RecordBatch]]]:
    """The bundle's rows as up to ``parts`` streams of consecutive shards, for a load side by side
    (ids ascend within each, and the streams' ids are disjoint when the bundle is sound).

    Each stream checks its rows as :func:`verified_rows` does and raises BundleInvalid after its last
    row when a check failed (its own problems: a stream cannot wait for the others). Across streams,
    a stream's first id is checked against the manifest's last id of the shard before it, which the
    stream before checks against its data: so ids ascend across the whole bundle when every stream
    passes, and the load must commit only then."""
    count = len(doc["embeddings"]["shards"])
    parts = max(1, min(parts, count))
    bounds = [count * k // parts for k in range(parts + 1)]
    return [lambda lo=lo, hi=hi: _segment(root, doc, range(lo, hi), batch_size, name)
            for lo, hi in zip(bounds, bounds[1:], strict=False)]


def _segment(root: Path, doc: dict[str, Any], shards: range, batch_size: int, name: object
             ) -> Iterator[RecordBatch]:
    dims = int(doc["dimensions"])
    entries = doc["embeddings"]["shards"]
    problems: list[dict[str, str]] = []
    previous: tuple[str, str] | None = None
    if shards and shards.start > 0:  # the shard before, as the manifest states it (its stream checks that)
        before = entries[shards.start - 1]
        previous = (before["file"], before.get("last_id"))
    for i in shards:
        entry = entries[i]
        rel = entry["file"]
        head, pf = open_checked(layout.member(root, rel), entry.get("rows"), dims, f"embeddings.shards[{i}].rows")
        problems += [{"path": rel, "problem": p} for p in head.problems]
        if pf is None:
            continue
        checker = RowChecker(dims)
        try:
            for batch in iter_arrow(pf, batch_size):
                ids, vectors, texts = checker.feed(batch)
                yield RecordBatch(
                    ids=ids, vectors=vectors, metadata=texts,
                    versions=numpy_of(batch.column("version")), source_hashes=batch.column("source_hash").to_pylist(),
                    created_us=numpy_of(batch.column("created_ts").view(pa.int64())),
                    updated_us=numpy_of(batch.column("updated_ts").view(pa.int64())))
        except Exception as exc:  # noqa: BLE001 - a damaged file is a finding (the load is rolled back)
            problems.append({"path": rel, "problem": f"cannot be read past row {checker.checked} "
                             f"({type(exc).__name__}: {str(exc)[:200]})"})
        problems += [{"path": rel, "problem": p} for p in checker.problems() + unread_rows(checker.checked, head.rows)]
        for key, got in (("first_id", checker.first_id), ("last_id", checker.last_id)):
            if checker.checked and entry.get(key) != got:
                problems.append({"path": rel, "problem": f"its {key.replace('_', ' ')} is {got!r}, the manifest "
                                 f"says {key}={entry.get(key)!r}"})
        if checker.first_id is not None and previous is not None and not _after(checker.first_id, previous[1]):
            problems.append({"path": rel, "problem": f"its first id {checker.first_id!r} is not after the last id "
                             f"{previous[1]!r} of {previous[0]} (ids must ascend across shards)"})
        if checker.last_id is not None:
            previous = (rel, checker.last_id)
    if problems:
        raise failed(name, problems, "nothing was imported (the load was rolled back)")


def _after(first: str, last: object) -> bool:
    return isinstance(last, str) and first > last


def load_side_by_side(repo: Any, root: Path, doc: dict[str, Any], rule: OnConflict, batch_size: int,
                      name: object, parts: int, *, replace: bool) -> WriteResult:
    """Load the bundle's rows into a pgvector ``repo`` as ``parts`` streams of shards, one connection each
    (``repo.bulk_load_streams``), every row checked on the way; one commit, only when every stream passed."""
    from .shard_jobs import Tally

    tally = Tally("import", doc.get("record_count"))

    def counted(stream: Callable[[], Iterator[RecordBatch]]) -> Callable[[], Iterator[RecordBatch]]:
        def rows() -> Iterator[RecordBatch]:
            for batch in stream():
                yield batch
                tally.add(len(batch))
        return rows

    streams = [counted(s) for s in verified_streams(root, doc, batch_size, name, parts)]
    try:
        return repo.bulk_load_streams(streams, rule, replace=replace)
    except StreamsOverlap as exc:  # only a bundle whose shards share an id can do this to a fresh table
        raise failed(name, [{"path": layout.SHARD_DIR, "problem": f"an id is in more than one shard: {exc.message}"}],
                     "nothing was imported (the load was rolled back)") from None
