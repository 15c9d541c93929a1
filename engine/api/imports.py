"""Imports of the front door: a bundle, a delta chain or an ``s3://`` bundle into a store, and the
import process's steps (load the records, register the artifacts, rebuild and tune the search).

Each function is a boundary: an OSError from the filesystem leaves it as a typed
:class:`~engine.errors.PathError` (or :class:`~engine.errors.DiskFull`) naming the path, with a hint.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from engine.errors import InvalidInput, os_errors

from .crypto import bundle_access
from .stores import opened


def _on_conflict(rule: str) -> str:
    from engine.snapshot.importer import CONFLICT_RULES

    if rule not in CONFLICT_RULES:
        raise InvalidInput(f"unknown conflict rule {rule!r}", hint=f"use one of {', '.join(CONFLICT_RULES)}")
    return rule


def _jobs(jobs: int | None) -> int | None:
    if jobs is not None and (isinstance(jobs, bool) or not isinstance(jobs, int) or jobs < 1):
        raise InvalidInput(f"jobs must be a whole number of at least 1, got {jobs!r}",
                           hint="leave it out for the defaults, or give 1, 2, 4, ...")
    return jobs


def _mode(mode: str) -> str:
    if mode not in ("append", "replace"):
        raise InvalidInput(f"unknown import mode {mode!r}", hint="use append or replace")
    return mode


@os_errors("import {path}", "path")
def import_snapshot(path: str | Path | list[str | Path], uri: str | None, *, mode: str = "append",
                    on_conflict: str = "version", dry_run: bool = False, require_signature: bool = False,
                    trusted_keys: list[str] | None = None, identity: str | None = None,
                    passphrase_file: str | None = None, jobs: int | None = None) -> dict[str, Any]:
    """Verify the bundle, then load records and artifacts into ``uri`` (created with the bundle's settings).

    Returns ``{"imported","skipped","target","snapshot_id","content_hash","search_tuning"}`` (the plan
    with ``dry_run``); ``search_tuning`` is ``{"ef_search","recall",...}`` of the search tuning that
    follows every import into an HNSW store (see :func:`engine.api.tune_search`). A list of bundles is
    a chain (full, then deltas) and goes to :func:`import_chain`.
    ``require_signature`` (always on in prod) refuses, before anything is written, a bundle without a
    good signature by a trusted key (``trusted_keys`` add to ``PROCOS_TRUSTED_KEYS``): SignatureRequired.
    An encrypted ``.age`` bundle is decrypted with ``identity`` / ``passphrase_file`` (or ``PROCOS_AGE_IDENTITY``).
    ``jobs`` shards are verified at a time, and into a new or empty pgvector store (or a replace) the
    rows load as that many ranges of shards side by side, one connection each (at most one per shard,
    and 16), in one commit. Into an HNSW pgvector store the rows are committed first
    (queries answer, exactly, from then on), then the index is built concurrently, then the search is
    tuned: ``search_tuning`` is measured on the finished index.
    """
    trust = {"require_signature": require_signature, "trusted_keys": trusted_keys, "identity": identity,
             "passphrase_file": passphrase_file}
    if isinstance(path, list | tuple):
        return import_chain(list(path), uri, mode=mode, on_conflict=on_conflict, dry_run=dry_run, **trust)
    if _is_remote(path):  # s3://...: pulled into a temporary folder, imported from there, then removed
        from engine.transport import fetched

        with fetched([path]) as [local]:
            return import_snapshot(local, uri, mode=mode, on_conflict=on_conflict, dry_run=dry_run, jobs=jobs, **trust)
    _mode(mode)
    _on_conflict(on_conflict)
    _jobs(jobs)
    access = bundle_access(**trust)
    if dry_run:
        return _plan(path, uri, mode, on_conflict, access)
    from engine.snapshot.importer import import_into

    result = import_into(_target(uri), path, mode, on_conflict, access=access, jobs=jobs)
    return {**result, "search_tuning": _tuned(_target(uri))}


def _plan(path: str | Path | list[str | Path], uri: str | None, mode: str, on_conflict: str,
          access: Any) -> dict[str, Any]:
    """The dry run: verify, and plan against the target when it exists (never creating it)."""
    from engine import snapshot
    from engine.snapshot.import_target import exists

    chain = isinstance(path, list | tuple)
    if not exists(_target(uri)):
        if chain:
            return snapshot.plan_chain(None, list(path), mode, on_conflict, target=_target(uri), access=access)
        return snapshot.plan_import(None, path, mode, on_conflict, target=_target(uri), access=access)
    with opened(_target(uri)) as repo:
        if chain:
            return snapshot.plan_chain(repo, list(path), mode, on_conflict, access=access)
        return snapshot.plan_import(repo, path, mode, on_conflict, access=access)


@os_errors("import the chain")
def import_chain(paths: list[str | Path], uri: str | None, *, mode: str = "append", on_conflict: str = "version",
                 dry_run: bool = False, require_signature: bool = False, trusted_keys: list[str] | None = None,
                 identity: str | None = None, passphrase_file: str | None = None) -> dict[str, Any]:
    """Verify a chain (full bundle, then its deltas oldest first) and its lineage, then apply it to ``uri``.

    Returns ``{"imported","skipped","deleted","artifacts","target","snapshot_id","content_hash","chain",
    "search_tuning"}`` (the plan with ``dry_run``). A gap, fork or wrong order raises LineageError with
    nothing written. Where a signature is required (``require_signature``, prod) every bundle of the
    chain needs a good one.
    """
    _mode(mode)
    _on_conflict(on_conflict)
    if not paths:
        raise InvalidInput("no bundles given", hint="give the full bundle, then its deltas, then the target URI")
    if any(_is_remote(p) for p in paths):  # remote bundles of the chain are pulled to a temporary folder first
        from engine.transport import fetched

        with fetched(list(paths)) as local:
            return import_chain(local, uri, mode=mode, on_conflict=on_conflict, dry_run=dry_run,
                                require_signature=require_signature, trusted_keys=trusted_keys, identity=identity,
                                passphrase_file=passphrase_file)
    access = bundle_access(require_signature=require_signature, trusted_keys=trusted_keys, identity=identity,
                           passphrase_file=passphrase_file)
    if dry_run:
        return _plan(list(paths), uri, mode, on_conflict, access)
    from engine.snapshot.delta_import import import_chain_into

    result = import_chain_into(_target(uri), paths, mode, on_conflict, access=access)
    return {**result, "search_tuning": _tuned(_target(uri))}


@os_errors("load the records of {path}", "path")
def load_vectors(path: str | Path, uri: str | None, mode: str = "append", on_conflict: str = "version", *,
                 require_signature: bool = False, trusted_keys: list[str] | None = None,
                 expected_content_hash: str | None = None, identity: str | None = None,
                 jobs: int | None = None) -> dict[str, Any]:
    """Import step: verify the bundle (and its signature, required in prod) again and load its records only.

    An older bundle is migrated first; an encrypted one is opened with ``identity`` (an age identity
    file; default ``PROCOS_AGE_IDENTITY``). ``jobs`` as for :func:`import_snapshot`.
    ``expected_content_hash`` is the approved bundle's: a bundle changed or replaced since raises
    BundleChanged before anything is written (or created).
    """
    from engine.snapshot.importer import import_into

    _mode(mode)
    _on_conflict(on_conflict)
    _jobs(jobs)
    access = bundle_access(require_signature=require_signature, trusted_keys=trusted_keys, identity=identity)
    return import_into(_target(uri), path, mode, on_conflict, artifacts=False, access=access,
                       expected_content_hash=expected_content_hash, jobs=jobs)


@os_errors("load the artifacts of {path}", "path")
def register_artifacts(path: str | Path, uri: str | None, mode: str = "append", *,
                       require_signature: bool = False, trusted_keys: list[str] | None = None,
                       expected_content_hash: str | None = None, identity: str | None = None) -> dict[str, Any]:
    """Import step: write the bundle's artifacts into the target's artifact store (verified, signature-checked,
    approved content only; an encrypted bundle opened with ``identity``, default ``PROCOS_AGE_IDENTITY``)."""
    from engine import snapshot

    _mode(mode)
    access = bundle_access(require_signature=require_signature, trusted_keys=trusted_keys, identity=identity)
    with opened(uri) as repo:
        return snapshot.import_artifacts(repo, path, mode, access=access, expected_content_hash=expected_content_hash)


@os_errors("rebuild the search indexes")
def rebuild_search(uri: str | None) -> dict[str, Any]:
    """Import step: fold logs and (re)build the target's search indexes, then tune its search effort.

    Returns the store's stats, ``"search_tuning"`` (see :func:`_tuned`) and ``"seconds"``.
    """
    started = time.perf_counter()
    with opened(uri) as repo:
        repo.compact()
    tuning = _tuned(uri)
    with opened(uri) as repo:
        stats = repo.stats()
    return {**stats, "search_tuning": tuning, "seconds": round(time.perf_counter() - started, 3)}


def _tuned(uri: str | None) -> dict[str, Any]:
    """After a restore: raise an HNSW target's ef_search until it serves recall@10 >= 0.95 (stored in the store).

    ``{"ef_search", "recall", "floor", "reached", "tuned", "tried", ...}``; flat and empty targets
    are left alone (``"tuned": false``, ``"recall": null``).
    """
    from .validation import tune_search

    return tune_search(uri)


def _is_remote(path: object) -> bool:
    return isinstance(path, str) and path.startswith("s3://")


def _target(uri: str | None) -> str:
    from engine.repository import parse_uri

    return uri if uri is not None else parse_uri(None).text
