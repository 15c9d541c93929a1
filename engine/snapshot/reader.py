"""Read bundles: open a folder or ``.tar.zst``, read its manifest, stream its rows and artifacts.

Nothing here verifies; callers that write anything (import) run :func:`verify_bundle` first.
"""

from __future__ import annotations

import os
import tarfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import BundleError
from engine.records import RecordBatch

from . import checksums, layout, manifest
from .staging import discard
from .unpack import UnpackLimits, safe_unpack

if TYPE_CHECKING:
    from engine.crypto import AgeKeys


@contextmanager
def open_bundle(path: str | os.PathLike[str], *, tmp_dir: str | None = None,
                limits: UnpackLimits | None = None, keys: AgeKeys | None = None) -> Iterator[Path]:
    """Yield the bundle's root folder; a ``.tar.zst`` is safely unpacked into a temporary folder first.

    An encrypted ``.age`` bundle is decrypted with ``keys`` (default: ``PROCOS_AGE_IDENTITY``) as it unpacks.
    """
    p = Path(path)
    if p.is_dir():
        yield p.resolve()
        return
    if not p.exists():
        raise BundleError(f"no bundle at {p}", hint="give a bundle folder, its .tar.zst or an encrypted .age")
    if not (layout.is_archive(p) or layout.is_encrypted(p)):
        raise BundleError(f"{p} is neither a bundle folder nor a .tar.zst archive (nor an encrypted .age one)")
    tmp, root = safe_unpack(p, tmp_dir, limits, keys=_keys_for(p, keys))
    try:
        yield root
    finally:
        discard(tmp)  # the unpacked bundle is renamed away first: a kill never leaves it half deleted


def _keys_for(path: Path, keys: AgeKeys | None) -> AgeKeys | None:
    if keys is not None or not layout.is_encrypted(path):
        return keys
    from .access import configured_keys

    return configured_keys()


def read_manifest(root: Path) -> dict[str, Any]:
    """The bundle's manifest; raises BundleError when missing/unparseable, UnsupportedSchemaVersion when newer."""
    path = layout.manifest_path(root)
    if not path.is_file():
        raise BundleError(f"{root} has no manifest.json (an unfinished or damaged bundle)")
    doc = manifest.loads(path.read_bytes())
    manifest.check_version(doc)
    return doc


def manifest_of(path: str | os.PathLike[str], keys: AgeKeys | None = None) -> dict[str, Any]:
    """The manifest of a bundle folder, ``.tar.zst`` or encrypted ``.age`` without unpacking the archive (not verified)."""
    p = Path(path)
    if p.is_dir():
        return read_manifest(p)
    import zstandard

    try:
        with open(p, "rb") as raw:
            source = raw
            if layout.is_encrypted(p):
                from .unpack import decrypting

                source = decrypting(raw, p, _keys_for(p, keys))
            reader = zstandard.ZstdDecompressor().stream_reader(source, read_across_frames=True)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    parts = member.name.split("/")
                    if len(parts) == 2 and parts[1] == layout.MANIFEST and member.isreg():
                        if member.size > manifest.MAX_MANIFEST_BYTES:
                            raise BundleError(f"{p}: manifest.json is too large ({member.size} bytes)")
                        fh = tar.extractfile(member)
                        assert fh is not None
                        doc = manifest.loads(fh.read())
                        manifest.check_version(doc)
                        return doc
    except (OSError, tarfile.TarError, zstandard.ZstdError) as exc:
        raise BundleError(f"cannot read {p} ({exc})") from exc
    raise BundleError(f"{p} holds no <bundle>/manifest.json")


def listed_files(root: Path) -> dict[str, str]:
    """``{path: sha256}`` from checksums.sha256."""
    entries, _ = checksums.parse_lines(layout.checksums_path(root).read_text(encoding="utf-8"))
    return entries


