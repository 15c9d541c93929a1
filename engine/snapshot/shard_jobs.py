"""Write the embeddings shards with N jobs, byte-identical to one job.

A shard's bytes depend only on its rows (see :mod:`.shards`), so shards can be written by separate
workers in any order and the bundle is the same as a one-job export. Two ways to feed the workers:

- :func:`write_split` cuts one ascending stream (one consistent view, any backend) into shards and
  hands each shard's batches to a worker through a small bounded queue: reading stays one pass,
  while converting, hashing, compressing and writing run on ``jobs`` threads;
- :func:`write_ranges` gives each worker a stream of its own (a pgvector store read by several
  connections sharing one exported snapshot, see :mod:`engine.repository.pg_snapshot`), so the
  reading is split too.

Memory stays bounded: at most ``jobs`` shards are open, each holding a row group and a few batches.
Workers run in copies of the caller's context, so progress reported inside reaches the caller's sink.
"""

from __future__ import annotations

import contextvars
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pyarrow as pa

from engine.errors import BundleError
from engine.records import RecordBatch

from . import layout
from .parquet_io import EmbeddingsWriter, to_arrow
from .pipeline import checked, prefetch

QUEUE_DEPTH = 4
_END = object()


class Tally:
    """Rows written so far across workers, reported as progress of ``op``."""

    def __init__(self, op: str, total: int | None, unit: str = "rows") -> None:
        from engine import progress

        self._update = progress.update
        self.op, self.total, self.unit, self.done = op, total, unit, 0
        self._lock = threading.Lock()
        self._update(op, 0, total, unit)

    def add(self, n: int) -> None:
        with self._lock:
            self.done += n
            self._update(self.op, self.done, self.total, self.unit)


def write_shard(root: Path, index: int, arrow_batches: Iterable[pa.RecordBatch], dimensions: int,
                compression_level: int, vector_encoding: str, tally: Tally | None = None) -> dict[str, Any]:
    """Write ``embeddings/part-<index>.parquet`` from Arrow batches; its manifest entry plus sha256 and size."""
    rel = layout.shard_name(index)
    path = layout.member(root, rel)
    path.unlink(missing_ok=True)
    writer = EmbeddingsWriter(path, dimensions, compression_level, vector_encoding)
    first = last = None
    try:
        for batch in arrow_batches:
            if not batch.num_rows:
                continue
            ids = batch.column(0)
            if first is None:
                first = ids[0].as_py()
            last = ids[batch.num_rows - 1].as_py()
            writer.write_arrow(batch)
            if tally is not None:
                tally.add(batch.num_rows)
        sha, size = writer.finish()
    except BaseException:
        writer.abort()
        raise
    return {"file": rel, "rows": writer.rows, "first_id": first, "last_id": last, "sha256": sha, "size": size}


def _arrow(batches: Iterable[RecordBatch], dimensions: int, where: str) -> Iterator[pa.RecordBatch]:
    for _, arrow_batch in checked(batches, dimensions, where):
        yield arrow_batch


def _drain(q: queue.Queue, dimensions: int) -> Iterator[pa.RecordBatch]:
    """The batches a worker's queue receives, converted to Arrow (row hashes) on the worker's thread."""
    while (item := q.get()) is not _END:
        if isinstance(item, BaseException):
            raise item
        yield to_arrow(item, dimensions)


def _slice(batch: RecordBatch, start: int, stop: int) -> RecordBatch:
    if start == 0 and stop == len(batch):
        return batch
    return RecordBatch(ids=batch.ids[start:stop], vectors=batch.vectors[start:stop],
                       metadata=batch.metadata[start:stop], versions=batch.versions[start:stop],
                       source_hashes=batch.source_hashes[start:stop], created_us=batch.created_us[start:stop],
                       updated_us=batch.updated_us[start:stop])


def _pool(jobs: int) -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max(1, jobs), thread_name_prefix="shard")


def _submit(pool: ThreadPoolExecutor, fn: Callable[..., Any], *args: Any) -> Future:
    return pool.submit(contextvars.copy_context().run, fn, *args)


def write_split(root: Path, batches: Iterable[RecordBatch], *, dimensions: int, shard_rows: int,
                compression_level: int, vector_encoding: str, jobs: int, where: str,
                on_batch: Callable[[RecordBatch], None] | None = None, tally: Tally | None = None
                ) -> list[dict[str, Any]]:
    """Cut one ascending stream into shards of ``shard_rows`` rows written by ``jobs`` workers.

    ``on_batch`` sees every batch in stream order on the reading thread (the FAISS index builder).
    """
    futures: list[Future] = []
    current: queue.Queue | None = None
    in_shard = 0
    stop = threading.Event()

    def put(q: queue.Queue, item: Any) -> None:
        while not stop.is_set():
            try:
                q.put(item, timeout=0.1)
                return
            except queue.Full:
                if any(f.done() and f.exception() for f in futures):
                    raise next(f.exception() for f in futures if f.done() and f.exception()) from None

    with _pool(jobs) as pool:
        try:
            for batch, _ in prefetch(checked(batches, dimensions, where, arrow=False)):
                if on_batch is not None:
                    on_batch(batch)
                offset = 0
                while offset < len(batch):
                    if current is None:
                        current = queue.Queue(QUEUE_DEPTH)
                        futures.append(_submit(pool, write_shard, root, len(futures), _drain(current, dimensions),
                                               dimensions, compression_level, vector_encoding, tally))
                    take = min(shard_rows - in_shard, len(batch) - offset)
                    put(current, _slice(batch, offset, offset + take))
                    offset += take
                    in_shard += take
                    if in_shard == shard_rows:
                        put(current, _END)
                        current, in_shard = None, 0
            if current is not None:
                put(current, _END)
            elif not futures:  # an empty store still gets part-00000
                futures.append(_submit(pool, write_shard, root, 0, iter(()), dimensions, compression_level,
                                       vector_encoding, tally))
        except BaseException as exc:
            stop.set()
            if current is not None:
                try:
                    current.put_nowait(exc if isinstance(exc, Exception) else BundleError("export interrupted"))
                except queue.Full:
                    pass
            for f in futures:
                f.cancel()
            raise
        return [f.result() for f in futures]


def write_ranges(root: Path, streams: list[Callable[[], Iterator[RecordBatch]]], *, dimensions: int,
                 compression_level: int, vector_encoding: str, jobs: int, where: str,
                 tally: Tally | None = None) -> list[dict[str, Any]]:
    """Shard ``i`` from ``streams[i]()`` (each stream exactly one shard's rows), ``jobs`` shards at a time."""
    def one(i: int) -> dict[str, Any]:
        return write_shard(root, i, prefetch(_arrow(streams[i](), dimensions, where)), dimensions,
                           compression_level, vector_encoding, tally)

    if not streams:
        return [write_shard(root, 0, iter(()), dimensions, compression_level, vector_encoding, tally)]
    with _pool(jobs) as pool:
        futures = [_submit(pool, one, i) for i in range(len(streams))]
        try:
            return [f.result() for f in futures]
        except BaseException:
            for f in futures:
                f.cancel()
            raise


def check_order(shards: list[dict[str, Any]], where: str) -> None:
    """Ids must ascend across shards (each shard checked its own rows as they streamed)."""
    for before, after in zip(shards, shards[1:], strict=False):
        if before["last_id"] is not None and after["first_id"] is not None and after["first_id"] <= before["last_id"]:
            raise BundleError(f"{where} returned id {after['first_id']!r} in {after['file']} after {before['last_id']!r}",
                              hint="this is a backend bug; report it")
