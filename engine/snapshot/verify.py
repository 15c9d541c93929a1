"""Verify a bundle end to end and report every problem found, never just the first.

Phases: manifest (parse, schema_version, JSON Schema) -> files (every checksum, nothing missing,
nothing unlisted) -> manifest against files (artifact counts, content hash) -> data (Parquet
schema, row count, dimensions, each row's vector_hash, strictly ascending unique ids, canonical
metadata; for schema_version 2 every shard against the manifest, see :mod:`.shard_checks`) ->
FAISS index (readable, ntotal, d) -> lineage (``artifacts_state``; a delta's ``changes.jsonl``
against its rows, see :mod:`.delta_checks`) -> signature (``checksums.sha256.asc``, when there is
one, checked by gpg against the trusted keys, see :mod:`.signature`; a bad one is a finding).
Paths are relative to the bundle root.

Schema_version 1 bundles (one ``embeddings.parquet``) are verified as such. Files are hashed and
shards checked in a small thread pool (``max_workers``, default ``min(4, cpu count)``).
"""

from __future__ import annotations

import contextvars
import os
from concurrent.futures import Executor, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING, Any

from engine.errors import ArchiveDamaged, BadSignature, BundleError, BundleInvalid, UnsupportedSchemaVersion

from . import checksums, layout, manifest
from .data_checks import check_embeddings
from .findings import Finding, VerifyReport, failed

__all__ = ["Finding", "VerifyReport", "default_workers", "failed", "verified_manifest", "verify_bundle", "verify_dir"]

if TYPE_CHECKING:
    from engine.crypto import AgeKeys

    from .access import BundleAccess

def default_workers() -> int:
    return max(1, min(4, os.cpu_count() or 1))


def verify_bundle(path: str | os.PathLike[str], *, trusted_keys: list[str] | tuple[str, ...] | None = None,
                  keys: AgeKeys | None = None, tmp_dir: str | None = None,
                  max_workers: int | None = None) -> VerifyReport:
    """Verify a bundle folder, ``.tar.zst`` or encrypted ``.age`` (unpacked safely into a temporary folder first).

    ``trusted_keys`` are fingerprints trusted in addition to the configured ``PROCOS_TRUSTED_KEYS``;
    ``keys`` decrypt an ``.age`` bundle (default: ``PROCOS_AGE_IDENTITY``). A damaged archive
    (truncated, bytes appended, a second zstd frame, data after the tar's end) is one finding on the
    archive's file name; a hostile one raises UnsafeArchive.
    """
    from .reader import open_bundle

    try:
        with open_bundle(path, tmp_dir=tmp_dir, keys=keys) as root:
            report = verify_dir(root, max_workers=max_workers, trusted_keys=trusted_keys)
    except ArchiveDamaged as exc:  # a changed archive is a verification failure like any other change
        report = VerifyReport(str(path))
        report.add(exc.path or Path(path).name, exc.problem, "archive", exc.hint)
    report.path = str(path)
    return report


def verified_manifest(root: Path, name: object, *, consequence: str, purpose: str,
                      access: BundleAccess | None = None, max_workers: int | None = None,
                      rows: bool = True) -> dict[str, Any]:
    """The manifest of the unpacked bundle at ``root`` once every check passes; otherwise raise.

    ``consequence`` says what did not happen because of it ("nothing was imported") and ``purpose``
    what the bundle was needed for ("import this bundle"); both go into the message people read.
    With ``access`` the signature is checked against its trusted keys, and a bundle without a good
    one raises SignatureRequired when ``access`` requires it (see :class:`~.access.BundleAccess`).
    """
    report = verify_dir(root, trusted_keys=access.trusted_keys if access is not None else None,
                        max_workers=max_workers, rows=rows)
    if report.unsupported_version:
        raise UnsupportedSchemaVersion(f"{name}: {layout.MANIFEST}: {report.unsupported_version}",
                                       hint=f"upgrade procos-knowledge to {purpose}")
    if not report.ok:
        error = BadSignature if any(f.code == "signature" for f in report.errors) else BundleInvalid
        raise failed(name, [f.to_json() for f in report.errors], consequence, error)
    requirement = access.requirement() if access is not None else None
    if requirement:
        from .access import require_good

        require_good(report.signature, name, requirement, consequence)
    return report.manifest


