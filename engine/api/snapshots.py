"""Snapshot operations of the front door: export, pack, verify, inspect, migrate, catalog (imports:
:mod:`engine.api.imports`).

Each function is a boundary: an OSError from the filesystem (a folder that cannot be created, a
full disk, a missing file) leaves it as a typed :class:`~engine.errors.PathError` (or
:class:`~engine.errors.DiskFull`) naming the path, with a hint.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from engine.errors import BundleInvalid, os_errors

from .crypto import bundle_access
from .stores import opened

# --- export --------------------------------------------------------------------------------------


@os_errors("export the snapshot into {out_dir}", "out_dir")
def export_snapshot(uri: str | None, out_dir: str | Path, *, artifacts_dir: str | Path | None = None,
                    pack: bool = False, compression_level: int = 1, freeze: bool = False,
                    source_env: str | None = None, shard_rows: int | None = None, jobs: int = 1,
                    vector_encoding: str = "byte_stream_split") -> dict[str, Any]:
    """Export the store into a new bundle inside ``out_dir``: ``{"path","snapshot_id","content_hash","record_count"}``.

    ``shard_rows`` is the number of rows per ``embeddings/part-NNNNN.parquet`` shard (default 100,000);
    ``jobs`` shards are written at a time (a pgvector store is read by that many connections sharing
    one exported snapshot); the bundle is byte-identical whatever ``jobs`` is. ``vector_encoding`` is
    ``byte_stream_split`` (default) or ``plain``.
    """
    from engine import snapshot

    with opened(uri) as repo:
        result = snapshot.export_snapshot(repo, out_dir, artifacts_dir=artifacts_dir, pack=pack,
                                          compression_level=compression_level, freeze=freeze,
                                          source_env=source_env, shard_rows=shard_rows, jobs=max(1, int(jobs)),
                                          vector_encoding=vector_encoding)
    return result.to_json()


@os_errors("start the export into {out_dir}", "out_dir")
def start_export(out_dir: str | Path) -> str:
    """Step 1 of a stepwise export: reserve a staging folder in ``out_dir`` and return its path."""
    from engine import snapshot

    return str(snapshot.start_bundle(out_dir))


@os_errors("write the embeddings into {staging}", "staging")
def export_embeddings(uri: str | None, staging: str | Path, compression_level: int = 1,
                      shard_rows: int | None = None) -> dict[str, Any]:
    """Step 2: stream the store's records into the staging folder's embeddings shards."""
    from engine import snapshot

    with opened(uri) as repo:
        return snapshot.dump_embeddings(repo, staging, compression_level, shard_rows=shard_rows)


@os_errors("write the artifacts into {staging}", "staging")
def export_artifacts(uri: str | None, staging: str | Path, artifacts_dir: str | Path | None = None
                     ) -> dict[str, Any]:
    """Step 3: copy the store's knowledge artifacts (plus ``artifacts_dir``) into the staging folder."""
    from engine import snapshot

    with opened(uri) as repo:
        return snapshot.package_artifacts(repo, staging, artifacts_dir)


@os_errors("publish the bundle {staging}", "staging")
def finish_export(staging: str | Path, source_env: str | None = None, pack: bool = False) -> dict[str, Any]:
    """Step 4: write checksums and the manifest, fsync, and publish the bundle under its final name."""
    from engine import snapshot

    return snapshot.finish_bundle(staging, source_env=source_env, pack=pack).to_json()


@os_errors("remove the staging folder {staging}", "staging")
def abort_export(staging: str | Path) -> None:
    """Remove an unfinished staging folder (after a failure or a rejection)."""
    from engine import snapshot

    snapshot.abort_bundle(staging)


@os_errors("pack the bundle {bundle}", "bundle")
def pack_snapshot(bundle: str | Path, level: int = 6) -> dict[str, Any]:
    """Write the reproducible ``<bundle>.tar.zst`` next to the bundle."""
    from engine import snapshot

    return {"archive": str(snapshot.pack_bundle(bundle, level=level))}


# --- verify, inspect, migrate ----------------------------------------------------------------------


@os_errors("verify {path}", "path")
def verify_snapshot(path: str | Path, *, trusted_keys: list[str] | None = None, identity: str | None = None,
                    passphrase_file: str | None = None, jobs: int | None = None) -> dict[str, Any]:
    """Check every byte and count of a bundle, and its signature.

    Returns ``{"ok", "errors": [{"path","problem"}], "manifest", "signature": {"status","fingerprint"}}``;
    ``status`` is good, bad, missing or untrusted (``trusted_keys`` add to ``PROCOS_TRUSTED_KEYS``).
    An encrypted ``.age`` bundle is opened with ``identity`` / ``passphrase_file`` (or ``PROCOS_AGE_IDENTITY``).
    ``jobs`` files and shards are checked at a time (default ``min(4, cpus)``).
    """
    from engine import snapshot

    access = bundle_access(trusted_keys=trusted_keys, identity=identity, passphrase_file=passphrase_file)
    return snapshot.verify_bundle(path, trusted_keys=access.trusted_keys, keys=access.keys,
                                  max_workers=jobs).to_json()


