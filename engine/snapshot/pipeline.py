"""The export pipeline's moving parts: a bounded prefetch thread and the ascending-id check.

Reading the store (PostgreSQL COPY decoding, SQLite reads) overlaps with hashing, compressing and
writing Parquet; the queue between them holds at most ``depth`` batches, so memory stays bounded.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator

from engine.errors import BundleError
from engine.records import RecordBatch
from engine.streams import prefetch

__all__ = ["checked", "prefetch"]


def checked(batches: Iterable[RecordBatch], dimensions: int, where: str, *, arrow: bool = True) -> Iterator:
    """Batches with their Arrow form, checking dimensions and strictly ascending ids.

    ``arrow=False`` yields ``(batch, None)``: the conversion (and its row hashes) is left to the caller.
    The source iterator is closed on every exit (a pgvector stream releases its connection).
    """
    from .parquet_io import to_arrow

    source = iter(batches)
    last: str | None = None
    try:
        for batch in source:
            if not len(batch):
                continue
            if batch.dimensions != dimensions:
                raise BundleError(f"record {batch.ids[0]!r} has {batch.dimensions} dimensions, {where} "
                                  f"says {dimensions}")
            ids = batch.ids
            if (last is not None and ids[0] <= last) or any(a >= b for a, b in zip(ids, ids[1:], strict=False)):
                prev = last
                for rid in ids:
                    if prev is not None and rid <= prev:
                        raise BundleError(f"{where} returned id {rid!r} after {prev!r}; ids must be strictly "
                                          "ascending", hint="this is a backend bug; report it")
                    prev = rid
            last = ids[-1]
            yield batch, (to_arrow(batch, dimensions) if arrow else None)
    finally:
        close = getattr(source, "close", None)
        if close is not None:
            close()
