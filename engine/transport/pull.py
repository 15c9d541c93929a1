"""``pull``: bring a bundle from S3 into a folder, resumably, and let it appear only once it is verified.

``pull s3://BUCKET/PREFIX/<bundle name> DIR`` downloads into the hidden folder
``DIR/.<bundle name>.pull-partial/`` (kept when the pull is killed or fails, so the next run
continues), checks every object against the checksum S3 reports, verifies the bundle
(:func:`engine.snapshot.verify_bundle`: every checksum, count and vector hash) and only then renames
it to ``DIR/<bundle name>``. A ``.tar.zst`` is verified the same way; an encrypted ``.age`` bundle
can only be checked against S3's checksums here (its contents are verified when it is imported).

:func:`fetched` is the same pull into a private temporary folder for ``import s3://...``: it yields
local paths and removes the copies afterwards (the import verifies the bundles itself).
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from engine.errors import BundleInvalid, TransportError
from engine.files import fsync_dir, fsync_file
from engine.snapshot import layout

from .client import retrying, s3_client
from .download import Downloader, PullState, describe_object
from .location import AGE_SUFFIX, S3Location, bundle_form, is_remote, pull_folder, split_bundle_url


def pull_bundle(source: str, out_dir: str | Path, *, concurrency: int = 8, endpoint_url: str | None = None,
                client: Any = None, verify: bool = True) -> dict[str, Any]:
    """Pull bundle ``source`` (``s3://BUCKET/PREFIX/<name>``) into ``out_dir``; return ``{"path", ...}``."""
    started = time.monotonic()
    client = client or s3_client(endpoint_url, concurrency=concurrency)
    loc, last = split_bundle_url(source)
    file_name, keys = _resolve(client, loc, last, source)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    final = out / file_name
    if final.exists():
        raise TransportError(f"{final} already exists; nothing was pulled",
                             hint="remove it, or pull into another folder")
    work = pull_folder(out, file_name)
    work.mkdir(exist_ok=True)
    state = PullState(work / "state.json", loc.child(file_name))
    objects = [describe_object(client, loc.bucket, key, rel, work / file_name / rel if rel != file_name
                               else work / file_name) for rel, key in keys.items()]
    downloader = Downloader(client, loc.bucket, state, concurrency)
    problems = downloader.fetch(objects)
    if problems:
        raise TransportError(f"the pull of {loc.child(file_name)} is incomplete: {len(problems)} object(s) are not "
                             f"complete and checked ({'; '.join(problems[:5])})",
                             hint="run the same command again: parts already downloaded are not fetched again")
    pulled = work / file_name
    verified = _verify(pulled, work, file_name) if verify else False
    for obj in objects:
        fsync_file(obj.target)
    os.rename(pulled, final)
    fsync_dir(out)
    shutil.rmtree(work, ignore_errors=True)
    doc = _manifest(final)
    return {"path": str(final), "name": file_name, "source": loc.child(file_name),
            "snapshot_id": doc.get("snapshot_id"), "content_hash": doc.get("content_hash"),
            "record_count": doc.get("record_count"), "files": len(objects),
            "bytes": sum(o.size for o in objects), "bytes_received": downloader.bytes_received,
            "bytes_skipped": downloader.bytes_skipped, "verified": verified,
            "seconds": round(time.monotonic() - started, 3)}


def _resolve(client: Any, loc: S3Location, last: str, source: str) -> tuple[str, dict[str, str]]:
    """``(local file name, {rel: key})`` of the remote bundle: its folder's objects, or its one archive."""
    form = bundle_form(last)
    if form is None:
        raise TransportError(f"{source} does not name a bundle (knowledge_snapshot_YYYYMMDD_HHMMSS, or its "
                             ".tar.zst / .age)", hint="list the bundles with procos snapshot list s3://BUCKET/PREFIX")
    if form[1] != "folder":
        if not _keys(client, loc.bucket, loc.key(last), exact=True):
            raise TransportError(f"{source} does not exist", hint="list the bundles with procos snapshot list")
        return last, {last: loc.key(last)}
    found = _keys(client, loc.bucket, loc.key(last) + "/")
    if found:
        rels = {loc.relative(key)[len(last) + 1:]: key for key in found if not key.endswith("/")}  # no folder markers
        if layout.MANIFEST not in rels:
            raise TransportError(f"{source} is not a complete bundle (no manifest.json: its push did not finish)",
                                 hint="run the push again to finish it, or remove it with procos snapshot "
                                      "abort-incomplete")
        for rel in rels:
            layout.check_relative(rel)
        return last, rels
    for name in (last + layout.ARCHIVE_SUFFIX, last + layout.ARCHIVE_SUFFIX + AGE_SUFFIX, last + AGE_SUFFIX):
        if _keys(client, loc.bucket, loc.key(name), exact=True):
            return name, {name: loc.key(name)}
    if _unfinished(client, loc.bucket, loc.key(last)):
        raise TransportError(f"{source} is not a complete bundle (only unfinished uploads: its push did not finish)",
                             hint="run the push again to finish it, or remove it with procos snapshot abort-incomplete")
    raise TransportError(f"{source} does not exist (no bundle folder, .tar.zst or .age by that name)",
                         hint="list the bundles with procos snapshot list s3://BUCKET/PREFIX")


def _unfinished(client: Any, bucket: str, prefix: str) -> bool:
    reply = retrying(lambda: client.list_multipart_uploads(Bucket=bucket, Prefix=prefix, MaxUploads=1),
                     what=f"listing unfinished uploads under s3://{bucket}/{prefix}")
    return bool(reply.get("Uploads"))


def _keys(client: Any, bucket: str, prefix: str, *, exact: bool = False) -> list[str]:
    def listing() -> list[str]:
        keys: list[str] = []
        for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
            keys += [o["Key"] for o in page.get("Contents", []) if not exact or o["Key"] == prefix]
        return keys

    return retrying(listing, what=f"listing s3://{bucket}/{prefix}")


def _verify(pulled: Path, work: Path, file_name: str) -> bool:
    """verify_bundle on the downloaded bundle; on failure the download is removed and BundleInvalid raised."""
    if bundle_form(file_name)[1] == "age":  # type: ignore[index]
        return False
    from engine.snapshot import verify_bundle

    report = verify_bundle(pulled, tmp_dir=str(work))
    if report.ok:
        return True
    shutil.rmtree(work, ignore_errors=True)
    first = report.errors[0]
    raise BundleInvalid(f"the pulled copy of {file_name} failed verification with {len(report.errors)} problem(s), "
                        f"e.g. {first.path}: {first.problem}; it was removed and nothing appeared in the folder",
                        [f.to_json() for f in report.errors],
                        hint="the remote bundle is damaged: push it again from a good copy")


def _manifest(path: Path) -> dict[str, Any]:
    from engine.errors import BundleError
    from engine.snapshot import manifest

    form = bundle_form(path.name)[1]  # type: ignore[index]
    try:
        if form == "folder":
            return manifest.loads(layout.manifest_path(path).read_bytes())
        if form == "tar.zst":
            from .describe import archive_summary

            return archive_summary(path)[0]
    except BundleError:
        pass
    return {}


@contextmanager
def fetched(sources: list[str | Path], *, tmp_dir: str | Path | None = None, endpoint_url: str | None = None
            ) -> Iterator[list[str | Path]]:
    """Yield ``sources`` with every ``s3://`` bundle replaced by a local copy in a temporary folder.

    The copies are checked against S3's checksums (the importer verifies them in full) and the
    temporary folder is removed on exit, whatever happens. Local paths are passed through.
    """
    remote = [s for s in sources if is_remote(str(s))]
    if not remote:
        yield list(sources)
        return
    tmp = Path(tempfile.mkdtemp(prefix="procos-import-", dir=tmp_dir))
    try:
        client = s3_client(endpoint_url)
        local: list[str | Path] = []
        for n, source in enumerate(sources):
            if is_remote(str(source)):
                result = pull_bundle(str(source), tmp / str(n), client=client, verify=False)
                local.append(result["path"])
            else:
                local.append(source)
        yield local
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
