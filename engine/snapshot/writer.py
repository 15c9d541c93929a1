"""Export a store into a snapshot bundle, step by step or in one call.

Steps (each can run in its own process; they share state through the staging folder):
``start_bundle`` -> ``dump_embeddings`` -> ``package_artifacts`` -> ``finish_bundle``.
``export_snapshot`` runs them in sequence, with the optional freeze flag set for the duration.
"""

from __future__ import annotations

import hashlib
import logging
import os
import shutil
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError
from engine.records import RecordBatch

from . import checksums, layout, manifest
from .pipeline import checked, prefetch
from .staging import (
    abort_bundle,
    fsync_dir,
    fsync_tree_dirs,
    publish,
    read_state,
    require,
    start_bundle,
    update_state,
)

if TYPE_CHECKING:
    from engine.repository import ArtifactStore, StoreSettings, VectorRepository

__all__ = ["ExportResult", "abort_bundle", "dump_embeddings", "export_snapshot", "finish_bundle",
           "package_artifacts", "start_bundle", "write_artifacts", "write_embeddings"]
DEFAULT_BATCH = 4_096
DEFAULT_LEVEL = 1  # zstd level of the shards; see docs/benchmarks.md for the measured options
DEFAULT_VECTOR_ENCODING = "byte_stream_split"
log = logging.getLogger(__name__)


def _deployment_env() -> str:
    """The environment recorded in a manifest when the caller names none: the deployment's."""
    from engine.config import environment

    return environment()


@dataclass(frozen=True)
class ExportResult:
    """A finished bundle: where it is, its ids, and (when packed) the archive next to it."""

    path: str
    snapshot_id: str
    content_hash: str
    record_count: int
    archive: str | None = None
    warnings: tuple[str, ...] = ()

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {"path": self.path, "snapshot_id": self.snapshot_id,
                               "content_hash": self.content_hash, "record_count": self.record_count}
        if self.archive is not None:
            out["archive"] = self.archive
        if self.warnings:
            out["warnings"] = list(self.warnings)
        return out


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
    update_state(Path(staging_dir), sequence=sequence, store_id=repo.store_id)
    return result


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
    read_state(staging)
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
        builder = FaissIndexBuilder(layout.faiss_index_path(staging), dims, settings.metric, "flat", {})
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
    read_state(staging)
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


