"""The records half of an export: every row of a store (one consistent view) into the bundle's shards.

:func:`dump_embeddings` reads the store and :func:`write_embeddings` writes any ascending-id stream:
one job (a prefetch thread reading, the caller's thread converting, hashing and writing), or
``jobs`` shards at a time (:mod:`.shard_jobs`; a pgvector store read by that many connections sharing
one exported snapshot). FAISS sources also get ``index.faiss`` (:mod:`.faiss_file`).
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError
from engine.records import RecordBatch

from . import layout
from .pipeline import checked, prefetch
from .staging import claim, update_state

if TYPE_CHECKING:
    from engine.repository import StoreSettings, VectorRepository

DEFAULT_BATCH = 4_096
DEFAULT_LEVEL = 1  # zstd level of the shards; see docs/benchmarks.md for the measured options
DEFAULT_VECTOR_ENCODING = "byte_stream_split"


def dump_embeddings(repo: VectorRepository, staging_dir: str | os.PathLike[str],
                    compression_level: int = DEFAULT_LEVEL, *, batch_size: int = DEFAULT_BATCH,
                    shard_rows: int | None = None, jobs: int = 1,
                    vector_encoding: str = DEFAULT_VECTOR_ENCODING, carry_graph: bool = True) -> dict[str, Any]:
    """Stream every record of ``repo`` (one consistent view) into ``embeddings/part-NNNNN.parquet`` shards.

    FAISS stores also get ``index.faiss``. Returns ``{"records", "dimensions", "shards",
    "faiss_index"}``; memory stays bounded by the batch and row-group sizes (plus the rebuilt
    index for FAISS stores). ``jobs`` > 1 writes shards in parallel (byte-identical bundle); a pgvector
    store is then read by ``jobs`` connections sharing one exported snapshot (``pg_export_snapshot``).
    ``carry_graph``: a FAISS HNSW store's graph goes into ``index.faiss`` (renumbered to row order) when
    it holds exactly the exported rows, so that an HNSW FAISS target adopts it instead of rebuilding.
    """
    from engine.progress import counted

    shards_of = getattr(repo, "shared_snapshot", None) if jobs > 1 else None
    snap = shards_of() if shards_of is not None else None
    if snap is not None:
        from .shards import DEFAULT_SHARD_ROWS

        with snap:  # the rows, their count and the sequence all come from the one exported snapshot
            streams = snap.ranges(shard_rows or DEFAULT_SHARD_ROWS, batch_size)
            result = write_embeddings(staging_dir, None, settings=repo.settings, backend=repo.backend, uri=repo.uri,
                                      compression_level=compression_level, shard_rows=shard_rows, jobs=jobs,
                                      vector_encoding=vector_encoding, streams=streams, total=snap.count)
            sequence = snap.sequence
    else:
        # Read before the stream starts: the rows are at this sequence or later, so a delta built on
        # this bundle (changes after it) never misses a change; re-applying one is harmless.
        sequence = repo.sequence()
        total = repo.count()
        batches = repo.iter_batches(batch_size) if jobs > 1 else counted(repo.iter_batches(batch_size), "export", total)
        result = write_embeddings(staging_dir, batches, settings=repo.settings,
                                  backend=repo.backend, uri=repo.uri, compression_level=compression_level,
                                  shard_rows=shard_rows, jobs=jobs, vector_encoding=vector_encoding, total=total,
                                  graph=getattr(repo, "search_graph", None) if carry_graph else None)
    update_state(Path(staging_dir), sequence=sequence, store_id=repo.store_id, as_of_utc=as_of_now())
    return result


def as_of_now() -> str:
    """The current UTC time to the millisecond, taken once a bundle's read of its store is over: the
    bundle holds no change made after it (restore --at picks bundles by it)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_embeddings(staging_dir: str | os.PathLike[str], batches: Iterable[RecordBatch] | None, *,
                     settings: StoreSettings, backend: str, uri: str,
                     compression_level: int = DEFAULT_LEVEL, build_index: bool = True,
                     shard_rows: int | None = None, jobs: int = 1,
                     vector_encoding: str = DEFAULT_VECTOR_ENCODING,
                     streams: list | None = None, total: int | None = None,
                     graph: Any = None) -> dict[str, Any]:
    """The work of :func:`dump_embeddings` for any ascending-id stream of batches.

    ``build_index=False`` leaves out ``index.faiss`` even for FAISS sources (delta bundles);
    ``shard_rows`` (default :data:`~.shards.DEFAULT_SHARD_ROWS`) is the number of rows per shard.
    ``jobs`` > 1 writes shards on that many threads; ``streams`` (instead of ``batches``) gives one
    stream factory per shard (see :func:`~.shard_jobs.write_ranges`). ``total`` is the expected row
    count, for progress only. ``graph`` is a callable returning the source's HNSW graph in row order
    (or None); when it holds exactly the exported rows, ``index.faiss`` carries it instead of the flat index.
    """
    from .faiss_file import FaissIndexBuilder
    from .parquet_io import VECTOR_ENCODINGS, rows_per_group
    from .shard_jobs import Tally, check_order, write_ranges, write_split
    from .shards import DEFAULT_SHARD_ROWS, ShardedWriter

    staging = Path(staging_dir)
    claim(staging)  # this process works in it now
    if not 1 <= compression_level <= 22:
        raise BundleError(f"compression level must be between 1 and 22, got {compression_level}")
    if vector_encoding not in VECTOR_ENCODINGS:
        raise BundleError(f"unknown vector encoding {vector_encoding!r}", hint=f"use one of {', '.join(VECTOR_ENCODINGS)}")
    shard_rows = DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows
    dims = int(settings.dimensions or 0)
    shutil.rmtree(layout.member(staging, layout.SHARD_DIR), ignore_errors=True)  # a retried step starts over
    builder = None
    if backend == "faiss" and build_index:
        layout.faiss_index_path(staging).unlink(missing_ok=True)
        # always the exact index, streamed (bounded memory); the store's own index type is in the manifest
        builder = FaissIndexBuilder(layout.faiss_index_path(staging), dims, settings.metric, "flat", {},
                                    expected_rows=total)
    try:
        if streams is not None or jobs > 1:
            layout.member(staging, layout.SHARD_DIR).mkdir(exist_ok=True)
            tally = Tally("export", total)
            options = {"dimensions": dims, "compression_level": compression_level,
                       "vector_encoding": vector_encoding, "jobs": jobs, "where": uri, "tally": tally}
            if streams is not None:
                shards = write_ranges(staging, streams, **options)
            else:
                assert batches is not None
                shards = write_split(staging, batches, shard_rows=shard_rows,
                                     on_batch=builder.add_batch if builder is not None else None, **options)
            check_order(shards, uri)
            rows = sum(s["rows"] for s in shards)
        else:
            assert batches is not None
            writer = ShardedWriter(staging, dims, compression_level, shard_rows, vector_encoding)
            try:
                for batch, arrow_batch in prefetch(checked(batches, dims, uri)):
                    writer.write_arrow(arrow_batch)
                    if builder is not None:
                        builder.add(batch.vectors)
                shards = writer.finish()
            except BaseException:
                writer.abort()
                raise
            rows = writer.rows
        index_entry = None
        if builder is not None:
            index_sha, index_size = builder.finish(graph() if graph is not None else None)
            index_entry = {"sha256": index_sha, "size": index_size,
                           "type": "hnsw" if builder.carried_graph else "flat"}
    except BaseException:
        if builder is not None:
            builder.abort()
        raise
    embeddings = {"shards": shards, "shard_rows": shard_rows, "records": rows, "dimensions": dims,
                  "compression_level": compression_level, "rows_per_group": rows_per_group(dims),
                  "vector_encoding": vector_encoding,
                  "backend": backend, "uri": uri, "metric": settings.metric,
                  "index": settings.index, "index_params": dict(settings.index_params)}
    update_state(staging, embeddings=embeddings, faiss_index=index_entry or False)
    return {"records": rows, "dimensions": dims, "shards": len(shards),
            "faiss_index": index_entry is not None}
