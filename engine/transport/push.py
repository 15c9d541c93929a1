"""``push``: copy a bundle into an S3 location, manifest last, resuming whatever an earlier run finished.

A bundle folder goes to ``PREFIX/<bundle name>/<file>``; a ``.tar.zst`` or ``.age`` bundle is the one
object ``PREFIX/<file name>``. Every file listed in ``checksums.sha256`` is uploaded and checked (see
:mod:`.upload`), then ``checksums.sha256`` (and a signature ``checksums.sha256.asc`` when there is one),
and only when every one of them is complete and checked, ``manifest.json``: the commit point. A push
that is killed or fails leaves no ``manifest.json`` (unless the same bundle was complete already),
so the bundle is never listed or pulled as complete; running the same push again finishes it.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.errors import TransportError
from engine.snapshot import checksums, layout, manifest

from . import describe
from .client import error_code, retrying, s3_client
from .location import SIGNATURE, S3Location, bundle_form, parse_s3
from .upload import Pending, PushOptions, Uploader


def push_bundle(source: str | Path, destination: str, options: PushOptions | None = None, *,
                endpoint_url: str | None = None, client: Any = None) -> dict[str, Any]:
    """Upload bundle ``source`` (folder, ``.tar.zst`` or ``.age``) into ``destination`` (``s3://BUCKET/PREFIX``).

    Returns ``{"destination", "name", "snapshot_id", "content_hash", "files", "bytes", "bytes_sent",
    "bytes_skipped", "seconds", ...}``; raises TransportError naming every file that is not up yet.
    """
    options = options or PushOptions()
    loc = parse_s3(destination)
    path = Path(source)
    form = bundle_form(path.name)
    if form is None or not path.exists() or (form[1] == "folder") != path.is_dir():
        raise TransportError(f"{path} is not a bundle (a knowledge_snapshot_* folder, .tar.zst or .age)",
                             hint="give a bundle folder written by procos snapshot export, or its archive")
    client = client or s3_client(endpoint_url, concurrency=options.concurrency)
    if options.retain_until is not None:
        _check_object_lock(client, loc)
    started = time.monotonic()
    uploader = Uploader(client, loc.bucket, options)
    try:
        if form[1] == "folder":
            result = _push_folder(uploader, path, loc)
        else:
            result = _push_file(uploader, path, loc, form[1])
    finally:
        uploader.close()
    result.update(bytes_sent=uploader.bytes_sent, bytes_skipped=uploader.bytes_skipped,
                  seconds=round(time.monotonic() - started, 3), sse=options.sse, storage_class=options.storage_class,
                  retain_until=(options.retain_until.strftime("%Y-%m-%dT%H:%M:%SZ") if options.retain_until else None),
                  retention_mode=options.retention_mode if options.retain_until else None)
    return result


def bundle_files(bundle: Path) -> tuple[dict[str, str], list[str]]:
    """``({path: sha256} listed in checksums.sha256, extra files to upload before the manifest)``.

    Refuses a folder that is not a finished bundle: no manifest, unreadable checksums, a listed
    file missing, links or special files, or files that are not part of the bundle.
    """
    if not layout.manifest_path(bundle).is_file() or not layout.checksums_path(bundle).is_file():
        raise TransportError(f"{bundle} is not a finished bundle (manifest.json or checksums.sha256 is missing)",
                             hint="push a bundle written by procos snapshot export")
    listed, problems = checksums.parse_lines(layout.checksums_path(bundle).read_text(encoding="utf-8"))
    if problems:
        raise TransportError(f"{bundle}/{layout.CHECKSUMS} cannot be read: {problems[0][1]}",
                             hint="run procos snapshot verify on the bundle")
    files, odd = layout.relative_files(bundle)
    extra = [rel for rel in files if rel not in listed and rel not in (layout.CHECKSUMS, SIGNATURE)]
    missing = [rel for rel in listed if rel not in set(files)]
    if odd or extra or missing or layout.MANIFEST not in listed:
        what = (f"links or special files {odd}" if odd else f"files not in checksums.sha256: {extra[:5]}"
                if extra else f"listed files missing: {missing[:5]}" if missing else "manifest.json is not listed")
        raise TransportError(f"{bundle} is not a sound bundle ({what}); nothing was uploaded",
                             hint="run procos snapshot verify on the bundle; export it again if it is damaged")
    after = [layout.CHECKSUMS] + ([SIGNATURE] if SIGNATURE in files else [])
    return listed, after


def _push_folder(uploader: Uploader, bundle: Path, loc: S3Location) -> dict[str, Any]:
    name = bundle.name
    listed, after = bundle_files(bundle)
    doc = manifest.loads(layout.manifest_path(bundle).read_bytes())
    present = _present(uploader, loc.key(name) + "/")
    manifest_key = loc.bundle_key(name, layout.MANIFEST)
    if manifest_key in present and not uploader.already_there(
            layout.manifest_path(bundle), manifest_key, present[manifest_key], listed[layout.MANIFEST]):
        raise TransportError(f"{loc.child(name)} is already a complete bundle with another manifest.json; "
                             "nothing was uploaded", hint="remove it first (procos snapshot prune) or push to "
                             "another prefix")
    data = sorted((rel for rel in listed if rel != layout.MANIFEST),
                  key=lambda rel: -layout.member(bundle, rel).stat().st_size)
    missing: list[str] = []
    for group in (data, after):  # checksums.sha256 (and its signature) only once the data files are up
        missing += _upload_all(uploader, bundle, loc, name, group, listed, present)
        if missing:
            break
    if missing:
        shown = ", ".join(missing[:10]) + (f" and {len(missing) - 10} more" if len(missing) > 10 else "")
        raise TransportError(f"the push of {name} to {loc.child(name)} is incomplete: {len(missing)} file(s) are not "
                             f"uploaded ({shown}); manifest.json was not uploaded, so the bundle is not complete there",
                             hint="run the same command again: what is already uploaded and checked is not sent again")
    missing = _upload_all(uploader, bundle, loc, name, [layout.MANIFEST], listed, present)
    if missing:
        raise TransportError(f"every file of {name} is in {loc.child(name)} but manifest.json could not be "
                             f"uploaded ({missing[0]})", hint="run the same command again")
    total = sum(layout.member(bundle, rel).stat().st_size for rel in [*listed, *after])
    return {"destination": loc.child(name), "name": name, "snapshot_id": doc.get("snapshot_id"),
            "content_hash": doc.get("content_hash"), "files": len(listed) + len(after), "bytes": total}


def _upload_all(uploader: Uploader, bundle: Path, loc: S3Location, name: str, rels: list[str],
                listed: dict[str, str], present: dict[str, int]) -> list[str]:
    """Upload ``rels`` of the bundle (in parallel); the paths that are not done, each with why."""
    pending: list[tuple[str, Any]] = []
    missing: list[str] = []
    for rel in rels:
        key = loc.bundle_key(name, rel)
        try:
            started = uploader.start(layout.member(bundle, rel), key, sha256=listed.get(rel), present=key in present)
        except TransportError as exc:
            missing.append(f"{rel}: {exc.message}")
            continue
        if started is not None:
            pending.append((rel, started))
    for rel, started in pending:
        try:
            uploader.finish(started) if isinstance(started, Pending) else started.result()
        except TransportError as exc:
            missing.append(f"{rel}: {exc.message}")
    return missing


def _push_file(uploader: Uploader, path: Path, loc: S3Location, form: str) -> dict[str, Any]:
    doc: dict[str, Any] | None = None
    metadata: dict[str, str] = {}
    if form == "tar.zst":
        doc, signed = describe.archive_summary(path)
        metadata = describe.to_metadata(doc, signed)
    key = loc.key(path.name)
    size = path.stat().st_size
    if key in _present(uploader, key):
        if not uploader.already_there(path, key, size, None):
            raise TransportError(f"{uploader.url(key)} already exists and holds other bytes than {path}; nothing "
                                 "was uploaded", hint="remove it first (procos snapshot prune) or push to another "
                                 "prefix")
        uploader.count(skipped=size)
    else:
        started = uploader.start(path, key, sha256=None, present=False, metadata=metadata)
        if isinstance(started, Pending):
            uploader.finish(started)
        elif started is not None:
            started.result()
    return {"destination": loc.child(path.name), "name": path.name, "snapshot_id": (doc or {}).get("snapshot_id"),
            "content_hash": (doc or {}).get("content_hash"), "files": 1, "bytes": size}


def _present(uploader: Uploader, prefix: str) -> dict[str, int]:
    """``{key: size}`` of the objects under ``prefix`` (one listing; also proves the bucket is reachable)."""
    def listing() -> dict[str, int]:
        found: dict[str, int] = {}
        pages = uploader.client.get_paginator("list_objects_v2").paginate(Bucket=uploader.bucket, Prefix=prefix)
        for page in pages:
            found.update({o["Key"]: o["Size"] for o in page.get("Contents", [])})
        return found

    return retrying(listing, what=f"listing s3://{uploader.bucket}/{prefix}")


def _check_object_lock(client: Any, loc: S3Location) -> None:
    """Refuse --retain-until before anything is uploaded when the bucket has no Object Lock."""
    from botocore.exceptions import ClientError

    try:
        config = retrying(lambda: client.get_object_lock_configuration(Bucket=loc.bucket),
                          what=f"reading the Object Lock configuration of s3://{loc.bucket}")
    except TransportError as exc:
        cause = exc.__cause__
        if isinstance(cause, ClientError) and error_code(cause) == "ObjectLockConfigurationNotFoundError":
            raise TransportError(f"s3://{loc.bucket} does not have Object Lock enabled, so --retain-until cannot "
                                 "protect the bundle; nothing was uploaded",
                                 hint="push to a bucket created with Object Lock enabled, or leave out "
                                      "--retain-until") from exc
        raise
    if config.get("ObjectLockConfiguration", {}).get("ObjectLockEnabled") != "Enabled":
        raise TransportError(f"s3://{loc.bucket} does not have Object Lock enabled; nothing was uploaded",
                             hint="push to a bucket created with Object Lock enabled, or leave out --retain-until")