def finish_bundle(staging_dir: str | os.PathLike[str], *, source_env: str | None = None,
                  pack: bool = False, catalog: bool = True,
                  manifest_extra: dict[str, Any] | None = None) -> ExportResult:
    """Write checksums.sha256 then manifest.json, fsync everything, rename into the final name.

    ``catalog=False`` leaves the snapshots folder's catalog alone; ``manifest_extra`` adds
    properties to the manifest (a migration's ``migrated_from``).
    """
    staging = Path(staging_dir)
    state = read_state(staging)
    emb = require(state, "embeddings", "dump_embeddings")
    art = require(state, "artifacts", "package_artifacts")
    if "shards" not in emb:
        raise BundleError(f"{staging} was started by an older version of procos (no embeddings shards)",
                          hint="abort this export and start again")
    entries = {**{s["file"]: s["sha256"] for s in emb["shards"]}, **art["files"]}
    if state.get("faiss_index"):
        entries[layout.FAISS_INDEX] = state["faiss_index"]["sha256"]
    if state.get("delta"):
        entries[layout.CHANGES] = state["delta"]["changes"]["sha256"]
    on_disk, odd = layout.relative_files(staging)
    expected = set(entries) | {layout.STAGING_STATE}
    if odd or set(on_disk) != expected:
        raise BundleError(f"staging folder {staging} holds unexpected files "
                          f"{sorted(set(on_disk) ^ expected) + odd}", hint="abort this export and start again")
    doc = manifest.build(
        snapshot_id=state["snapshot_id"], created_utc=state["created_utc"],
        source_env=source_env if source_env is not None else _deployment_env(),
        source_uri=emb["uri"], backend=emb["backend"], record_count=emb["records"],
        dimensions=emb["dimensions"], metric=emb["metric"], index_type=emb["index"],
        index_params=emb["index_params"], content_hash=checksums.content_hash(entries),
        compression_level=emb["compression_level"], rows_per_group=emb["rows_per_group"],
        shards=emb["shards"], shard_rows=emb["shard_rows"], vector_encoding=emb.get("vector_encoding", "plain"),
        artifact_paths=list(art["files"]), logs_truncated=art["logs_truncated"])
    doc.update(manifest.lineage_fields(state, art["files"]))
    doc.update(manifest_extra or {})
    if state.get("delta"):
        doc["faiss_index"] = None
    elif state.get("faiss_index"):
        doc["faiss_index_type"] = state["faiss_index"].get("type", "flat")
    data = manifest.dumps(doc)
    entries[layout.MANIFEST] = hashlib.sha256(data).hexdigest()
    for target, payload in ((layout.checksums_path(staging), checksums.format_lines(entries).encode()),
                            (layout.manifest_path(staging), data)):  # the manifest goes last
        with open(target, "xb") as fh:
            fh.write(payload)
            fh.flush()
            os.fsync(fh.fileno())
    layout.state_path(staging).unlink()
    fsync_tree_dirs(staging)
    final = publish(staging, staging.parent, state["stem"])
    fsync_dir(final)
    # The rename above is the commit point: the bundle is complete. What follows must not make the
    # export look failed (a retried process would write a second bundle), so it degrades to warnings.
    from .catalog import record_bundle

    warnings = []
    try:
        if catalog:
            record_bundle(final, doc)  # one line in <out_dir>/snapshot_catalog.jsonl
    except BundleError as exc:
        log.warning("%s", exc)
        warnings.append(str(exc))
    archive = None
    if pack:
        from .pack import pack_bundle

        try:
            archive = str(pack_bundle(final))
        except (OSError, BundleError) as exc:
            log.warning("packing %s failed: %s", final, exc)
            warnings.append(f"the bundle {final} is complete, but packing it failed ({exc}); "
                            f"retry with: procos snapshot pack {final}")
    return ExportResult(str(final), doc["snapshot_id"], doc["content_hash"], doc["record_count"], archive,
                        tuple(warnings))


def export_snapshot(repo: VectorRepository, out_dir: str | os.PathLike[str], *,
                    artifacts_dir: str | os.PathLike[str] | None = None, compression_level: int = DEFAULT_LEVEL,
                    freeze: bool = False, pack: bool = False, source_env: str | None = None,
                    batch_size: int = DEFAULT_BATCH, max_log_bytes: int | None = None,
                    shard_rows: int | None = None, jobs: int = 1,
                    vector_encoding: str = DEFAULT_VECTOR_ENCODING) -> ExportResult:
    """Export ``repo`` into a new bundle inside the snapshots folder ``out_dir``.

    With ``freeze`` the store's freeze flag is set for the duration and cleared on every exit path
    (unless it was already set before, in which case it is left set). On any failure the staging
    folder is removed and nothing that looks like a bundle is left behind. ``shard_rows`` is the
    number of rows per ``embeddings/part-NNNNN.parquet`` shard (default 100,000); ``jobs`` shards are
    written at a time (the bundle is byte-identical whatever ``jobs`` is); ``vector_encoding`` is the
    Parquet encoding of the vector column (``byte_stream_split`` or ``plain``).
    """
    if shard_rows is not None:
        from .shards import check_shard_rows

        check_shard_rows(shard_rows)
    staging = start_bundle(out_dir)
    paused_here = False
    try:
        if freeze and not repo.is_paused():
            repo.pause_ingestion()
            paused_here = True
        dump_embeddings(repo, staging, compression_level, batch_size=batch_size, shard_rows=shard_rows, jobs=jobs,
                        vector_encoding=vector_encoding)
        package_artifacts(repo, staging, artifacts_dir, max_log_bytes=max_log_bytes)
        return finish_bundle(staging, source_env=source_env, pack=pack)
    except BaseException:
        if staging.exists():
            abort_bundle(staging)
        raise
    finally:
        if paused_here:
            repo.resume_ingestion()
