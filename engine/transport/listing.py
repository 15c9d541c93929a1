"""What a location holds: its complete bundles, and apart from them what is incomplete.

Complete: a bundle folder with ``manifest.json`` (in S3: the key ``PREFIX/<name>/manifest.json``,
which a push uploads last), a ``.tar.zst`` or an ``.age`` file (in S3: a completed object). A bundle
kept in several forms (folder and ``.tar.zst``) is one entry; ``bytes`` counts every form.

Incomplete (``--incomplete``): a bundle folder without ``manifest.json`` (a push or prune that did
not finish), S3 multipart uploads that were never completed, and hidden ``.pull-partial`` folders of
pulls that did not finish. Export staging folders are not this module's business and are not listed.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from engine.errors import BundleError, TransportError
from engine.snapshot import layout, manifest

from . import describe
from .client import retrying
from .location import SIGNATURE, S3Location, bundle_form, pulled_name


@dataclass
class Holding:
    """Everything a location holds under one bundle name."""

    name: str
    forms: dict[str, str] = field(default_factory=dict)  # form -> local path or object key
    files: dict[str, int] = field(default_factory=dict)  # folder form: bundle-relative path -> size
    sizes: dict[str, int] = field(default_factory=dict)  # form -> bytes
    uploads: list[dict[str, str]] = field(default_factory=list)  # unfinished multipart uploads
    partial: list[str] = field(default_factory=list)  # local hidden pull folders

    @property
    def complete(self) -> bool:
        return ("folder" in self.forms and layout.MANIFEST in self.files) or any(
            f in self.forms for f in ("tar.zst", "age"))


def _incomplete(h: Holding, location: str, reason: str) -> dict[str, Any]:
    return {"name": h.name, "location": location, "objects": len(h.files), "bytes": sum(h.files.values()),
            "uploads": len(h.uploads), "partial": list(h.partial), "reason": reason}


def _newest_first(entries: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(entries, key=lambda e: (e["created_utc"], e["name"]), reverse=True)


# --- local folders ---------------------------------------------------------------------------------

def local_holdings(folder: Path) -> dict[str, Holding]:
    if not folder.is_dir():
        raise TransportError(f"{folder} is not a folder", hint="give a snapshots folder or s3://BUCKET/PREFIX")
    found: dict[str, Holding] = {}
    for child in sorted(folder.iterdir()):
        partial = pulled_name(child.name)
        if partial is not None:
            name = bundle_form(partial)[0]  # type: ignore[index]
            found.setdefault(name, Holding(name)).partial.append(str(child))
            continue
        form = bundle_form(child.name)
        if form is None or child.is_symlink() or (form[1] == "folder") != child.is_dir():
            continue
        h = found.setdefault(form[0], Holding(form[0]))
        h.forms[form[1]] = str(child)
        if form[1] == "folder":
            files, _ = layout.relative_files(child)
            h.files = {rel: layout.member(child, rel).stat().st_size for rel in files}
            h.sizes["folder"] = sum(h.files.values())
        else:
            h.sizes[form[1]] = child.stat().st_size
    return found


def list_local(folder: Path) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(complete bundles, incomplete things)`` of a local snapshots folder."""
    complete, incomplete = [], []
    for h in local_holdings(folder).values():
        if "folder" in h.forms and layout.MANIFEST not in h.files:
            incomplete.append(_incomplete(h, h.forms["folder"], "bundle folder without manifest.json"))
        if h.partial:
            incomplete.append(_incomplete(h, h.partial[0], "a pull that did not finish"))
        if not h.complete:
            continue
        try:
            doc, signed = _local_doc(h)
        except BundleError as exc:
            incomplete.append(_incomplete(h, next(iter(h.forms.values())), f"unreadable: {exc.message}"))
            continue
        where = h.forms.get("folder") if layout.MANIFEST in h.files else h.forms.get("tar.zst") or h.forms["age"]
        complete.append(describe.entry(h.name, doc, size=sum(h.sizes.values()), signed=signed,
                                       encrypted="age" in h.forms, location=str(where)))
    return _newest_first(complete), incomplete


def _local_doc(h: Holding) -> tuple[dict[str, Any] | None, bool]:
    if "folder" in h.forms and layout.MANIFEST in h.files:
        root = Path(h.forms["folder"])
        return manifest.loads(layout.manifest_path(root).read_bytes()), SIGNATURE in h.files
    if "tar.zst" in h.forms:
        return describe.archive_summary(Path(h.forms["tar.zst"]))
    return None, False


