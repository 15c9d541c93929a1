"""Export a store into a snapshot bundle, step by step or in one call.

Steps (each can run in its own process; they share state through the staging folder):
``start_bundle`` -> ``dump_embeddings`` -> ``package_artifacts`` -> ``finish_bundle``.
``export_snapshot`` runs them in sequence, with the optional freeze flag set for the duration.
"""

from __future__ import annotations

import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError
from engine.records import RecordBatch

from . import checksums, layout, manifest
from .finish import ExportResult, finish_bundle
from .pipeline import checked, prefetch
from .staging import abort_bundle, claim, start_bundle, update_state

if TYPE_CHECKING:
    from engine.repository import ArtifactStore, StoreSettings, VectorRepository

__all__ = ["ExportResult", "abort_bundle", "dump_embeddings", "export_snapshot", "finish_bundle",
           "package_artifacts", "start_bundle", "write_artifacts", "write_embeddings"]
DEFAULT_BATCH = 4_096
log = logging.getLogger(__name__)


def dump_embeddings(repo: VectorRepository, staging_dir: str | os.PathLike[str], compression_level: int = 6,
                    *, batch_size: int = DEFAULT_BATCH, shard_rows: int | None = None) -> dict[str, Any]:
    """Stream every record of ``repo`` (one consistent view) into ``embeddings/part-NNNNN.parquet`` shards.

    FAISS stores also get ``index.faiss``. Returns ``{"records", "dimensions", "shards",
    "faiss_index"}``; memory stays bounded by the batch and row-group sizes (plus the rebuilt
    index for FAISS stores).
    """
    # Read before the stream starts: the rows are at this sequence or later, so a delta built on
    # this bundle (changes after it) never misses a change; re-applying one is harmless.
    sequence = repo.sequence()
    from engine.progress import counted

    batches = counted(repo.iter_batches(batch_size), "export", repo.count())
    result = write_embeddings(staging_dir, batches, settings=repo.settings,
                              backend=repo.backend, uri=repo.uri, compression_level=compression_level,
                              shard_rows=shard_rows)
    update_state(Path(staging_dir), sequence=sequence, store_id=repo.store_id, as_of_utc=as_of_now())
    return result


def as_of_now() -> str:
    """The current UTC time to the millisecond, taken once a bundle's read of its store is over: the
    bundle holds no change made after it (restore --at picks bundles by it)."""
    from datetime import UTC, datetime

    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def write_embeddings(staging_dir: str | os.PathLike[str], batches: Iterable[RecordBatch], *,
                     settings: StoreSettings, backend: str, uri: str,
                     compression_level: int = 6, build_index: bool = True,
                     shard_rows: int | None = None) -> dict[str, Any]:
    """The work of :func:`dump_embeddings` for any ascending-id stream of batches.

    ``build_index=False`` leaves out ``index.faiss`` even for FAISS sources (delta bundles);
    ``shard_rows`` (default :data:`~.shards.DEFAULT_SHARD_ROWS`) is the number of rows per shard.
    """
    from .faiss_file import FaissIndexBuilder
    from .parquet_io import rows_per_group
    from .shards import DEFAULT_SHARD_ROWS, ShardedWriter

    staging = Path(staging_dir)
    claim(staging)  # this process works in it now
    if not 1 <= compression_level <= 22:
        raise BundleError(f"compression level must be between 1 and 22, got {compression_level}")
    shard_rows = DEFAULT_SHARD_ROWS if shard_rows is None else shard_rows
    dims = int(settings.dimensions or 0)
    shutil.rmtree(layout.member(staging, layout.SHARD_DIR), ignore_errors=True)  # a retried step starts over
    writer = ShardedWriter(staging, dims, compression_level, shard_rows)
    builder = None
    if backend == "faiss" and build_index:
        layout.faiss_index_path(staging).unlink(missing_ok=True)
        # always the exact index, streamed (bounded memory); the store's own index type is in the manifest
        builder = FaissIndexBuilder(layout.faiss_index_path(staging), dims, settings.metric, "flat", {})
    try:
        for batch, arrow_batch in prefetch(checked(batches, dims, uri)):
            writer.write_arrow(arrow_batch)
            if builder is not None:
                builder.add(batch.vectors)
        shards = writer.finish()
        index_entry = None
        if builder is not None:
            index_sha, index_size = builder.finish()
            index_entry = {"sha256": index_sha, "size": index_size}
    except BaseException:
        writer.abort()
        raise
    embeddings = {"shards": shards, "shard_rows": shard_rows, "records": writer.rows, "dimensions": dims,
                  "compression_level": compression_level, "rows_per_group": rows_per_group(dims),
                  "backend": backend, "uri": uri, "metric": settings.metric,
                  "index": settings.index, "index_params": dict(settings.index_params)}
    update_state(staging, embeddings=embeddings, faiss_index=index_entry or False)
    return {"records": writer.rows, "dimensions": dims, "shards": len(shards),
            "faiss_index": index_entry is not None}