def verify_dir(root: Path, *, max_workers: int | None = None,
               trusted_keys: list[str] | tuple[str, ...] | None = None, signature: bool = True,
               rows: bool = True) -> VerifyReport:
    """Verify the bundle folder ``root``; ``signature=False`` leaves a signature unchecked (when re-signing).

    ``rows=False`` leaves out the row-level checks of schema_version 2 shards (vector hashes, id order,
    metadata, first/last ids): only for an import that checks them in the pass that loads the rows,
    inside the transaction it rolls back when they fail (:mod:`.verified_load`). Every byte is still
    checked against ``checksums.sha256`` first.
    """
    report = VerifyReport(str(root))
    if not root.is_dir():
        report.add(".", f"{root} is not a folder", "missing")
        return report
    doc = _check_manifest(root, report)
    if report.unsupported_version:
        return report
    with ThreadPoolExecutor(max_workers or default_workers(), thread_name_prefix="verify") as pool:
        listed, actual = _check_files(root, report, pool, _version(report.manifest))
        if doc is not None:
            _check_counts(doc, listed, actual, report)
        _check_data(root, report.manifest, listed, report, pool, rows)  # rows are checked even when the manifest is unusable
    if doc is not None:
        from .delta_checks import check_lineage

        check_lineage(root, doc, listed, actual, report)  # artifacts_state; changes.jsonl of deltas
    if signature:
        _check_signature(root, report, trusted_keys)
    return report


def _check_signature(root: Path, report: VerifyReport, trusted_keys: list[str] | tuple[str, ...] | None) -> None:
    from .signature import check_signature, trusted_fingerprints

    if not layout.signature_path(root).exists():
        return  # unsigned: "missing", with neither gpg nor the trust settings involved
    report.signature = check_signature(root, trusted_fingerprints(trusted_keys))
    if report.signature["status"] == "bad":
        report.add(layout.SIGNATURE, "the signature does not verify against checksums.sha256 (a file changed after "
                   "signing, or the signature is damaged or not a detached signature)", "signature",
                   "get an intact copy of the bundle, or sign it again (procos snapshot sign) if its content is right")


def _check_manifest(root: Path, report: VerifyReport) -> dict[str, Any] | None:
    path = layout.manifest_path(root)
    if not path.is_file():
        report.add(layout.MANIFEST, "missing: a bundle without manifest.json is incomplete", "missing",
                   "the export did not finish; export again")
        return None
    try:
        doc = manifest.loads(path.read_bytes())
    except BundleError as exc:
        report.add(layout.MANIFEST, exc.message, "unreadable")
        return None
    report.manifest = doc
    problem = manifest.version_problem(doc)
    if problem:
        report.unsupported_version = problem
        report.add(layout.MANIFEST, f"UnsupportedSchemaVersion: {problem}", "unsupported_version",
                   "upgrade procos-knowledge")
        return None
    for message in manifest.schema_problems(doc):
        report.add(layout.MANIFEST, f"does not match the manifest schema: {message}", "schema")
    return doc


def _version(doc: dict[str, Any]) -> int | None:
    """The manifest's schema_version when it is a readable one, else None (then both layouts are allowed)."""
    version = doc.get("schema_version")
    return version if isinstance(version, int) and not manifest.version_problem(doc) else None


def _allowed(rel: str, version: int | None) -> bool:
    if rel in (layout.MANIFEST, layout.FAISS_INDEX, layout.CHANGES):
        return True
    if rel == layout.EMBEDDINGS:
        return version in (1, None)
    if layout.shard_index(rel) is not None:
        return version != 1
    from engine.errors import StoreError
    from engine.repository.artifacts import check_artifact_path

    try:
        check_artifact_path(rel)
    except StoreError:
        return False
    return True


