"""The export pipeline's moving parts: a bounded prefetch thread and the ascending-id check.

Reading the store (PostgreSQL COPY decoding, SQLite reads) overlaps with hashing, compressing and
writing Parquet; the queue between them holds at most ``depth`` batches, so memory stays bounded.
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Iterable, Iterator

from engine.errors import BundleError
from engine.records import RecordBatch


def prefetch(batches: Iterator, depth: int = 2) -> Iterator:
    """Pull ``batches`` in a background thread (store reads overlap Parquet writes); bounded queue."""
    q: queue.Queue = queue.Queue(maxsize=depth)
    stop = threading.Event()
    done = object()

    def pump() -> None:
        try:
            for item in batches:
                while not stop.is_set():
                    try:
                        q.put(("item", item), timeout=0.1)
                        break
                    except queue.Full:
                        continue
                if stop.is_set():
                    break
            q.put(("end", done))
        except BaseException as exc:  # noqa: BLE001 - handed to the consuming thread
            q.put(("error", exc))
        finally:
            close = getattr(batches, "close", None)
            if close is not None:
                close()

    worker = threading.Thread(target=pump, name="snapshot-prefetch", daemon=True)
    worker.start()
    try:
        while True:
            kind, value = q.get()
            if kind == "item":
                yield value
            elif kind == "error":
                raise value
            else:
                return
    finally:
        stop.set()
        while worker.is_alive():
            try:
                q.get(timeout=0.1)
            except queue.Empty:
                pass
        worker.join()


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
