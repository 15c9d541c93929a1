"""Where bundles are kept: a local folder or an S3 prefix, and where each bundle's files live there.

A location is a snapshots folder (``./snapshots``) or ``s3://BUCKET/PREFIX`` (PREFIX may be empty).
Inside an S3 location a bundle folder ``knowledge_snapshot_X`` keeps each of its files under
``PREFIX/knowledge_snapshot_X/<bundle-relative path>``; a single-file bundle (``.tar.zst``, an
encrypted ``.age``) is the one object ``PREFIX/<file name>``. These are the only functions that join
remote keys (bundle-relative paths come from :mod:`engine.snapshot.layout`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from engine.errors import TransportError
from engine.snapshot import layout

SCHEME = "s3://"
AGE_SUFFIX = ".age"
SIGNATURE = "checksums.sha256.asc"  # a detached signature of checksums.sha256, when the bundle is signed
PULL_SUFFIX = ".pull-partial"  # the hidden folder a pull downloads into before its final rename
FORMS = ("folder", "tar.zst", "age")
_BUCKET_RE = re.compile(r"^[a-z0-9][a-z0-9.\-]{1,61}[a-z0-9]$")


@dataclass(frozen=True)
class S3Location:
    """``s3://bucket/prefix``: ``prefix`` has no leading or trailing slash (empty for the bucket root)."""

    bucket: str
    prefix: str = ""

    @property
    def url(self) -> str:
        return f"{SCHEME}{self.bucket}/{self.prefix}" if self.prefix else f"{SCHEME}{self.bucket}"

    def key(self, *parts: str) -> str:
        """The object key of ``parts`` under this prefix."""
        return "/".join(p for p in (self.prefix, *parts) if p)

    def list_prefix(self) -> str:
        """The prefix to list this location's keys with (``""`` or ``"prefix/"``)."""
        return f"{self.prefix}/" if self.prefix else ""

    def relative(self, key: str) -> str:
        """``key`` without this location's prefix."""
        return key[len(self.list_prefix()):]

    def bundle_key(self, name: str, rel: str) -> str:
        """The key of bundle-relative file ``rel`` of bundle folder ``name``."""
        return self.key(name, layout.check_relative(rel))

    def child(self, name: str) -> str:
        return f"{self.url}/{name}"


def is_remote(text: str | Path) -> bool:
    return isinstance(text, str) and text.startswith(SCHEME)


def parse_s3(text: str) -> S3Location:
    """``s3://BUCKET[/PREFIX]`` -> S3Location, or TransportError naming what is wrong."""
    if not is_remote(text):
        raise TransportError(f"{text!r} is not an s3:// URL", hint="write it as s3://BUCKET/PREFIX")
    rest = text[len(SCHEME):]
    bucket, _, prefix = rest.partition("/")
    prefix = prefix.strip("/")
    if not _BUCKET_RE.match(bucket):
        raise TransportError(f"{text!r}: {bucket!r} is not a valid bucket name (3-63 characters: lowercase "
                             "letters, digits, dots and hyphens)", hint="write it as s3://BUCKET/PREFIX")
    if any(part in ("", ".", "..") for part in prefix.split("/")) and prefix:
        raise TransportError(f"{text!r}: the prefix {prefix!r} has an empty, '.' or '..' part",
                             hint="write it as s3://BUCKET/PREFIX")
    return S3Location(bucket, prefix)


def parse_location(text: str | Path) -> S3Location | Path:
    """An S3Location for ``s3://...``, else the local folder's Path."""
    return parse_s3(text) if is_remote(text) else Path(text)


def split_bundle_url(text: str) -> tuple[S3Location, str]:
    """``s3://BUCKET/PREFIX/<bundle name or file>`` -> (the location holding it, the last part)."""
    loc = parse_s3(text)
    if not loc.prefix:
        raise TransportError(f"{text!r} names a bucket, not a bundle",
                             hint="give s3://BUCKET/PREFIX/knowledge_snapshot_YYYYMMDD_HHMMSS")
    parent, _, last = loc.prefix.rpartition("/")
    return S3Location(loc.bucket, parent), last


def bundle_form(file_name: str) -> tuple[str, str] | None:
    """``(bundle name, form)`` of a top-level entry of a location, form ``folder``/``tar.zst``/``age``; else None.

    ``knowledge_snapshot_X`` is a folder, ``knowledge_snapshot_X.tar.zst`` an archive, and
    ``knowledge_snapshot_X.tar.zst.age`` or ``knowledge_snapshot_X.age`` an encrypted bundle.
    """
    if layout.is_bundle_name(file_name):
        return file_name, "folder"
    if file_name.endswith(AGE_SUFFIX):
        stem = file_name[: -len(AGE_SUFFIX)]
        stem = stem[: -len(layout.ARCHIVE_SUFFIX)] if stem.endswith(layout.ARCHIVE_SUFFIX) else stem
        return (stem, "age") if layout.is_bundle_name(stem) else None
    if file_name.endswith(layout.ARCHIVE_SUFFIX):
        stem = file_name[: -len(layout.ARCHIVE_SUFFIX)]
        return (stem, "tar.zst") if layout.is_bundle_name(stem) else None
    return None


def pull_folder(out_dir: Path, file_name: str) -> Path:
    """The hidden folder in ``out_dir`` a pull of ``file_name`` downloads into (kept for resuming)."""
    return out_dir / f".{file_name}{PULL_SUFFIX}"


def pulled_name(entry: str) -> str | None:
    """The file name a hidden pull folder name is for, or None when it is not one."""
    if entry.startswith(".") and entry.endswith(PULL_SUFFIX):
        name = entry[1: -len(PULL_SUFFIX)]
        return name if bundle_form(name) else None
    return None
