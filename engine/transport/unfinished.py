"""Unfinished multipart uploads: the one a push can continue, and which of its parts can stay.

A push killed in the middle of a multipart upload leaves the upload open on the server with the
parts it finished. Running the push again continues the newest such upload of the same key whose
parts fit the current part layout (every listed part has the size the file's part of that number
has); each listed part is kept when its bytes are the local bytes: its SHA-256 when the server lists
one, else its ETag when that is a plain MD5 (servers that list no checksums). Anything else is sent
again.
"""

from __future__ import annotations

import hashlib
from typing import Any

from . import s3sums
from .client import error_code, retrying


def uploads_of(client: Any, bucket: str, key: str) -> list[dict[str, Any]]:
    """The unfinished multipart uploads of exactly ``key``."""
    def listing() -> list[dict[str, Any]]:
        found: list[dict[str, Any]] = []
        for page in client.get_paginator("list_multipart_uploads").paginate(Bucket=bucket, Prefix=key):
            found += [u for u in page.get("Uploads", []) if u["Key"] == key]
        return found

    return retrying(listing, what=f"listing unfinished uploads of s3://{bucket}/{key}")


def parts_of(client: Any, bucket: str, key: str, upload_id: str) -> dict[int, dict[str, Any]] | None:
    """``{part number: part}`` of an unfinished upload, or None when it is gone."""
    from botocore.exceptions import ClientError

    def listing() -> dict[int, dict[str, Any]] | None:
        parts: dict[int, dict[str, Any]] = {}
        try:
            pages = client.get_paginator("list_parts").paginate(Bucket=bucket, Key=key, UploadId=upload_id)
            for page in pages:
                parts.update({p["PartNumber"]: p for p in page.get("Parts", [])})
        except ClientError as exc:
            if error_code(exc) == "NoSuchUpload":
                return None
            raise
        return parts

    return retrying(listing, what=f"listing the parts of an unfinished upload of s3://{bucket}/{key}")


def resumable(client: Any, bucket: str, key: str, ranges: list[tuple[int, int]]
              ) -> tuple[str | None, dict[int, dict[str, Any]]]:
    """``(upload id, its parts)`` of an unfinished upload of ``key`` that fits ``ranges``; else ``(None, {})``."""
    for upload in sorted(uploads_of(client, bucket, key), key=lambda u: str(u.get("Initiated")), reverse=True):
        parts = parts_of(client, bucket, key, upload["UploadId"])
        if parts is not None and all(1 <= n <= len(ranges) and p["Size"] == ranges[n - 1][1]
                                     for n, p in parts.items()):
            return upload["UploadId"], parts
    return None, {}


def part_matches(listed: dict[str, Any], data: bytes, digest: bytes) -> bool:
    """Whether a part the server already holds is ``data`` (whose sha256 is ``digest``)."""
    if listed.get("Size") != len(data):
        return False
    if listed.get("ChecksumSHA256"):
        return s3sums.same(listed["ChecksumSHA256"], s3sums.b64(digest))
    etag = str(listed.get("ETag", "")).strip('"')
    return len(etag) == 32 and etag == hashlib.md5(data, usedforsecurity=False).hexdigest()