def _check_files(root: Path, report: VerifyReport, pool: Executor, version: int | None
                 ) -> tuple[dict[str, str], dict[str, str]]:
    """Check every checksum line against the files; return ``(listed hashes, actual hashes)``."""
    listed: dict[str, str] = {}
    cpath = layout.checksums_path(root)
    if not cpath.is_file():
        report.add(layout.CHECKSUMS, "missing", "missing", "the export did not finish; export again")
    else:
        try:
            text = cpath.read_text(encoding="utf-8")
        except UnicodeDecodeError as exc:
            report.add(layout.CHECKSUMS, f"is not UTF-8 text ({exc})", "unreadable")
            text = ""
        listed, problems = checksums.parse_lines(text)
        for _, problem in problems:
            report.add(layout.CHECKSUMS, problem, "checksums")
    files, odd = layout.relative_files(root)
    for rel in odd:
        report.add(rel, "is a symbolic link or special file; bundles hold only regular files", "unlisted")
    on_disk = set(files)
    actual: dict[str, str] = {}
    to_hash: list[str] = []
    for rel in sorted(listed):
        try:
            layout.check_relative(rel)
        except BundleError:
            report.add(layout.CHECKSUMS, f"lists an unsafe path {rel!r}", "checksums")
            continue
        if rel == layout.CHECKSUMS:
            report.add(rel, "lists itself; checksums.sha256 must exclude itself", "checksums")
            continue
        if rel == layout.SIGNATURE:
            report.add(rel, "is listed in checksums.sha256; the signature of checksums.sha256 stays outside it",
                       "checksums")
            continue
        if not _allowed(rel, version):
            report.add(rel, "is listed in checksums.sha256 but is not a file a bundle may hold (unknown name or "
                       "artifact kind)", "unknown_file")
        if rel not in on_disk:
            report.add(rel, "listed in checksums.sha256 but missing", "missing")
            continue
        to_hash.append(rel)
    from .shard_jobs import Tally

    sizes = {rel: layout.member(root, rel).stat().st_size for rel in to_hash}
    tally = Tally("checksums", sum(sizes.values()), "bytes")
    contexts = {rel: contextvars.copy_context() for rel in to_hash}

    def digest_of(rel: str) -> str:
        digest = contexts[rel].run(checksums.sha256_file, layout.member(root, rel), tally.add)[0]
        return digest

    digests = pool.map(digest_of, to_hash)
    for rel, digest in zip(to_hash, digests, strict=True):
        actual[rel] = digest
        if digest != listed[rel]:
            report.add(rel, f"sha256 mismatch: checksums.sha256 says {listed[rel]}, the file has {digest}",
                       "checksum", "the file was changed or damaged after export; export again")
    for rel in sorted(on_disk - set(listed) - {layout.CHECKSUMS, layout.SIGNATURE}):
        report.add(rel, "not listed in checksums.sha256", "unlisted",
                   "remove the file, or export again if it belongs to the bundle")
    required = [layout.MANIFEST] + ([layout.EMBEDDINGS] if version == 1 else [])
    if version == 2:
        required += manifest.embedding_files(report.manifest)
    for rel in required:
        if rel not in listed and cpath.is_file():
            report.add(rel, "not listed in checksums.sha256", "missing")
    report.stats["files"] = len(actual)
    return listed, actual


def _check_counts(doc: dict[str, Any], listed: dict[str, str], actual: dict[str, str],
                  report: VerifyReport) -> None:
    held = manifest.artifact_counts([p for p in listed if p in actual])
    for key, count in held.items():
        if doc.get(key) != count:
            kind = next(k for k, v in layout.ARTIFACT_COUNTERS.items() if v == key)
            report.add(layout.MANIFEST, f"{key} is {doc.get(key)!r} but the bundle holds {count} {kind} "
                       "file(s)", "count")
    recomputed = checksums.content_hash({p: actual.get(p, h) for p, h in listed.items()})
    if doc.get("content_hash") != recomputed:
        report.add(layout.MANIFEST, f"content_hash {doc.get('content_hash')!r} does not match the bundle's "
                   f"files (recomputed {recomputed})", "content_hash")
    backend = doc.get("vector_backend")
    has_index = layout.FAISS_INDEX in listed
    if backend == "faiss" and not has_index and manifest.kind_of(doc) != "delta":
        report.add(layout.FAISS_INDEX, "missing: bundles of FAISS stores carry index.faiss", "missing")
    if backend != "faiss" and has_index:
        report.add(layout.FAISS_INDEX, f"only bundles of FAISS stores carry index.faiss, this one is "
                   f"from {backend!r}", "unknown_file")


def _check_data(root: Path, doc: dict[str, Any], listed: dict[str, str], report: VerifyReport,
                pool: Executor, rows: bool = True) -> None:
    record_count = doc.get("record_count")
    dims = doc.get("dimensions")
    emb = layout.embeddings_path(root)
    if _version(doc) == 2 or (_version(doc) is None and not emb.is_file()
                              and layout.member(root, layout.SHARD_DIR).is_dir()):
        from .shard_checks import check_shards

        for path, problem in check_shards(root, doc, listed, pool, report.stats, rows=rows or _version(doc) != 2):
            report.add(path, problem, "data")
    elif emb.is_file() and not emb.is_symlink():
        for problem in check_embeddings(emb, record_count, dims, report.stats):
            report.add(layout.EMBEDDINGS, problem, "data")
    elif layout.EMBEDDINGS in listed:
        pass  # already reported missing
    else:
        report.add(layout.EMBEDDINGS, "missing", "missing")
    index = layout.faiss_index_path(root)
    if index.is_file() and not index.is_symlink() and isinstance(record_count, int) and isinstance(dims, int):
        from .faiss_file import index_problems

        for problem in index_problems(index, record_count, dims, doc.get("metric"), doc.get("faiss_index_type")):
            report.add(layout.FAISS_INDEX, problem, "data")
