"""One line of ``snapshot list`` per bundle: what it is, built from its manifest or, for a single-object
bundle in S3, from the object's metadata.

An entry is ``{"name", "snapshot_id", "created_utc", "kind", "parent", "record_count", "bytes",
"signed", "encrypted", "location"}``. An encrypted bundle (``.age``) cannot be read without its key,
so only its name, date (from the name), size and ``encrypted: true`` are known; the rest is null.
Pushing a ``.tar.zst`` stores its manifest's fields as object metadata (``procos-*``), so listing an
S3 prefix never downloads archives.
"""

from __future__ import annotations

import tarfile
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import BundleError
from engine.snapshot import layout, manifest

from .location import SIGNATURE

KEYS = ("name", "snapshot_id", "created_utc", "kind", "parent", "record_count", "bytes", "signed", "encrypted")
META = {"snapshot_id": "procos-snapshot-id", "created_utc": "procos-created-utc", "kind": "procos-kind",
        "record_count": "procos-record-count", "parent_id": "procos-parent-id",
        "parent_hash": "procos-parent-content-hash", "content_hash": "procos-content-hash",
        "signed": "procos-signed"}


def created_from_name(name: str) -> str:
    """``YYYY-MM-DDTHH:MM:SSZ`` from ``knowledge_snapshot_YYYYMMDD_HHMMSS[_N]`` (the export's UTC time)."""
    stamp = name[len(layout.BUNDLE_PREFIX):len(layout.BUNDLE_PREFIX) + 15]
    return datetime.strptime(stamp, "%Y%m%d_%H%M%S").replace(tzinfo=UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def entry(name: str, doc: dict[str, Any] | None, *, size: int, signed: bool, encrypted: bool,
          location: str) -> dict[str, Any]:
    """The list entry of bundle ``name`` from its manifest ``doc`` (None when it cannot be read)."""
    doc = doc or {}
    parent = doc.get("parent")
    return {
        "name": name, "snapshot_id": doc.get("snapshot_id"),
        "created_utc": doc.get("created_utc") or created_from_name(name),
        "kind": manifest.kind_of(doc) if doc else None,
        "parent": ({"snapshot_id": parent.get("snapshot_id"), "content_hash": parent.get("content_hash")}
                   if isinstance(parent, dict) else None),
        "record_count": doc.get("record_count"), "bytes": size, "signed": signed, "encrypted": encrypted,
        "location": location, "content_hash": doc.get("content_hash"), "sequence": doc.get("sequence"),
        "store_id": doc.get("store_id"), "as_of_utc": doc.get("as_of_utc"),
    }


def to_metadata(doc: dict[str, Any], signed: bool) -> dict[str, str]:
    """S3 user metadata (ASCII strings) that lets a listing describe a single-object bundle."""
    meta = {META["snapshot_id"]: str(doc["snapshot_id"]), META["created_utc"]: str(doc["created_utc"]),
            META["kind"]: manifest.kind_of(doc), META["record_count"]: str(doc["record_count"]),
            META["content_hash"]: str(doc["content_hash"]), META["signed"]: "true" if signed else "false"}
    parent = doc.get("parent")
    if isinstance(parent, dict):
        meta[META["parent_id"]] = str(parent.get("snapshot_id"))
        meta[META["parent_hash"]] = str(parent.get("content_hash"))
    return {k: v for k, v in meta.items() if v.isascii()}


def from_metadata(meta: dict[str, str]) -> tuple[dict[str, Any] | None, bool]:
    """``(manifest-like doc, signed)`` from the metadata :func:`to_metadata` wrote; (None, False) without it."""
    if META["snapshot_id"] not in meta:
        return None, False
    doc: dict[str, Any] = {"snapshot_id": meta[META["snapshot_id"]], "created_utc": meta.get(META["created_utc"]),
                           "kind": meta.get(META["kind"], "full"), "content_hash": meta.get(META["content_hash"])}
    try:
        doc["record_count"] = int(meta.get(META["record_count"], ""))
    except ValueError:
        doc["record_count"] = None
    if META["parent_id"] in meta:
        doc["parent"] = {"snapshot_id": meta[META["parent_id"]], "content_hash": meta.get(META["parent_hash"])}
    return doc, meta.get(META["signed"]) == "true"


def archive_summary(path: Path) -> tuple[dict[str, Any], bool]:
    """The manifest of a ``.tar.zst`` bundle and whether it holds ``checksums.sha256.asc`` (one streamed read)."""
    import zstandard

    doc: dict[str, Any] | None = None
    signed = False
    try:
        with open(path, "rb") as raw:
            reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
            with tarfile.open(fileobj=reader, mode="r|") as tar:
                for member in tar:
                    parts = member.name.split("/")
                    if len(parts) != 2 or not member.isreg():
                        continue
                    if parts[1] == SIGNATURE:
                        signed = True
                    elif parts[1] == layout.MANIFEST and member.size <= manifest.MAX_MANIFEST_BYTES:
                        fh = tar.extractfile(member)
                        assert fh is not None
                        doc = manifest.loads(fh.read())
    except (OSError, tarfile.TarError, zstandard.ZstdError) as exc:
        raise BundleError(f"cannot read {path} ({exc})", hint="give a .tar.zst written by procos snapshot pack") from exc
    if doc is None:
        raise BundleError(f"{path} holds no <bundle>/manifest.json", hint="give a .tar.zst written by procos "
                          "snapshot pack")
    return doc, signed
