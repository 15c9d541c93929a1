"""Remove a bundle (prune) or what an unfinished push or pull left (abort-incomplete), never half-way
because of Object Lock.

In S3 a bundle is removed with every version of every object (a plain DELETE in a versioned bucket
only hides the data behind a delete marker). Before anything is deleted, every version is checked
for Object Lock retention (``head_object``: mode and retain-until date) and legal hold; a bundle with
any protected version is left whole and reported as retained. ``manifest.json`` goes first, so a
removal that is interrupted leaves an incomplete bundle (``list --incomplete``), never one that looks
complete with files missing. Local bundle folders lose their ``manifest.json`` first too.
"""

from __future__ import annotations

import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from engine.errors import TransportError
from engine.files import fsync_dir
from engine.snapshot import layout

from .client import retrying
from .listing import Holding
from .location import S3Location

BATCH = 1000


def _versions(client: Any, bucket: str, prefix: str, exact: bool) -> list[dict[str, str]]:
    def listing() -> list[dict[str, str]]:
        found: list[dict[str, str]] = []
        for page in client.get_paginator("list_object_versions").paginate(Bucket=bucket, Prefix=prefix):
            for v in page.get("Versions", []) + page.get("DeleteMarkers", []):
                if not exact or v["Key"] == prefix:
                    found.append({"Key": v["Key"], "VersionId": v["VersionId"],
                                  "marker": "ETag" not in v})
        return found

    return retrying(listing, what=f"listing the versions under s3://{bucket}/{prefix}")


def holding_versions(client: Any, loc: S3Location, h: Holding) -> list[dict[str, str]]:
    """Every version and delete marker of every object of ``h`` (folder objects and single objects)."""
    found: list[dict[str, str]] = []
    if "folder" in h.forms:
        found += _versions(client, loc.bucket, h.forms["folder"] + "/", exact=False)
    for form in ("tar.zst", "age"):
        if form in h.forms:
            found += _versions(client, loc.bucket, h.forms[form], exact=True)
    return found


def retention(client: Any, bucket: str, versions: list[dict[str, str]]) -> str | None:
    """Why one of ``versions`` cannot be deleted yet (Object Lock retention or legal hold), else None."""
    now = datetime.now(UTC)
    for v in versions:
        if v["marker"]:
            continue
        ident = {"VersionId": v["VersionId"]} if v["VersionId"] not in (None, "null") else {}
        head = retrying(lambda v=v, ident=ident: client.head_object(Bucket=bucket, Key=v["Key"], **ident),
                        what=f"reading s3://{bucket}/{v['Key']}")
        until = head.get("ObjectLockRetainUntilDate")
        if until is not None and until > now:
            return (f"{head.get('ObjectLockMode', 'Object Lock').lower()} retention until "
                    f"{until.astimezone(UTC).strftime('%Y-%m-%dT%H:%M:%SZ')} on {v['Key']}")
        if head.get("ObjectLockLegalHoldStatus") == "ON":
            return f"a legal hold on {v['Key']}"
    return None


def delete_versions(client: Any, bucket: str, versions: list[dict[str, str]], first: str | None) -> None:
    """Delete ``versions`` (those of key ``first`` before the others); raise TransportError on any refusal."""
    head = [v for v in versions if v["Key"] == first]
    rest = [v for v in versions if v["Key"] != first]
    for group in ([head] if head else []) + [rest[i:i + BATCH] for i in range(0, len(rest), BATCH)]:
        objects = [{"Key": v["Key"], "VersionId": v["VersionId"]} for v in group]
        reply = retrying(lambda objects=objects: client.delete_objects(
            Bucket=bucket, Delete={"Objects": objects, "Quiet": True}), what=f"deleting objects in s3://{bucket}")
        errors = reply.get("Errors") or []
        if errors:
            e = errors[0]
            raise TransportError(f"s3://{bucket}/{e.get('Key')} could not be deleted: {e.get('Code')}: "
                                 f"{e.get('Message')} ({len(errors)} object(s) refused)",
                                 hint="check the delete permissions (s3:DeleteObject, s3:DeleteObjectVersion) "
                                      "and Object Lock; run the command again")


def abort_uploads(client: Any, bucket: str, h: Holding) -> int:
    for upload in h.uploads:
        retrying(lambda u=upload: client.abort_multipart_upload(Bucket=bucket, Key=u["key"], UploadId=u["upload_id"]),
                 what=f"aborting an unfinished upload of s3://{bucket}/{upload['key']}")
    return len(h.uploads)


def remove_s3(client: Any, loc: S3Location, h: Holding) -> str | None:
    """Remove every object (all versions) and unfinished upload of ``h``; return why it is retained instead."""
    versions = holding_versions(client, loc, h)
    why = retention(client, loc.bucket, versions)
    if why is not None:
        return why
    abort_uploads(client, loc.bucket, h)
    manifest_key = loc.bundle_key(h.name, layout.MANIFEST) if "folder" in h.forms else None
    delete_versions(client, loc.bucket, versions, manifest_key)
    return None


def remove_local(h: Holding) -> None:
    """Remove a bundle's folder (manifest.json first) and archives from a local snapshots folder."""
    if "folder" in h.forms:
        root = Path(h.forms["folder"])
        layout.manifest_path(root).unlink(missing_ok=True)
        fsync_dir(root)
        shutil.rmtree(root)
    for form in ("tar.zst", "age"):
        if form in h.forms:
            Path(h.forms[form]).unlink(missing_ok=True)
    if h.forms:
        fsync_dir(Path(next(iter(h.forms.values()))).parent)


def abort_incomplete(location: str | Path, *, endpoint_url: str | None = None, client: Any = None
                     ) -> dict[str, Any]:
    """Remove what unfinished pushes (and pulls) left: bundle folders without manifest.json, unfinished
    multipart uploads, hidden pull folders. Complete bundles are never touched.

    Returns ``{"location", "removed": [names], "aborted_uploads": n, "retained": {name: why}}``.
    """
    from .client import s3_client
    from .listing import local_holdings, s3_holdings
    from .location import parse_location

    loc = parse_location(location)
    removed: list[str] = []
    retained: dict[str, str] = {}
    aborted = 0
    if isinstance(loc, S3Location):
        client = client or s3_client(endpoint_url)
        for h in s3_holdings(client, loc).values():
            aborted += abort_uploads(client, loc.bucket, h)
            if "folder" in h.forms and layout.MANIFEST not in h.files:
                folder_only = Holding(h.name, forms={"folder": h.forms["folder"]}, files=h.files)
                why = remove_s3(client, loc, folder_only)
                if why is None:
                    removed.append(h.name)
                else:
                    retained[h.name] = why
        where = loc.url
    else:
        for h in local_holdings(loc).values():
            if "folder" in h.forms and layout.MANIFEST not in h.files:
                shutil.rmtree(h.forms["folder"])
                removed.append(h.name)
            for partial in h.partial:
                shutil.rmtree(partial)
                if h.name not in removed:
                    removed.append(h.name)
        where = str(loc)
    return {"location": where, "removed": sorted(removed), "aborted_uploads": aborted, "retained": retained}