def artifact_paths(root: Path) -> list[str]:
    return sorted(p for p in listed_files(root) if layout.artifact_kind(p) is not None)


def read_artifacts(root: Path) -> dict[str, bytes]:
    """Every knowledge artifact of the bundle, ``{bundle-relative path: bytes}``."""
    return {rel: layout.member(root, rel).read_bytes() for rel in artifact_paths(root)}


def embedding_paths(root: Path, doc: dict[str, Any]) -> list[Path]:
    """The files holding the bundle's records, in row order: ``embeddings.parquet`` (version 1) or the shards."""
    return [layout.member(root, rel) for rel in manifest.embedding_files(doc)]


def iter_batches(root: Path, doc: dict[str, Any], batch_size: int = 10_000) -> Iterator[RecordBatch]:
    """The bundle's records as RecordBatches of at most ``batch_size`` rows, ascending id (any schema version)."""
    from .parquet_io import read_batches

    dims = int(doc["dimensions"])
    for path in embedding_paths(root, doc):
        yield from read_batches(path, dims, batch_size)


def iter_columns(root: Path, doc: dict[str, Any], columns: list[str], batch_size: int = 10_000
                 ) -> Iterator[Any]:
    """Arrow record batches of only ``columns`` of every row, in row order (any schema version)."""
    from .parquet_io import iter_arrow, open_embeddings

    for path in embedding_paths(root, doc):
        yield from iter_arrow(open_embeddings(path), batch_size, columns)


def inspect_bundle(path: str | os.PathLike[str]) -> str:
    """A human summary of a bundle's manifest (folder or archive); it does not verify anything."""
    doc = manifest_of(path)
    index = doc.get("index", {})
    params = ", ".join(f"{k}={v}" for k, v in sorted(index.get("params", {}).items()))
    counts = ", ".join(f"{k.removesuffix('_count')} {doc.get(k, 0)}" for k in layout.ARTIFACT_COUNTERS.values())
    lines = [
        f"bundle:        {path}",
        f"snapshot id:   {doc.get('snapshot_id')}",
        f"created (UTC): {doc.get('created_utc')}",
        f"source:        {doc.get('vector_backend')} {doc.get('source_uri', '')} (env {doc.get('source_env')})",
        f"records:       {doc.get('record_count')} x {doc.get('dimensions')} dimensions, metric {doc.get('metric')}",
        f"index:         {index.get('type')} ({params})",
        f"artifacts:     {counts}" + (" (logs truncated)" if doc.get("logs_truncated") else ""),
        f"content hash:  {doc.get('content_hash')} ({doc.get('hash_algorithm')})",
        f"kind:          {doc.get('kind', 'full')}, store sequence {doc.get('sequence', 'not recorded')}",
        f"format:        schema_version {doc.get('schema_version')}, written by {doc.get('tool')} "
        f"{doc.get('tool_version')}" + _layout_note(doc),
        "verified:      no (run verify_bundle / procos snapshot verify)",
    ]
    if doc.get("kind") == "delta":
        changes, parent = doc.get("changes", {}), doc.get("parent", {})
        lines.insert(-1, f"delta of:      {parent.get('snapshot_id')} ({parent.get('content_hash')}), changes after "
                         f"sequence {doc.get('base_sequence')}: {changes.get('upserts')} upserts, "
                         f"{changes.get('deletes')} deletes, {len(doc.get('removed_artifacts', []))} removed artifacts")
    return "\n".join(lines)


def _layout_note(doc: dict[str, Any]) -> str:
    if doc.get("schema_version") == 1:
        return " (one embeddings.parquet; import migrates it to the current version)"
    emb = doc.get("embeddings") or {}
    note = f" ({len(emb.get('shards') or [])} shard(s) of up to {emb.get('shard_rows')} rows)"
    if isinstance(doc.get("migrated_from"), dict):
        note += f", migrated from schema_version {doc['migrated_from'].get('schema_version')}"
    return note
