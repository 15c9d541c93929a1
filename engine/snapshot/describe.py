"""One bundle at a glance, without verifying it: what ``snapshot inspect --json`` and listings show.

``describe_bundle(path)`` reads the manifest (of a folder, or streamed from a ``.tar.zst``) and adds what
is known from the outside: size on disk, age, signed (``checksums.sha256.asc`` present), encrypted
(``.age``: only its size and name are known without a key), parent.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import layout
from .reader import manifest_of


def size_on_disk(path: Path) -> int:
    if path.is_file():
        return path.stat().st_size
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file() and not f.is_symlink())


def age_seconds(created_utc: str | None, now: datetime | None = None) -> float | None:
    if not created_utc:
        return None
    try:
        created = datetime.fromisoformat(created_utc.replace("Z", "+00:00"))
    except ValueError:
        return None
    return round(((now or datetime.now(UTC)) - created).total_seconds(), 1)


def _signed_archive(path: Path) -> bool:
    """Whether a ``.tar.zst`` carries ``checksums.sha256.asc`` (members are sorted: it comes before the manifest)."""
    import tarfile

    import zstandard

    with open(path, "rb") as raw:
        reader = zstandard.ZstdDecompressor().stream_reader(raw, read_across_frames=True)
        with tarfile.open(fileobj=reader, mode="r|") as tar:
            for member in tar:
                parts = member.name.split("/")
                if len(parts) == 2 and parts[1] == layout.SIGNATURE:
                    return True
                if len(parts) == 2 and parts[1] == layout.MANIFEST:
                    return False
    return False


def describe_bundle(path: str | os.PathLike[str], keys: Any = None) -> dict[str, Any]:
    """``{"path", "name", "kind", "snapshot_id", "created_utc", "age_seconds", "record_count", "dimensions",
    "metric", "content_hash", "parent", "bytes", "signed", "encrypted", "packed", "schema_version", "source_uri",
    "store_id", "vector_backend"}``."""
    p = Path(path)
    encrypted = p.is_file() and layout.is_encrypted(p)
    out: dict[str, Any] = {"path": str(p), "name": p.name, "bytes": size_on_disk(p), "encrypted": encrypted,
                           "packed": p.is_file()}
    if encrypted and keys is None and not os.environ.get("PROCOS_AGE_IDENTITY"):
        return {**out, "kind": None, "snapshot_id": None, "signed": None,
                "note": "encrypted: give --identity (or PROCOS_AGE_IDENTITY) to read its manifest"}
    doc = manifest_of(p, keys) if keys is not None else manifest_of(p)
    if p.is_dir():
        signed = (p / (layout.SIGNATURE)).is_file()
    else:
        signed = None if encrypted else _signed_archive(p)
    return {**out, "kind": doc.get("kind", "full"), "snapshot_id": doc.get("snapshot_id"),
            "created_utc": doc.get("created_utc"), "age_seconds": age_seconds(doc.get("created_utc")),
            "record_count": doc.get("record_count"), "dimensions": doc.get("dimensions"), "metric": doc.get("metric"),
            "content_hash": doc.get("content_hash"), "parent": doc.get("parent"), "signed": signed,
            "schema_version": doc.get("schema_version"), "source_uri": doc.get("source_uri"), "store_id": doc.get("store_id"),
            "vector_backend": doc.get("vector_backend")}
