"""Export a delta bundle: only what changed in a store since a base bundle (full or delta).

A delta holds ``embeddings/part-NNNNN.parquet`` shards with the records upserted after the base's ``sequence``
(their state at the delta's ``sequence``), ``changes.jsonl`` with one line per changed id
(``{"id", "op": "upsert" | "delete", "version", "vector_hash"}``, ascending id), the artifact
files that were added or changed, and in its manifest ``parent``, ``removed_artifacts`` and
``artifacts_state``. Work and size grow with the changes, never with the store: records come from
``repo.changes_since`` (seq indexes), artifacts are compared by sha256 with the base manifest's
``artifacts_state``. The delta is finished by :func:`~engine.snapshot.writer.finish_bundle`,
so it gets the same checksums, content hash, manifest-last publication and catalog line.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError, LineageError, SettingsMismatch
from engine.records import RecordBatch

from . import checksums, layout, manifest
from .embeddings_export import as_of_now, write_embeddings
from .finish import ExportResult, finish_bundle
from .staging import abort_bundle, read_state, start_bundle, update_state

if TYPE_CHECKING:
    from engine.repository import Changes, VectorRepository


@dataclass(frozen=True)
class DeltaResult(ExportResult):
    """A finished delta bundle: an :class:`ExportResult` plus its parent and change counts."""

    parent: dict[str, str] = field(default_factory=dict)
    upserts: int = 0
    deletes: int = 0
    removed_artifacts: int = 0

    def to_json(self) -> dict[str, Any]:
        return {**super().to_json(), "parent": dict(self.parent), "kind": "delta", "upserts": self.upserts,
                "deletes": self.deletes, "removed_artifacts": self.removed_artifacts}


def base_of(base: str | os.PathLike[str]) -> dict[str, Any]:
    """The base bundle's manifest (folder or archive), checked to be usable as a delta's parent."""
    from .reader import manifest_of

    doc = manifest_of(base)
    problems = manifest.schema_problems(doc)
    if problems:
        raise BundleError(f"{base}: manifest.json does not match its schema: {problems[0]}",
                          hint="give a bundle written by this tool as --base")
    missing = [key for key in ("sequence", "artifacts_state") if key not in doc]
    if missing:
        raise LineageError(f"{base} records no {' or '.join(missing)}, so no delta can be built on it",
                           hint="export a new full bundle with this version of procos and use it as the base")
    return doc


def _check_store(repo: VectorRepository, doc: dict[str, Any], base: str) -> None:
    if doc.get("store_id") and doc["store_id"] != repo.store_id:
        raise LineageError(f"{base} was exported from another store (store_id {doc['store_id']}), not from "
                           f"{repo.uri} (store_id {repo.store_id}); its change sequence means nothing here",
                           hint="build deltas from the store the base was exported from, or export a new "
                                "full bundle of this store as the base")
    if repo.backend != doc["vector_backend"]:
        raise LineageError(f"{base} was exported from a {doc['vector_backend']} store, {repo.uri} is "
                           f"{repo.backend}", hint="build deltas from the store the base was exported from")
    if repo.metric != doc["metric"] or (doc["dimensions"] and repo.dimensions not in (None, doc["dimensions"])):
        raise SettingsMismatch(f"{repo.uri} ({repo.dimensions} dims, {repo.metric}) does not match {base} "
                               f"({doc['dimensions']} dims, {doc['metric']})",
                               hint="build deltas from the store the base was exported from")


def change_lines(changes: Changes) -> tuple[bytes, int, int]:
    """``changes.jsonl`` bytes (ascending id), and the upsert and delete counts."""
    rows: list[tuple[str, dict[str, Any]]] = []
    for batch in changes.upserts:
        for rid, version, vhash in zip(batch.ids, batch.versions, batch.vector_hashes(), strict=True):
            rows.append((rid, {"id": rid, "op": "upsert", "version": int(version), "vector_hash": vhash}))
    upserted = {rid for rid, _ in rows}
    for rid, version, _seq in changes.deletes:
        if rid in upserted:
            raise BundleError(f"the store reports id {rid!r} as both upserted and deleted after sequence "
                              f"{changes.since}", hint="this is a backend bug; report it")
        rows.append((rid, {"id": rid, "op": "delete", "version": int(version), "vector_hash": None}))
    rows.sort(key=lambda r: r[0])
    text = "".join(json.dumps(line, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n"
                   for _, line in rows)
    return text.encode("utf-8"), len(upserted), len(changes.deletes)


def _write_file(staging: Path, rel: str, data: bytes) -> str:
    target = layout.member(staging, rel)
    target.parent.mkdir(parents=True, exist_ok=True)
    target.unlink(missing_ok=True)
    sink = checksums.HashingWriter(target)
    sink.write(data)
    return sink.finish()[0]


def write_delta_artifacts(repo: VectorRepository, staging: Path, base_state: dict[str, str],
                          artifacts_dir: str | os.PathLike[str] | None = None) -> dict[str, Any]:
    """Copy the artifacts whose sha256 differs from ``base_state``; return the state and removals."""
    from engine.repository.artifacts import DirectoryArtifactStore, check_artifact_path

    stores = [repo.artifacts]
    if artifacts_dir is not None:
        if not Path(artifacts_dir).is_dir():
            raise BundleError(f"artifacts folder {artifacts_dir} does not exist")
        stores.append(DirectoryArtifactStore(artifacts_dir))
    current: dict[str, tuple[str, Any]] = {}
    for store in stores:
        current.update({info.path: (info.sha256, store) for info in store.list()})
    files: dict[str, str] = {}
    state: dict[str, str] = {}
    for rel in sorted(current):
        sha, store = current[rel]
        if base_state.get(rel) == sha:
            state[rel] = sha
            continue
        check_artifact_path(rel)
        files[rel] = state[rel] = _write_file(staging, rel, store.read(rel))
    update_state(staging, artifacts={"files": files, "logs_truncated": False})
    return {"files": files, "state": state, "removed": sorted(set(base_state) - set(current))}


def write_delta_records(repo: VectorRepository, staging: Path, since: int, compression_level: int = 1,
                        batch_size: int = 10_000, shard_rows: int | None = None) -> dict[str, Any]:
    """Write the records changed after ``since`` and ``changes.jsonl``; return counts and the sequence."""
    changes = repo.changes_since(since, batch_size)
    batches: list[RecordBatch] = [b for b in changes.upserts if len(b)]  # read to the end
    as_of = as_of_now()
    if changes.until < since:
        raise LineageError(f"{repo.uri} is at change sequence {changes.until}, before its base ({since})",
                           hint="the store was replaced or restored; export a new full bundle as the base")
    write_embeddings(staging, batches, settings=repo.settings, backend=repo.backend, uri=repo.uri,
                     compression_level=compression_level, build_index=False, shard_rows=shard_rows)
    data, upserts, deletes = change_lines(changes)
    sha = _write_file(staging, layout.CHANGES, data)
    return {"sha256": sha, "upserts": upserts, "deletes": deletes, "sequence": changes.until, "as_of_utc": as_of}


def export_delta(repo: VectorRepository, base: str | os.PathLike[str], out_dir: str | os.PathLike[str], *,
                 artifacts_dir: str | os.PathLike[str] | None = None, compression_level: int = 1,
                 pack: bool = False, source_env: str | None = None, batch_size: int = 10_000,
                 shard_rows: int | None = None) -> DeltaResult:
    """Write a delta bundle of ``repo`` holding what changed since bundle ``base`` into ``out_dir``.

    Raises LineageError when ``base`` records no sequence/artifact state or the store is behind
    it, SettingsMismatch when the store's metric or dimensions differ. On any failure the staging
    folder is removed. A delta with no changes is a valid bundle.
    """
    doc = base_of(base)
    _check_store(repo, doc, str(base))
    staging = start_bundle(out_dir)
    try:
        records = write_delta_records(repo, staging, int(doc["sequence"]), compression_level, batch_size,
                                      shard_rows)
        arts = write_delta_artifacts(repo, staging, doc["artifacts_state"], artifacts_dir)
        parent = {"snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"]}
        read_state(staging)
        update_state(staging, sequence=records["sequence"], store_id=repo.store_id, as_of_utc=records["as_of_utc"],
                     delta={
            "parent": parent, "base_sequence": int(doc["sequence"]),
            "changes": {k: records[k] for k in ("sha256", "upserts", "deletes")},
            "removed_artifacts": arts["removed"], "artifacts_state": arts["state"]})
        result = finish_bundle(staging, source_env=source_env, pack=pack)
    except BaseException:
        if staging.exists():
            abort_bundle(staging)
        raise
    return DeltaResult(**asdict(result), parent=parent, upserts=records["upserts"],
                       deletes=records["deletes"], removed_artifacts=len(arts["removed"]))