# --- S3 prefixes ---------------------------------------------------------------------------------------

def s3_holdings(client: Any, loc: S3Location) -> dict[str, Holding]:
    found: dict[str, Holding] = {}

    def objects() -> None:
        pages = client.get_paginator("list_objects_v2").paginate(Bucket=loc.bucket, Prefix=loc.list_prefix())
        for page in pages:
            for obj in page.get("Contents", []):
                _place(found, loc, obj["Key"], int(obj["Size"]))

    def uploads() -> None:
        pages = client.get_paginator("list_multipart_uploads").paginate(Bucket=loc.bucket, Prefix=loc.list_prefix())
        for page in pages:
            for upload in page.get("Uploads", []):
                name = _name_of(loc.relative(upload["Key"]))
                if name is not None:
                    found.setdefault(name, Holding(name)).uploads.append(
                        {"key": upload["Key"], "upload_id": upload["UploadId"]})

    retrying(objects, what=f"listing {loc.url}")
    retrying(uploads, what=f"listing the unfinished uploads of {loc.url}")
    return found


def _name_of(rel: str) -> str | None:
    first, sep, _ = rel.partition("/")
    form = bundle_form(first)
    if form is None or (form[1] == "folder") != bool(sep):
        return None
    return form[0]


def _place(found: dict[str, Holding], loc: S3Location, key: str, size: int) -> None:
    rel = loc.relative(key)
    name = _name_of(rel)
    if name is None or key.endswith("/"):  # not a bundle, or a "folder" marker object
        return
    h = found.setdefault(name, Holding(name))
    first, sep, inner = rel.partition("/")
    if sep:
        h.forms["folder"] = loc.key(first)
        h.files[inner] = size
        h.sizes["folder"] = h.sizes.get("folder", 0) + size
    else:
        form = bundle_form(first)[1]  # type: ignore[index]
        h.forms[form] = key
        h.sizes[form] = size


def list_s3(client: Any, loc: S3Location) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """``(complete bundles, incomplete things)`` of an S3 prefix."""
    complete, incomplete = [], []
    for h in s3_holdings(client, loc).values():
        if "folder" in h.forms and layout.MANIFEST not in h.files:
            incomplete.append(_incomplete(h, f"s3://{loc.bucket}/{h.forms['folder']}/",
                                          "bundle folder without manifest.json (its push did not finish)"))
        elif h.uploads:
            incomplete.append(_incomplete(h, loc.child(h.name), "unfinished multipart uploads"))
        if not h.complete:
            continue
        doc, signed = _s3_doc(client, loc, h)
        key = h.forms.get("folder") if layout.MANIFEST in h.files else h.forms.get("tar.zst") or h.forms["age"]
        complete.append(describe.entry(h.name, doc, size=sum(h.sizes.values()), signed=signed,
                                       encrypted="age" in h.forms, location=f"s3://{loc.bucket}/{key}"))
    return _newest_first(complete), incomplete


def _s3_doc(client: Any, loc: S3Location, h: Holding) -> tuple[dict[str, Any] | None, bool]:
    if "folder" in h.forms and layout.MANIFEST in h.files:
        key = loc.bundle_key(h.name, layout.MANIFEST)
        if h.files[layout.MANIFEST] > manifest.MAX_MANIFEST_BYTES:
            return None, SIGNATURE in h.files
        data = retrying(lambda: client.get_object(Bucket=loc.bucket, Key=key)["Body"].read(),
                        what=f"reading s3://{loc.bucket}/{key}")
        try:
            return manifest.loads(data), SIGNATURE in h.files
        except BundleError:
            return None, SIGNATURE in h.files
    key = h.forms.get("tar.zst") or h.forms["age"]
    head = retrying(lambda: client.head_object(Bucket=loc.bucket, Key=key), what=f"reading s3://{loc.bucket}/{key}")
    return describe.from_metadata(head.get("Metadata") or {})


def list_location(location: str | Path, *, incomplete: bool = False, endpoint_url: str | None = None,
                  client: Any = None) -> list[dict[str, Any]]:
    """The complete bundles of a folder or ``s3://BUCKET/PREFIX``, newest first (or, with ``incomplete``,
    what is incomplete there)."""
    from .client import s3_client
    from .location import parse_location

    loc = parse_location(location)
    if isinstance(loc, S3Location):
        complete, unfinished = list_s3(client or s3_client(endpoint_url), loc)
    else:
        complete, unfinished = list_local(loc)
    return unfinished if incomplete else complete
