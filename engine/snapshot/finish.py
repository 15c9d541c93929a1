"""The last export step: write checksums and the manifest, fsync, publish under the final name.

``finish_bundle`` may run again after a kill (the export process retries steps): what a killed run
wrote is written again, and a staging folder a killed run had completed (its manifest written, its
step state removed, not yet renamed) is verified and published as it is.
"""

from __future__ import annotations

import hashlib
import logging
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from engine.errors import BundleError

from . import checksums, layout, manifest
from .staging import claim, fsync_dir, fsync_tree_dirs, publish, require

log = logging.getLogger("engine.snapshot.writer")


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


def finish_bundle(staging_dir: str | os.PathLike[str], *, source_env: str | None = None,
                  pack: bool = False, catalog: bool = True,
                  manifest_extra: dict[str, Any] | None = None) -> ExportResult:
    """Write checksums.sha256 then manifest.json, fsync everything, rename into the final name.

    ``catalog=False`` leaves the snapshots folder's catalog alone; ``manifest_extra`` adds
    properties to the manifest (a migration's ``migrated_from``). It may run again after it was
    killed (the export process retries the step): files a killed run wrote are written again, and a
    staging folder a killed run completed (manifest written, step state removed, not yet renamed) is
    verified and published.
    """
    staging = Path(staging_dir)
    if not layout.state_path(staging).exists() and layout.manifest_path(staging).is_file():
        return _publish_finished(staging, pack=pack, catalog=catalog)
    state = claim(staging)
    for written in (layout.checksums_path(staging), layout.manifest_path(staging)):
        written.unlink(missing_ok=True)  # a finish killed after writing them: they are written again
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
    return _after_publish(final, doc, pack=pack, catalog=catalog)


def _after_publish(final: Path, doc: dict[str, Any], *, pack: bool, catalog: bool) -> ExportResult:
    """The catalog line and the optional pack of a just-published bundle, and the export's result."""
    # The rename is the commit point: the bundle is complete. What follows must not make the
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


def _publish_finished(staging: Path, *, pack: bool, catalog: bool) -> ExportResult:
    """Publish a staging folder whose finish was killed between removing the step state and the rename."""
    from .verify import verify_dir

    report = verify_dir(staging)
    if not report.ok:
        raise BundleError(f"staging folder {staging} holds a finished but damaged bundle: {report.errors[0].path}: "
                          f"{report.errors[0].problem}", hint="abort this export and start again")
    stem = staging.name[1:].split("_tmp-", 1)[0]
    fsync_tree_dirs(staging)
    final = publish(staging, staging.parent, stem)
    fsync_dir(final)
    return _after_publish(final, report.manifest, pack=pack, catalog=catalog)
