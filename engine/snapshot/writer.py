"""Export a store into a snapshot bundle, step by step or in one call.

Steps (each can run in its own process; they share state through the staging folder):
``start_bundle`` -> ``dump_embeddings`` -> ``package_artifacts`` -> ``finish_bundle``.
``export_snapshot`` runs them in sequence, with the optional freeze flag set for the duration.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError

from . import checksums, layout, manifest
from .embeddings_export import (
    DEFAULT_BATCH,
    DEFAULT_LEVEL,
    DEFAULT_VECTOR_ENCODING,
    dump_embeddings,
    write_embeddings,
)
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
    from engine.repository import ArtifactStore, VectorRepository

__all__ = ["ExportResult", "abort_bundle", "dump_embeddings", "export_snapshot", "finish_bundle",
           "package_artifacts", "start_bundle", "write_artifacts", "write_embeddings"]
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