def bundle_size(path: str | Path) -> int:
    """Bytes on disk of a bundle folder (every file) or of an archive file."""
    p = Path(path)
    if p.is_file():
        return p.stat().st_size
    return sum(f.stat().st_size for f in p.rglob("*") if f.is_file())


def describe_snapshot(path: str | Path, *, identity: str | None = None) -> dict[str, Any]:
    """A bundle at a glance, not verified: manifest figures plus size on disk, age, signed, encrypted, parent."""
    from engine.snapshot.describe import describe_bundle

    keys = None
    if identity is not None:
        from .crypto import bundle_access

        keys = bundle_access(identity=identity).keys
    return describe_bundle(path, keys)


@os_errors("read {path}", "path")
def inspect_snapshot(path: str | Path) -> str:
    """A human summary of a bundle's manifest."""
    from engine import snapshot

    return snapshot.inspect_bundle(path)


@os_errors("read {path}", "path")
def check_package(path: str | Path, *, identity: str | None = None) -> dict[str, Any]:
    """Read a bundle's manifest, check it against the schema and the known schema versions; return it.

    An encrypted ``.age`` bundle is opened with ``identity`` (or ``PROCOS_AGE_IDENTITY``)."""
    from engine.snapshot import manifest, manifest_of

    doc = manifest_of(path, bundle_access(identity=identity).keys) if identity else manifest_of(path)
    problems = manifest.schema_problems(doc)
    if problems:
        raise BundleInvalid(f"{path}: manifest.json does not match its schema: {problems[0]}",
                            [{"path": "manifest.json", "problem": p} for p in problems],
                            hint="export the bundle again with this tool")
    return {"snapshot_id": doc["snapshot_id"], "schema_version": doc["schema_version"],
            "needs_migration": doc["schema_version"] != manifest.SCHEMA_VERSION,
            "record_count": doc["record_count"], "content_hash": doc["content_hash"]}


@os_errors("migrate {bundle}", "bundle")
def migrate_snapshot(bundle: str | Path, out_dir: str | Path | None = None, *,
                     shard_rows: int | None = None) -> dict[str, Any]:
    """Write a schema_version 2 copy of the v1 ``bundle`` into ``out_dir`` (default: next to it); never edits it.

    Returns ``{"path","snapshot_id","content_hash","record_count","shards","migrated_from"}``.
    """
    from engine.snapshot.migrate import migrate_v1_to_v2
    from engine.snapshot.reader import manifest_of

    source = Path(bundle)
    out = migrate_v1_to_v2(source, Path(out_dir) if out_dir is not None else source.resolve().parent,
                           shard_rows=shard_rows)
    doc = manifest_of(out)
    return {"path": str(out), "snapshot_id": doc["snapshot_id"], "content_hash": doc["content_hash"],
            "record_count": doc["record_count"], "shards": len(doc["embeddings"]["shards"]),
            "migrated_from": doc["migrated_from"]}


@os_errors("export the delta into {out_dir}", "out_dir")
def export_delta(uri: str | None, base: str | Path, out_dir: str | Path, *, artifacts_dir: str | Path | None = None,
                 pack: bool = False, compression_level: int = 1, source_env: str | None = None,
                 shard_rows: int | None = None) -> dict[str, Any]:
    """Write a delta bundle of what changed in the store since bundle ``base`` into ``out_dir``.

    Returns the export's keys (``path``, ``snapshot_id``, ``content_hash``, ``record_count``) plus
    ``parent`` (``{"snapshot_id","content_hash"}`` of ``base``), ``kind``, ``upserts``, ``deletes``.
    """
    from engine import snapshot

    with opened(uri) as repo:
        result = snapshot.export_delta(repo, base, out_dir, artifacts_dir=artifacts_dir, pack=pack,
                                       compression_level=compression_level, source_env=source_env,
                                       shard_rows=shard_rows)
    return result.to_json()


@os_errors("read the snapshots folder {folder}", "folder")
def snapshot_catalog(folder: str | Path, *, quick: bool = False) -> dict[str, Any]:
    """Lineage and health of the bundles in ``folder``'s catalog: ``{"bundles","problems","ok","folder"}``."""
    from engine import snapshot

    return snapshot.check_catalog(folder, quick=quick)


@os_errors("clean the snapshots folder {folder}", "folder")
def remove_stale_staging(folder: str | Path) -> dict[str, Any]:
    """Remove the leftovers of killed exports and packs in snapshots folder ``folder`` whose writer is gone.

    Returns ``{"folder", "removed": [{"path", "kind", "age_seconds", "writer", "writer_alive"}]}``;
    a leftover whose writer is alive is never removed.
    """
    from engine.snapshot.staging import remove_stale

    return {"folder": str(folder), "removed": remove_stale(folder)}
