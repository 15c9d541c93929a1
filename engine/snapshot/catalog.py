"""``snapshot_catalog.jsonl``: one line per bundle written into a snapshots folder, and its check.

Every finished bundle (full or delta) appends one canonical JSON line to the catalog of the
folder it was published in: ``{"snapshot_id", "kind", "parent", "content_hash", "sequence",
"counts", "created_utc", "path"}`` (``path`` is the bundle's folder name inside the snapshots
folder). A line is appended with one ``write`` on an ``O_APPEND`` descriptor under an exclusive
``flock`` and fsynced, so concurrent exporters never interleave and a crash leaves at most one
torn last line, which the reader reports and the next append steps over.

:func:`check_catalog` resolves each bundle's lineage (full -> delta -> delta ...) and reports
broken chains, missing bundles and bundles whose checksums no longer hold.
"""

from __future__ import annotations

import fcntl
import json
import os
from pathlib import Path
from typing import Any

from engine.errors import BundleError

from . import layout, manifest

ENTRY_KEYS = ("snapshot_id", "kind", "parent", "content_hash", "sequence", "counts", "created_utc", "path")


def catalog_entry(bundle: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """The catalog line of a finished bundle, from its manifest."""
    kind = manifest.kind_of(doc)
    artifacts = sum(doc.get(key, 0) for key in layout.ARTIFACT_COUNTERS.values())
    counts: dict[str, int] = {"records": int(doc["record_count"]), "artifacts": int(artifacts)}
    if kind == "delta":
        counts.update(upserts=int(doc["changes"]["upserts"]), deletes=int(doc["changes"]["deletes"]),
                      removed_artifacts=len(doc.get("removed_artifacts", [])))
    return {"snapshot_id": doc["snapshot_id"], "kind": kind, "parent": doc.get("parent"),
            "content_hash": doc["content_hash"], "sequence": doc.get("sequence"), "counts": counts,
            "created_utc": doc["created_utc"], "path": bundle.name}


def append_line(path: Path, entry: dict[str, Any]) -> None:
    """Append one JSON line to ``path`` atomically (one O_APPEND write, then fsync)."""
    data = (json.dumps(entry, sort_keys=True, separators=(",", ":"), ensure_ascii=False) + "\n").encode()
    created = not path.exists()
    fd = _locked(path, os.O_RDWR | os.O_APPEND | os.O_CREAT)
    try:
        size = os.fstat(fd).st_size
        if size and os.pread(fd, 1, size - 1) != b"\n":
            data = b"\n" + data  # a torn line from a crash: start on a line of our own
        if os.write(fd, data) != len(data):
            raise BundleError(f"short write appending to {path}", hint="check free disk space")
        os.fsync(fd)
    finally:
        os.close(fd)  # releases the lock
    if created:
        from .staging import fsync_dir

        fsync_dir(path.parent)


def _locked(path: Path, flags: int) -> int:
    """Open ``path`` and take its exclusive lock, on the file that is at ``path`` once locked.

    :func:`drop_entries` replaces the catalog by a rename while holding the lock: a writer that
    waited for the lock on the old file opens the new one and locks again.
    """
    while True:
        fd = os.open(path, flags, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX)  # makes the torn-line check and the write one step among writers
            if os.fstat(fd).st_ino == os.stat(path).st_ino:
                return fd
        except FileNotFoundError:
            pass
        except BaseException:
            os.close(fd)
            raise
        os.close(fd)


def drop_entries(folder: str | os.PathLike[str], paths: set[str]) -> int:
    """Remove the lines of the bundles named ``paths`` from a snapshots folder's catalog (after a prune).

    Every other line is kept byte for byte. The new catalog is written aside, fsynced and renamed
    over the old one under the catalog's lock, so a crash leaves the old or the new catalog.
    Returns the number of lines removed.
    """
    path = layout.catalog_path(Path(folder))
    if not path.is_file():
        return 0
    fd = _locked(path, os.O_RDWR)
    try:
        with open(path, "rb") as fh:
            lines = fh.read().splitlines(keepends=True)
        kept = [line for line in lines if _entry_path(line) not in paths]
        if len(kept) == len(lines):
            return 0
        tmp = path.with_name(f".{layout.CATALOG}.tmp-{os.getpid()}")
        with open(tmp, "wb") as out:
            out.write(b"".join(kept))
            out.flush()
            os.fsync(out.fileno())
        os.replace(tmp, path)
        from .staging import fsync_dir

        fsync_dir(path.parent)
        return len(lines) - len(kept)
    finally:
        os.close(fd)


def _entry_path(line: bytes) -> str | None:
    try:
        entry = json.loads(line)
    except ValueError:
        return None
    return str(entry.get("path")) if isinstance(entry, dict) and "path" in entry else None


def record_bundle(bundle: Path, doc: dict[str, Any]) -> dict[str, Any]:
    """Append the line of the just-published ``bundle`` to its snapshots folder's catalog."""
    entry = catalog_entry(bundle, doc)
    try:
        append_line(layout.catalog_path(bundle.parent), entry)
    except OSError as exc:
        raise BundleError(f"the bundle {bundle} is complete, but its line could not be added to "
                          f"{layout.CATALOG} ({exc})", hint="free disk space; the catalog check will "
                          "list it as uncatalogued") from exc
    return entry


def read_catalog(folder: str | os.PathLike[str]) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
    """The catalog's entries in file order, and a problem for every line that cannot be read."""
    path = layout.catalog_path(Path(folder))
    entries: list[dict[str, Any]] = []
    problems: list[dict[str, Any]] = []
    if not path.is_file():
        return entries, problems
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            if not line.strip():
                continue
            try:
                entry = json.loads(line)
            except ValueError:
                entry = None
            why = entry_problem(entry)
            if why is not None:
                problems.append(_problem(None, None, "unreadable_line",
                                         f"{layout.CATALOG} line {number} is not a catalog entry ({why})"))
                continue
            entries.append(entry)
    return entries, problems


def entry_problem(entry: Any) -> str | None:
    """Why a parsed catalog line is not an entry this module can use, or None when it is one."""
    if not isinstance(entry, dict):
        return "not a JSON object"
    missing = [k for k in ENTRY_KEYS if k not in entry]
    if missing:
        return f"no {', '.join(missing)}"
    for key in ("snapshot_id", "content_hash", "created_utc", "path"):
        if not isinstance(entry[key], str) or not entry[key]:
            return f"{key} is not a text"
    if entry["kind"] not in manifest.KINDS:
        return f"kind {entry['kind']!r} is not full or delta"
    if not layout.is_bundle_name(entry["path"]):
        return f"path {entry['path'][:80]!r} is not a bundle folder's name"
    parent = entry["parent"]
    if parent is not None and not (isinstance(parent, dict) and isinstance(parent.get("snapshot_id"), str)
                                   and isinstance(parent.get("content_hash"), str)):
        return "parent is not {snapshot_id, content_hash}"
    if entry["kind"] == "delta" and parent is None:
        return "a delta without a parent"
    if entry["sequence"] is not None and (isinstance(entry["sequence"], bool) or not isinstance(entry["sequence"], int)):
        return "sequence is not an integer"
    if not isinstance(entry["counts"], dict):
        return "counts is not an object"
    return None


def _problem(bundle: str | None, path: str | None, code: str, problem: str) -> dict[str, Any]:
    return {"bundle": bundle, "path": path, "code": code, "problem": problem}


def _locate(folder: Path, entry: dict[str, Any]) -> Path | None:
    bundle = folder / str(entry["path"])
    if bundle.is_dir():
        return bundle
    archive = layout.archive_path(bundle)
    return archive if archive.is_file() else None


def _health(location: Path | None, entry: dict[str, Any], quick: bool) -> tuple[str, str] | None:
    """``(code, problem)`` of the bundle itself, or None when it is present and sound."""
    from .reader import manifest_of
    from .verify import verify_bundle

    if location is None:
        return "missing", f"{entry['path']} is gone (no folder and no {layout.ARCHIVE_SUFFIX} archive)"
    try:
        doc = manifest_of(location) if quick else None
        if not quick:
            report = verify_bundle(location)
            if not report.ok:
                first = report.errors[0]
                return "checksums", (f"verification found {len(report.errors)} problem(s), e.g. "
                                     f"{first.path}: {first.problem}")
            doc = report.manifest
    except BundleError as exc:
        return "unreadable", exc.message
    assert doc is not None
    if doc.get("snapshot_id") != entry["snapshot_id"] or doc.get("content_hash") != entry["content_hash"]:
        return "mismatch", (f"{entry['path']} holds snapshot {doc.get('snapshot_id')} "
                            f"({doc.get('content_hash')}), not the one the catalog lists")
    return None


def _chains(by_id: dict[str, dict[str, Any]], health: dict[str, tuple[str, str] | None]
            ) -> dict[str, tuple[list[str] | None, str | None]]:
    """``{id: (chain from its full bundle to it, None) or (None, why the chain is broken)}``."""
    memo: dict[str, tuple[list[str] | None, str | None]] = {}

    def resolve(sid: str, seen: tuple[str, ...]) -> tuple[list[str] | None, str | None]:
        if sid in memo:
            return memo[sid]
        entry = by_id[sid]
        parent = entry.get("parent") or {}
        pid = parent.get("snapshot_id")
        if entry["kind"] != "delta":
            result: tuple[list[str] | None, str | None] = ([sid], None)
        elif pid not in by_id:
            result = (None, f"its parent {pid} is not in the catalog")
        elif by_id[pid]["content_hash"] != parent.get("content_hash"):
            result = (None, f"its parent {pid} has content_hash {by_id[pid]['content_hash']}, the delta "
                            f"was built on {parent.get('content_hash')}")
        elif pid in seen:
            result = (None, f"its lineage loops through {pid}")
        elif health.get(pid) is not None:
            result = (None, f"its parent {pid} cannot be used ({health[pid][1]})")
        else:
            chain, why = resolve(pid, (*seen, sid))
            result = (chain + [sid], None) if chain is not None else (None, f"its parent {pid} is on a broken "
                                                                           f"chain: {why}")
        memo[sid] = result
        return result

    return {sid: resolve(sid, ()) for sid in by_id}


def check_catalog(folder: str | os.PathLike[str], *, quick: bool = False) -> dict[str, Any]:
    """Lineage and health of every catalogued bundle: ``{"folder", "bundles", "problems", "ok", "leftovers"}``.

    Each bundle is its catalog line plus ``location`` (folder or archive, None when gone),
    ``chain`` (snapshot ids from its full bundle to it, None when broken) and ``ok``. Problems
    (``{"bundle", "path", "code", "problem"}``) cover unreadable lines, duplicates, missing
    bundles, bundles that fail verification (skipped with ``quick``: then only the manifest is
    read), broken chains, and bundle folders of this folder that the catalog does not list.
    ``leftovers`` lists unfinished exports and packs (:func:`.staging.leftovers`: path, kind, age,
    writer, whether it is alive); they are not problems of the catalogued bundles, and the next
    export into the folder removes those whose writer is gone.
    """
    root = Path(folder)
    if not root.is_dir():
        raise BundleError(f"{root} is not a snapshots folder", hint="give the folder bundles were exported into")
    entries, problems = read_catalog(root)
    by_id: dict[str, dict[str, Any]] = {}
    for entry in entries:
        if entry["snapshot_id"] in by_id:
            problems.append(_problem(entry["snapshot_id"], entry["path"], "duplicate",
                                     "the catalog lists this snapshot id more than once (the first line counts)"))
            continue
        by_id[entry["snapshot_id"]] = entry
    locations = {sid: _locate(root, e) for sid, e in by_id.items()}
    health = {sid: _health(locations[sid], e, quick) for sid, e in by_id.items()}
    chains = _chains(by_id, health)
    bundles = []
    for sid, entry in by_id.items():
        chain, why = chains[sid]
        if health[sid] is not None:
            problems.append(_problem(sid, entry["path"], *health[sid]))
        if why is not None:
            problems.append(_problem(sid, entry["path"], "broken_chain", f"broken chain: {why}"))
        location = locations[sid]
        bundles.append({**entry, "location": str(location) if location else None, "chain": chain,
                        "ok": health[sid] is None and why is None})
    listed = {str(e["path"]) for e in by_id.values()}
    for child in sorted(root.iterdir()):
        name = layout.archive_stem(child) if layout.is_archive(child) else child.name
        if layout.is_bundle_name(name) and name not in listed:
            problems.append(_problem(None, child.name, "uncatalogued", f"{child.name} is not in {layout.CATALOG}"))
    from .staging import leftovers

    return {"folder": str(root), "bundles": bundles, "problems": problems, "ok": not problems,
            "leftovers": leftovers(root)}
