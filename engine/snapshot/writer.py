"""Export a store into a snapshot bundle, step by step or in one call.

Steps (each can run in its own process; they share state through the staging folder):
``start_bundle`` -> ``dump_embeddings`` -> ``package_artifacts`` -> ``finish_bundle``.
``export_snapshot`` runs them in sequence, with the optional freeze flag set for the duration.
"""

from __future__ import annotations

import logging
import os
from dataclasses import replace
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
from .finish import ExportResult, finish_bundle
from .staging import abort_bundle, claim, start_bundle, update_state

if TYPE_CHECKING:
    from engine.repository import ArtifactStore, VectorRepository

__all__ = ["DEFAULT_BATCH", "DEFAULT_LEVEL", "DEFAULT_VECTOR_ENCODING", "ExportResult", "abort_bundle",
           "dump_embeddings", "export_snapshot", "finish_bundle", "package_artifacts", "start_bundle",
           "write_artifacts", "write_embeddings"]
log = logging.getLogger(__name__)

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
                    artifacts_dir: str | os.PathLike[str] | None = None, compression_level: int = DEFAULT_LEVEL,
                    freeze: bool = False, pack: bool = False, source_env: str | None = None,
                    batch_size: int = DEFAULT_BATCH, max_log_bytes: int | None = None,
                    shard_rows: int | None = None, jobs: int = 1,
                    vector_encoding: str = DEFAULT_VECTOR_ENCODING) -> ExportResult:
    """Export ``repo`` into a new bundle inside the snapshots folder ``out_dir``.

    With ``freeze`` the store's freeze flag is held as a leased freeze for the duration (renewed by
    a thread, cleared on every exit path; a killed export leaves it stale, and the next writer or
    export clears it), unless it was already set by an operator or a live holder, in which case it
    is left as it was. On any failure the staging folder is removed and nothing that looks like a
    bundle is left behind; staging folders of earlier exports whose writer is gone are removed when
    this one starts. ``shard_rows`` is the number of rows per ``embeddings/part-NNNNN.parquet``
    shard (default 100,000). A stale freeze cleared on the way is reported in ``warnings``. ``jobs`` shards are
    written at a time (the bundle is byte-identical whatever ``jobs`` is); ``vector_encoding`` is the
    Parquet encoding of the vector column (``byte_stream_split`` or ``plain``).
    """
    from .freezing import held_freeze

    if shard_rows is not None:
        from .shards import check_shard_rows

        check_shard_rows(shard_rows)
    staging = start_bundle(out_dir)
    try:
        with held_freeze(repo, freeze) as notes:
            dump_embeddings(repo, staging, compression_level, batch_size=batch_size, shard_rows=shard_rows,
                            jobs=jobs, vector_encoding=vector_encoding)
            package_artifacts(repo, staging, artifacts_dir, max_log_bytes=max_log_bytes)
            result = finish_bundle(staging, source_env=source_env, pack=pack)
    except BaseException:
        if staging.exists():
            abort_bundle(staging)
        raise
    return replace(result, warnings=(*notes, *result.warnings))
