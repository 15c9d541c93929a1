"""Import a verified bundle into a store: plan first, then apply.

A bundle that fails verification writes nothing (:class:`~engine.errors.BundleInvalid` lists every
finding). ``replace`` swaps the store's records atomically (``repo.replace_all``) and then its
artifact set; ``append`` bulk-loads with a conflict rule (``version`` by default: the higher
version wins, ties keep the stored record) and writes each artifact.

A signature is checked right after verification, before anything is migrated or opened: with a
:class:`~.access.BundleAccess` that requires one (``--require-signature``, or any import when the
deployment environment is prod) a bundle without a good signature by a trusted key raises
:class:`~engine.errors.SignatureRequired`. Encrypted bundles (``.age``) are decrypted with the
access's keys as they unpack.

A bundle of an older schema_version (1: one ``embeddings.parquet``) is verified as it is, then
migrated into a temporary folder (:func:`~.migrate.migrate_to_current`) and loaded from there; the
result says ``"migrated_from": 1``. A newer version raises UnsupportedSchemaVersion.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import (
    BundleChanged,
    BundleInvalid,
    InvalidInput,
    LineageError,
    SettingsMismatch,
)
from engine.records import OnConflict

from . import layout, manifest, reader
from .access import BundleAccess
from .import_target import atomic_loads, exists, open_target
from .staging import discard
from .verified_load import load_side_by_side, verified_rows
from .verify import verified_manifest

if TYPE_CHECKING:
    from engine.repository import VectorRepository

IMPORT_BATCH = 4096  # rows per COPY: with the next batch prepared meanwhile, memory stays near 4 batches
MODES = ("append", "replace")
MAX_LOAD_STREAMS = 16  # connections of one parallel load, whatever --jobs says (a server has ~100 in all)
CONFLICT_RULES = {"version": OnConflict.VERSION, "error": OnConflict.ERROR, "keep": OnConflict.KEEP,
                  "overwrite": OnConflict.OVERWRITE}


def _rule(on_conflict: str | OnConflict) -> OnConflict:
    key = on_conflict.value if isinstance(on_conflict, OnConflict) else str(on_conflict)
    if key not in CONFLICT_RULES:
        raise InvalidInput(f"unknown conflict rule {on_conflict!r}",
                           hint=f"use one of {', '.join(CONFLICT_RULES)}")
    return CONFLICT_RULES[key]


def _settings_problem(repo: VectorRepository, doc: dict[str, Any]) -> str | None:
    dims = doc["dimensions"]
    if repo.dimensions is not None and dims and repo.dimensions != dims:
        return f"{repo.uri} holds {repo.dimensions}-dimensional vectors, the bundle {dims}-dimensional ones"
    if repo.metric != doc["metric"]:
        return (f"{repo.uri} uses metric {repo.metric!r}, the bundle was exported with {doc['metric']!r}; "
                "scores would change meaning")
    return None


def check_bundle(root: Path, access: BundleAccess | None = None, name: object = "the bundle",
                 jobs: int | None = None, rows: bool = True) -> dict[str, Any]:
    """Verify the unpacked bundle at ``root`` (and its signature, see :class:`~.access.BundleAccess`).

    Returns its manifest or raises (nothing written yet). ``access=None`` is a default access:
    no extra trusted keys, a signature required only in prod.
    """
    return verified_manifest(root, name, consequence="nothing was imported", purpose="import this bundle",
                             access=access if access is not None else BundleAccess(), max_workers=jobs, rows=rows)


@contextmanager
def open_current(src: str | os.PathLike[str], *, tmp_dir: str | None = None, access: BundleAccess | None = None,
                 jobs: int | None = None, rows: bool = True) -> Iterator[tuple[Path, dict[str, Any], int | None]]:
    """Open and verify bundle ``src``; migrate it to the current schema_version in a temporary folder if older.

    Yields ``(root, verified manifest, version migrated from or None)``; temporary folders are
    removed on exit. Raises like :func:`check_bundle` before anything is migrated. ``rows=False``
    leaves a current-version bundle's row checks to the load (:mod:`.verified_load`).
    """
    keys = access.keys if access is not None else None
    with reader.open_bundle(src, tmp_dir=tmp_dir, keys=keys) as root:
        doc = check_bundle(root, access, src, jobs, rows)
        if manifest.version_of(doc) == manifest.SCHEMA_VERSION:
            yield root, doc, None
            return
        from .migrate import migrate_to_current

        tmp = Path(tempfile.mkdtemp(prefix=".procos-migrate-", dir=tmp_dir))
        try:
            new_root, new_doc, old = migrate_to_current(root, tmp, doc=doc)
            yield new_root, new_doc, old
        finally:
            discard(tmp)


def _note(result: dict[str, Any], migrated_from: int | None) -> dict[str, Any]:
    if migrated_from is not None:
        result["migrated_from"] = migrated_from
    return result


def refuse_delta(doc: dict[str, Any], src: object) -> None:
    """A delta bundle is only meaningful on top of its parent: importing it alone is refused."""
    if doc.get("kind") == "delta":
        raise LineageError(f"{src} is a delta bundle; it can only be imported after the bundles it builds on",
                           hint="import the chain: procos snapshot import FULL DELTA1 ... DELTA URI")


def plan_import(repo: VectorRepository | None, src: str | os.PathLike[str], mode: str = "append",
                on_conflict: str = "version", *, target: str | None = None,
                access: BundleAccess | None = None) -> dict[str, Any]:
    """What :func:`import_snapshot` would do, as plain data (verifies the bundle and its signature; writes nothing).

    ``repo=None`` plans an import into a store that does not exist yet, named ``target``.
    """
    if mode not in MODES:
        raise InvalidInput(f"import mode must be append or replace, got {mode!r}")
    rule = _rule(on_conflict)
    with reader.open_bundle(src, keys=access.keys if access is not None else None) as root:
        doc = check_bundle(root, access, src)
        refuse_delta(doc, src)
        from .plan import record_plan

        problem = _settings_problem(repo, doc) if repo is not None else None
        counts = record_plan(repo if problem is None else None, reader.iter_batches(root, doc, 10_000), mode, rule)
        if problem is not None:
            counts.update(target_exists=True, would_create=False)
        return {"source": str(src), "schema_version": doc["schema_version"],
                "migrate": doc["schema_version"] != manifest.SCHEMA_VERSION,
                "target": repo.uri if repo is not None else target, "mode": mode,
                "on_conflict": rule.value if mode == "append" else None,
                "snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"],
                "records": doc["record_count"], "dimensions": doc["dimensions"], "metric": doc["metric"],
                "artifacts": len(reader.artifact_paths(root)),
                "target_count": repo.count() if repo is not None else 0,
                "settings_problem": problem, "signature": _signature(root, access), **counts,
                "bundles": [{"path": str(src), "kind": manifest.kind_of(doc), "snapshot_id": doc["snapshot_id"],
                             "content_hash": doc["content_hash"], "records": doc["record_count"]}]}


def _signature(root: Path, access: BundleAccess | None) -> dict[str, Any]:
    from .signature import check_signature

    return check_signature(root, (access or BundleAccess()).trusted())


def import_snapshot(repo: VectorRepository, src: str | os.PathLike[str], mode: str = "append",
                    on_conflict: str | OnConflict = "version", *, batch_size: int = IMPORT_BATCH,
                    access: BundleAccess | None = None) -> dict[str, Any]:
    """Import bundle ``src`` (folder or ``.tar.zst``) into ``repo``: records, then artifacts.

    Returns ``{"imported", "skipped", "target", "snapshot_id", "content_hash"}`` (plus
    ``"migrated_from"`` when an older bundle was migrated first; ids and hash are then the
    migrated bundle's). Raises BundleInvalid (with every finding) or UnsupportedSchemaVersion
    before writing anything (SignatureRequired when ``access`` requires a good signature, and in
    prod), and SettingsMismatch when the store's dimensions or metric differ.
    """
    with open_current(src, access=access) as (root, doc, old):
        result = _load_records(repo, root, doc, mode, on_conflict, batch_size)
        _register(repo, root, mode)
    return _note(result, old)


def import_records(repo: VectorRepository, src: str | os.PathLike[str], mode: str = "append",
                   on_conflict: str | OnConflict = "version", *, batch_size: int = IMPORT_BATCH,
                   access: BundleAccess | None = None) -> dict[str, Any]:
    """The records half of :func:`import_snapshot` (verifies the whole bundle first, migrates an older one)."""
    with open_current(src, access=access) as (root, doc, old):
        return _note(_load_records(repo, root, doc, mode, on_conflict, batch_size), old)


def import_artifacts(repo: VectorRepository, src: str | os.PathLike[str], mode: str = "append", *,
                     access: BundleAccess | None = None, expected_content_hash: str | None = None
                     ) -> dict[str, Any]:
    """The artifacts half of :func:`import_snapshot` (verifies the whole bundle and its signature first)."""
    with reader.open_bundle(src, keys=access.keys if access is not None else None) as root:
        doc = check_bundle(root, access, src)
        refuse_delta(doc, src)
        check_expected(doc, src, expected_content_hash)
        return {"artifacts": _register(repo, root, mode)}


def check_expected(doc: dict[str, Any], src: object, expected_content_hash: str | None) -> None:
    """Refuse a bundle whose content is not the one approved (``expected_content_hash``)."""
    if expected_content_hash is None:
        return
    origin = doc.get("migrated_from") if isinstance(doc.get("migrated_from"), dict) else {}
    if expected_content_hash not in {doc["content_hash"], origin.get("content_hash")}:
        raise BundleChanged(
            f"bundle {src} is not the one approved: it was approved with content_hash {expected_content_hash}, "
            f"it now has {doc['content_hash']}; nothing was loaded",
            [{"path": layout.MANIFEST, "problem": "content_hash differs from the approved one"}],
            hint="the bundle was changed or replaced after approval; start a new import and have it approved")


def import_into(uri: str, src: str | os.PathLike[str], mode: str = "append",
                on_conflict: str | OnConflict = "version", *, records: bool = True, artifacts: bool = True,
                batch_size: int = IMPORT_BATCH, access: BundleAccess | None = None,
                expected_content_hash: str | None = None, jobs: int | None = None) -> dict[str, Any]:
    """Verify bundle ``src`` first (decrypting it, checking its signature per ``access``), then open
    (creating when new) the store ``uri`` and load it.

    Nothing exists before the bundle passed verification: a bundle that fails (or lacks a required
    signature, or does not decrypt) leaves no store behind (no folder, file or table).
    ``records``/``artifacts`` choose the halves to load (the import process loads them in separate
    steps). ``expected_content_hash`` binds the load to an approval: a bundle whose content hash differs
    raises BundleChanged before anything is written. Returns what :func:`import_snapshot` returns, plus
    ``"artifacts"`` (a count) when artifacts were loaded. ``jobs`` shards are verified at a time
    (default ``min(4, cpus)``); the load itself reads, validates and encodes the next batch while
    the store writes the current one. Into a pgvector store, ``jobs`` > 1 also loads that many
    streams of shards side by side, one connection each (at most MAX_LOAD_STREAMS), in one commit
    (default: one stream).
    """
    one_pass = records and atomic_loads(uri)
    with open_current(src, access=access, jobs=jobs, rows=not one_pass) as (root, doc, old):
        refuse_delta(doc, src)
        check_expected(doc, src, expected_content_hash)
        existed = exists(uri) if one_pass else True
        repo = open_target(uri, doc)
        try:
            result: dict[str, Any] = {"target": repo.uri, "snapshot_id": doc["snapshot_id"],
                                      "content_hash": doc["content_hash"]}
            if records:
                rows = verified_rows(root, doc, batch_size, src) if one_pass and old is None else None
                parts = min(max(1, jobs or 1), MAX_LOAD_STREAMS) if rows is not None else 1
                try:
                    result.update(_load_records(repo, root, doc, mode, on_conflict, batch_size, rows, parts, src))
                except BundleInvalid:
                    if not existed:  # the rows were rolled back; leave no store behind either
                        repo.drop_store()  # type: ignore[attr-defined]
                    raise
            if artifacts:
                result["artifacts"] = _register(repo, root, mode)
        finally:
            repo.close()
    return _note(result, old)


def _load_records(repo: VectorRepository, root: Path, doc: dict[str, Any], mode: str,
                  on_conflict: str | OnConflict, batch_size: int, rows: Iterator | None = None, parts: int = 1,
                  name: object = "the bundle") -> dict[str, Any]:
    if mode not in MODES:
        raise InvalidInput(f"import mode must be append or replace, got {mode!r}")
    rule = _rule(on_conflict)
    refuse_delta(doc, root)
    problem = _settings_problem(repo, doc)
    if problem:
        raise SettingsMismatch(problem, hint="import into a new store opened with open_target(uri, manifest)")
    from engine.progress import counted

    source = rows if rows is not None else reader.iter_batches(root, doc, batch_size)
    batches = counted(source, "import", doc.get("record_count"))
    index_file = layout.faiss_index_path(root)  # a FAISS target adopts it when it matches every row
    prebuilt = str(index_file) if index_file.is_file() else None
    if parts > 1 and rows is not None and len(doc["embeddings"]["shards"]) > 1:
        result = load_side_by_side(repo, root, doc, rule, batch_size, name, parts, replace=mode == "replace")
    elif mode == "replace":
        result = repo.replace_all(batches, search_index=prebuilt)
    else:
        result = repo.bulk_load(batches, rule, search_index=prebuilt)
    return {"imported": result.written, "skipped": result.skipped, "target": repo.uri,
            "snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"]}


def _register(repo: VectorRepository, root: Path, mode: str) -> int:
    artifacts = reader.read_artifacts(root)
    if mode == "replace":
        repo.artifacts.replace_all(artifacts)
    else:
        for path, data in artifacts.items():
            repo.artifacts.write(path, data)
    return len(artifacts)
