"""Migrate bundles to the current schema_version, one step at a time, never touching the input.

Each step is a function ``(verified source root, its manifest, dest_parent) -> new bundle folder``
registered in :data:`STEPS` under the version it reads. :func:`migrate_to_current` applies the
chain of steps until the bundle has :data:`~.manifest.SCHEMA_VERSION`.

``1 -> 2`` re-shards ``embeddings.parquet`` into ``embeddings/part-NNNNN.parquet`` (streamed in
bounded batches), copies the artifacts, ``index.faiss`` and ``changes.jsonl`` byte for byte, and
writes checksums and a version-2 manifest that keeps the snapshot id, creation time, source,
counts and lineage and adds ``migrated_from`` (the v1 bundle's version, id and content hash). The
content hash changes (the files differ); lineage checks accept a parent's ``migrated_from`` hash.
The input is verified first (a damaged bundle is refused) and the output after.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import BundleError, BundleInvalid, InvalidInput, UnsupportedSchemaVersion

from . import checksums, layout, manifest, reader
from .staging import abort_bundle, discard, start_bundle, update_state
from .verify import verify_dir

Step = Callable[[Path, dict[str, Any], Path, int | None], Path]


def verified_manifest(root: Path, src: object) -> dict[str, Any]:
    """The manifest of the bundle at ``root`` once it verifies (it is refused otherwise)."""
    report = verify_dir(root)
    if report.unsupported_version:
        raise UnsupportedSchemaVersion(f"{src}: {report.unsupported_version}",
                                       hint="upgrade procos-knowledge to read this bundle")
    if not report.ok:
        first = report.errors[0]
        raise BundleInvalid(f"{src} failed verification with {len(report.errors)} problem(s), e.g. "
                            f"{first.path}: {first.problem}; nothing was migrated",
                            [f.to_json() for f in report.errors],
                            hint="run procos snapshot verify for the full list; migrate an intact copy")
    return report.manifest


def _copy(root: Path, staging: Path, rel: str) -> str:
    """Copy one bundle file byte for byte (hashing it on the way); return its sha256."""
    target = layout.member(staging, rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    sink = checksums.HashingWriter(target)
    try:
        with open(layout.member(root, rel), "rb") as fh:
            while chunk := fh.read(checksums.CHUNK):
                sink.write(chunk)
    except BaseException:
        sink.abort()
        raise
    return sink.finish()[0]


def _step_1_to_2(root: Path, doc: dict[str, Any], dest_parent: Path, shard_rows: int | None) -> Path:
    from engine.repository import StoreSettings

    from .writer import finish_bundle, write_embeddings

    created = datetime.strptime(doc["created_utc"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)
    staging = start_bundle(dest_parent, now=created)
    try:
        update_state(staging, snapshot_id=doc["snapshot_id"], created_utc=doc["created_utc"])
        if "sequence" in doc:
            update_state(staging, sequence=int(doc["sequence"]))
        settings = StoreSettings(dimensions=int(doc["dimensions"]) or None, metric=doc["metric"],
                                 index=doc["index"]["type"], index_params=dict(doc["index"]["params"]))
        write_embeddings(staging, reader.iter_batches(root, doc), settings=settings, backend=doc["vector_backend"],
                         uri=doc.get("source_uri", ""), compression_level=int(doc["embeddings"]["compression_level"]),
                         build_index=False, shard_rows=shard_rows)
        listed = reader.listed_files(root)
        files = {rel: _copy(root, staging, rel) for rel in sorted(listed) if layout.artifact_kind(rel)}
        update_state(staging, artifacts={"files": files, "logs_truncated": bool(doc["logs_truncated"])})
        if layout.FAISS_INDEX in listed:
            update_state(staging, faiss_index={"sha256": _copy(root, staging, layout.FAISS_INDEX)})
        if manifest.kind_of(doc) == "delta":
            update_state(staging, delta={
                "parent": doc["parent"], "base_sequence": doc["base_sequence"],
                "changes": {"sha256": _copy(root, staging, layout.CHANGES), "upserts": doc["changes"]["upserts"],
                            "deletes": doc["changes"]["deletes"]},
                "removed_artifacts": doc["removed_artifacts"], "artifacts_state": doc["artifacts_state"]})
        origin = {"schema_version": 1, "snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"]}
        result = finish_bundle(staging, source_env=doc["source_env"], catalog=False,
                               manifest_extra={"migrated_from": origin})
    except BaseException:
        if staging.exists():
            abort_bundle(staging)
        raise
    return Path(result.path)


STEPS: dict[int, Step] = {1: _step_1_to_2}
"""version read -> the step that writes the next version (only 1 -> 2 exists)."""


def _apply(step_from: int, root: Path, doc: dict[str, Any], dest_parent: Path, shard_rows: int | None
           ) -> tuple[Path, dict[str, Any]]:
    out = STEPS[step_from](root, doc, dest_parent, shard_rows)
    report = verify_dir(out)
    if not report.ok or report.manifest.get("schema_version") != step_from + 1:
        discard(out)
        first = report.errors[0] if report.errors else None
        raise BundleError(f"migrating {root} to schema_version {step_from + 1} gave a bundle that does not verify"
                          + (f" ({first.path}: {first.problem})" if first else ""),
                          hint="this is a bug in procos; report it with the source bundle")
    return out, report.manifest


def migrate_to_current(root: str | os.PathLike[str], tmp_parent: str | os.PathLike[str], *,
                       doc: dict[str, Any] | None = None, shard_rows: int | None = None
                       ) -> tuple[Path, dict[str, Any], int | None]:
    """Bring the unpacked bundle at ``root`` to the current version inside ``tmp_parent``.

    Returns ``(root of the current-version bundle, its verified manifest, the version migrated
    from or None)``. With no migration needed ``root`` itself comes back. ``doc`` is the
    already-verified manifest of ``root`` (it is verified here otherwise). Intermediate bundles
    of a multi-step chain are removed; the caller owns ``tmp_parent``.
    """
    current, parent = Path(root), Path(tmp_parent)
    doc = doc if doc is not None else verified_manifest(current, root)
    start = manifest.version_of(doc)
    version = start
    while version < manifest.SCHEMA_VERSION:
        if version not in STEPS:
            raise UnsupportedSchemaVersion(f"{root}: no migration from schema_version {version}",
                                           hint="migrate it with an older procos-knowledge first")
        out, doc = _apply(version, current, doc, parent, shard_rows)
        if current != Path(root):
            discard(current)
        current, version = out, version + 1
    return current, doc, (start if start != version else None)


def migrate_v1_to_v2(src_bundle: str | os.PathLike[str], dest_parent: str | os.PathLike[str], *,
                     shard_rows: int | None = None) -> Path:
    """Write a new schema_version 2 bundle from the v1 bundle ``src_bundle`` (folder or ``.tar.zst``).

    The new folder, in ``dest_parent`` (created if missing), is named from the bundle's creation
    time (``knowledge_snapshot_YYYYMMDD_HHMMSS``, ``_2``... when taken). The input is never
    modified. Raises BundleInvalid when the input does not verify, InvalidInput when it is not
    version 1, UnsupportedSchemaVersion when it is newer than this tool.
    """
    dest = Path(dest_parent)
    with reader.open_bundle(src_bundle) as root:
        doc = verified_manifest(root, src_bundle)
        if manifest.version_of(doc) != 1:
            raise InvalidInput(f"{src_bundle} has schema_version {doc['schema_version']}, not 1; nothing to migrate",
                               hint="it can be imported as it is")
        dest.mkdir(parents=True, exist_ok=True)
        out, _ = _apply(1, root, doc, dest, shard_rows)
    return out