def _tail_lines(data: bytes, max_bytes: int) -> bytes:
    """The newest whole lines of ``data`` that fit in ``max_bytes``."""
    if len(data) <= max_bytes:
        return data
    tail = data[len(data) - max_bytes:]
    cut = tail.find(b"\n")
    return b"" if cut < 0 else tail[cut + 1:]


def package_artifacts(repo: VectorRepository, staging_dir: str | os.PathLike[str],
                      artifacts_dir: str | os.PathLike[str] | None = None, *,
                      max_log_bytes: int | None = None) -> dict[str, Any]:
    """Copy the store's knowledge artifacts (plus/overridden by ``artifacts_dir``) into the bundle.

    ``max_log_bytes`` keeps only the newest whole lines of ``logs/generation_events.jsonl``.
    Returns the manifest's artifact counters plus ``{"files", "logs_truncated"}``.
    """
    from engine.repository.artifacts import DirectoryArtifactStore

    stores: list[ArtifactStore] = [repo.artifacts]
    if artifacts_dir is not None:
        if not Path(artifacts_dir).is_dir():
            raise BundleError(f"artifacts folder {artifacts_dir} does not exist")
        stores.append(DirectoryArtifactStore(artifacts_dir))
    return write_artifacts(staging_dir, stores, max_log_bytes=max_log_bytes)


def write_artifacts(staging_dir: str | os.PathLike[str], stores: list[ArtifactStore], *,
                    max_log_bytes: int | None = None) -> dict[str, Any]:
    """Copy every artifact of ``stores`` into the bundle; a later store overrides an earlier one."""
    from engine.repository.artifacts import check_artifact_path

    staging = Path(staging_dir)
    claim(staging)  # this process works in it now
    sources: dict[str, ArtifactStore] = {}
    for store in stores:
        sources.update({info.path: store for info in store.list()})
    files: dict[str, str] = {}
    truncated = False
    for rel in sorted(sources):
        check_artifact_path(rel)
        data = sources[rel].read(rel)
        if rel == layout.LOGS_FILE and max_log_bytes is not None and len(data) > max_log_bytes:
            data, truncated = _tail_lines(data, max_log_bytes), True
        target = layout.member(staging, rel)
        target.parent.mkdir(parents=True, exist_ok=True)
        target.unlink(missing_ok=True)
        sink = checksums.HashingWriter(target)
        sink.write(data)
        files[rel] = sink.finish()[0]
    update_state(staging, artifacts={"files": files, "logs_truncated": truncated})
    return {**manifest.artifact_counts(list(files)), "files": len(files), "logs_truncated": truncated}


def export_snapshot(repo: VectorRepository, out_dir: str | os.PathLike[str], *,
                    artifacts_dir: str | os.PathLike[str] | None = None, compression_level: int = 6,
                    freeze: bool = False, pack: bool = False, source_env: str | None = None,
                    batch_size: int = DEFAULT_BATCH, max_log_bytes: int | None = None,
                    shard_rows: int | None = None) -> ExportResult:
    """Export ``repo`` into a new bundle inside the snapshots folder ``out_dir``.

    With ``freeze`` the store's freeze flag is held as a leased freeze for the duration (renewed by
    a thread, cleared on every exit path; a killed export leaves it stale, and the next writer or
    export clears it), unless it was already set by an operator or a live holder, in which case it
    is left as it was. On any failure the staging folder is removed and nothing that looks like a
    bundle is left behind; staging folders of earlier exports whose writer is gone are removed when
    this one starts. ``shard_rows`` is the number of rows per ``embeddings/part-NNNNN.parquet``
    shard (default 100,000). A stale freeze cleared on the way is reported in ``warnings``.
    """
    from .freezing import held_freeze

    if shard_rows is not None:
        from .shards import check_shard_rows

        check_shard_rows(shard_rows)
    staging = start_bundle(out_dir)
    try:
        with held_freeze(repo, freeze) as notes:
            dump_embeddings(repo, staging, compression_level, batch_size=batch_size, shard_rows=shard_rows)
            package_artifacts(repo, staging, artifacts_dir, max_log_bytes=max_log_bytes)
            result = finish_bundle(staging, source_env=source_env, pack=pack)
    except BaseException:
        if staging.exists():
            abort_bundle(staging)
        raise
    return replace(result, warnings=(*notes, *result.warnings))
