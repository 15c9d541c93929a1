"""Import a chain of bundles (one full, then ordered deltas): verify all, check lineage, then apply.

Plan, then apply: every bundle is verified and the whole lineage is checked (each delta's parent is
the bundle before it, its ``base_sequence`` is that bundle's ``sequence``, settings agree, and
replaying the artifact changes gives the last bundle's ``artifacts_state``) before anything is
written. A gap, a fork, a wrong order or a full bundle after the first raises
:class:`~engine.errors.LineageError` and nothing is written.

Applying folds the chain into its final state in one streaming merge by id (for each id the last
bundle that mentions it wins: its record, or its delete), so the records go to the store in one
write call: ``replace`` is one atomic ``replace_all`` (a crash leaves the target as it was);
``append`` bulk-loads the final records with the conflict rule, then deletes the ids the chain
deleted. Artifacts follow the same way (``replace_all``, or writes and deletes).
"""

from __future__ import annotations

import heapq
import os
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BundleInvalid, InvalidInput, LineageError, SettingsMismatch
from engine.records import RecordBatch, make_batch

from . import layout, manifest, reader
from .access import BundleAccess
from .delta_checks import iter_changes
from .importer import IMPORT_BATCH, MODES, _rule, _settings_problem, open_current

if TYPE_CHECKING:
    from engine.repository import VectorRepository

Chain = list[tuple[str, Path, dict[str, Any]]]  # (name given, unpacked root, verified manifest)


@contextmanager
def open_chain(paths: Sequence[str | os.PathLike[str]], access: BundleAccess | None = None) -> Iterator[Chain]:
    """Open (unpacking archives) and verify every bundle of ``paths``; check the lineage; yield them.

    Every bundle's signature is checked per ``access``: where a signature is required, each bundle
    of the chain needs a good one.

    Bundles of an older schema_version are migrated into temporary folders first (the lineage
    accepts a parent's pre-migration content hash, see :func:`check_chain`).
    """
    if not paths:
        raise InvalidInput("a chain needs at least one bundle")
    with ExitStack() as stack:
        chain: Chain = []
        for path in paths:
            try:
                root, doc, _ = stack.enter_context(open_current(path, access=access))
            except BundleInvalid as exc:  # name the bundle of the chain (keeping the type: SignatureRequired...)
                if exc.message.startswith(str(path)):
                    raise
                raise type(exc)(f"{path}: {exc.message}", exc.findings, hint=exc.hint) from exc
            chain.append((str(path), root, doc))
        check_chain([(name, doc) for name, _, doc in chain])
        yield chain


def _usable(name: str, doc: Any) -> None:
    """Raise LineageError unless ``doc`` has the lineage fields a chain check reads, with their types."""
    def bad(what: str) -> LineageError:
        return LineageError(f"{name}'s manifest cannot be placed in a chain: {what}",
                            hint="run procos snapshot verify on it; export the bundle again")
    if not isinstance(doc, dict):
        raise bad("it is not a JSON object")
    for key in ("snapshot_id", "content_hash", "metric", "vector_backend"):
        if not isinstance(doc.get(key), str):
            raise bad(f"{key} is not a text")
    if manifest.kind_of(doc) not in manifest.KINDS:
        raise bad(f"kind {doc.get('kind')!r} is not full or delta")
    dims = doc.get("dimensions")
    if isinstance(dims, bool) or not isinstance(dims, int):
        raise bad("dimensions is not an integer")
    if manifest.kind_of(doc) == "delta":
        parent = doc.get("parent")
        if not (isinstance(parent, dict) and isinstance(parent.get("snapshot_id"), str)
                and isinstance(parent.get("content_hash"), str)):
            raise bad("a delta's parent is not {snapshot_id, content_hash}")
        if isinstance(doc.get("base_sequence"), bool) or not isinstance(doc.get("base_sequence"), int):
            raise bad("a delta's base_sequence is not an integer")
    origin = doc.get("migrated_from")
    if origin is not None and not isinstance(origin, dict):
        raise bad("migrated_from is not an object")


def check_chain(docs: list[tuple[str, dict[str, Any]]]) -> None:
    """Raise LineageError unless ``docs`` (name, manifest) is one full bundle followed by its deltas in order."""
    for name, doc in docs:
        _usable(name, doc)
    name0, first = docs[0]
    if manifest.kind_of(first) != "full":
        raise LineageError(f"{name0} is a delta bundle; a chain starts with the full bundle it descends from",
                           hint="give the full bundle first, then its deltas oldest to newest")
    ids = {doc["snapshot_id"]: name for name, doc in docs}
    for (prev_name, prev), (name, doc) in zip(docs, docs[1:], strict=False):
        if manifest.kind_of(doc) != "delta":
            raise LineageError(f"{name} is a full bundle after {prev_name}; only the first bundle of a chain "
                               "may be full", hint="import each full bundle on its own, or start a chain with it")
        parent = doc["parent"]
        if parent["snapshot_id"] != prev["snapshot_id"]:
            known = ids.get(parent["snapshot_id"])
            why = (f"its parent is {known}, which is not the bundle before it (wrong order or a fork)" if known
                   else f"its parent {parent['snapshot_id']} is not in the chain (a gap)")
            raise LineageError(f"{name} does not follow {prev_name}: {why}",
                               hint="order the chain full, delta 1, delta 2, ... with no delta left out "
                                    "(procos snapshot catalog DIR shows the lineage)")
        if parent["content_hash"] not in content_hashes(prev):
            raise LineageError(f"{name} was built on a bundle with content_hash {parent['content_hash']}, "
                               f"but {prev_name} has {prev['content_hash']}", hint="the parent bundle was "
                               "replaced by another export with the same id; use the original")
        if prev.get("sequence") != doc["base_sequence"]:
            raise LineageError(f"{name} holds changes after sequence {doc['base_sequence']}, but {prev_name} "
                               f"is at sequence {prev.get('sequence')}")
        if doc.get("store_id") and first.get("store_id") and doc["store_id"] != first["store_id"]:
            raise LineageError(f"{name} comes from another store (store_id {doc['store_id']}) than {name0} "
                               f"(store_id {first['store_id']})", hint="a chain holds one store's bundles only")
        for key in ("metric", "vector_backend"):
            if doc[key] != first[key]:
                raise LineageError(f"{name} has {key} {doc[key]!r}, {name0} has {first[key]!r}")
    dims = {doc["dimensions"] for _, doc in docs if doc["dimensions"]}
    if len(dims) > 1:
        raise LineageError(f"the chain's bundles have different dimensions {sorted(dims)}")


def content_hashes(doc: dict[str, Any]) -> set[str]:
    """The content hashes a bundle answers to: its own, and its pre-migration one when it was migrated."""
    hashes = {doc["content_hash"]}
    origin = doc.get("migrated_from")
    if isinstance(origin, dict) and origin.get("snapshot_id") == doc["snapshot_id"]:
        hashes.add(origin["content_hash"])
    return hashes


def artifact_plan(chain: Chain) -> tuple[dict[str, int], list[str]]:
    """``({path: index of the bundle holding its final bytes}, [paths the chain removed])``."""
    state: dict[str, tuple[int, str]] = {}
    removed: set[str] = set()
    for i, (_, root, doc) in enumerate(chain):
        for rel in doc.get("removed_artifacts", []) if i else []:
            state.pop(rel, None)
            removed.add(rel)
        for rel, sha in reader.listed_files(root).items():
            if layout.artifact_kind(rel) is not None:
                state[rel] = (i, sha)
    name, _, last = chain[-1]
    expected = last.get("artifacts_state")
    got = {rel: sha for rel, (_, sha) in state.items()}
    if expected is not None and got != expected:
        diff = sorted(set(got) ^ set(expected)) or sorted(p for p in got if got[p] != expected[p])
        raise LineageError(f"replaying the chain's artifacts does not give the artifact set {name} records "
                           f"(differs at {diff[:3]})", hint="a delta of the chain is missing or out of order")
    return {rel: i for rel, (i, _) in state.items()}, sorted(removed - set(state))


def _upserts(root: Path, doc: dict[str, Any], rank: int, batch_size: int) -> Iterator[tuple]:
    for batch in reader.iter_batches(root, doc, batch_size):
        for i, rid in enumerate(batch.ids):
            yield rid, -rank, batch, i


def _deletes(root: Path, rank: int) -> Iterator[tuple]:
    for _, line in iter_changes(layout.changes_path(root)):
        if line["op"] == "delete":
            yield line["id"], -rank, None, -1


def _concat(parts: list[tuple[RecordBatch, list[int]]]) -> RecordBatch:
    pieces = [b if len(idx) == len(b) else b.take(idx) for b, idx in parts]
    return make_batch(
        ids=[r for p in pieces for r in p.ids], vectors=np.concatenate([p.vectors for p in pieces]),
        metadata=[m for p in pieces for m in p.metadata], versions=np.concatenate([p.versions for p in pieces]),
        source_hashes=[s for p in pieces for s in p.source_hashes],
        created_us=np.concatenate([p.created_us for p in pieces]),
        updated_us=np.concatenate([p.updated_us for p in pieces]), validate=False)


def merged_records(chain: Chain, deleted: list[str], batch_size: int = IMPORT_BATCH) -> Iterator[RecordBatch]:
    """The chain's final records in ascending id order; ids whose final state is deleted go to ``deleted``."""
    sources = []
    for rank, (_, root, doc) in enumerate(chain):
        sources.append(_upserts(root, doc, rank, batch_size))
        if rank:
            sources.append(_deletes(root, rank))
    parts: list[tuple[RecordBatch, list[int]]] = []
    pending = 0
    last: str | None = None
    for rid, _, batch, i in heapq.merge(*sources, key=lambda item: (item[0], item[1])):
        if rid == last:
            continue  # an older bundle's state of an id a newer bundle already decided
        last = rid
        if batch is None:
            deleted.append(rid)
            continue
        if parts and parts[-1][0] is batch:
            parts[-1][1].append(i)
        else:
            parts.append((batch, [i]))
        pending += 1
        if pending >= batch_size:
            yield _concat(parts)
            parts, pending = [], 0
    if parts:
        yield _concat(parts)


def _describe(name: str, doc: dict[str, Any]) -> dict[str, Any]:
    out = {"path": name, "kind": manifest.kind_of(doc), "snapshot_id": doc["snapshot_id"],
           "content_hash": doc["content_hash"], "records": doc["record_count"], "sequence": doc.get("sequence")}
    if out["kind"] == "delta":
        out.update(upserts=doc["changes"]["upserts"], deletes=doc["changes"]["deletes"],
                   removed_artifacts=len(doc["removed_artifacts"]), parent=doc["parent"])
    return out


def plan_chain(repo: VectorRepository | None, paths: Sequence[str | os.PathLike[str]], mode: str = "append",
               on_conflict: str = "version", *, target: str | None = None,
               access: BundleAccess | None = None) -> dict[str, Any]:
    """What :func:`import_chain` would do, as plain data (verifies every bundle and the lineage; writes nothing).

    ``repo=None`` plans an import into a store that does not exist yet, named ``target``.
    """
    if mode not in MODES:
        raise InvalidInput(f"import mode must be append or replace, got {mode!r}")
    rule = _rule(on_conflict)
    from .plan import record_plan

    with open_chain(paths, access) as chain:
        final, removed = artifact_plan(chain)
        last = chain[-1][2]
        problem = _settings_problem(repo, last) if repo is not None else None
        deleted: list[str] = []
        counts = record_plan(repo if problem is None else None, merged_records(chain, deleted), mode, rule,
                             deleted if mode == "append" else None)
        return {"bundles": [_describe(name, doc) for name, _, doc in chain],
                "target": repo.uri if repo is not None else target, "mode": mode,
                "on_conflict": rule.value if mode == "append" else None, "snapshot_id": last["snapshot_id"],
                "content_hash": last["content_hash"], "artifacts": len(final), "removed_artifacts": removed,
                "target_count": repo.count() if repo is not None else 0, "settings_problem": problem, **counts}


def import_chain_into(uri: str, paths: Sequence[str | os.PathLike[str]], mode: str = "append",
                      on_conflict: str = "version", *, batch_size: int = IMPORT_BATCH,
                      access: BundleAccess | None = None) -> dict[str, Any]:
    """Verify every bundle of the chain (and its signature, per ``access``) and its lineage first, then
    open (creating when new) ``uri`` and apply it.

    A chain that fails leaves no store behind. Returns what :func:`import_chain` returns.
    """
    from .importer import open_target

    with open_chain(paths, access) as chain:
        repo = open_target(uri, chain[-1][2])
        try:
            return _apply(repo, chain, mode, on_conflict, batch_size)
        finally:
            repo.close()


def import_chain(repo: VectorRepository, paths: Sequence[str | os.PathLike[str]], mode: str = "append",
                 on_conflict: str = "version", *, batch_size: int = IMPORT_BATCH,
                 access: BundleAccess | None = None) -> dict[str, Any]:
    """Verify ``paths`` (full bundle, then its deltas in order) and apply their final state to ``repo``.

    Returns ``{"imported", "skipped", "deleted", "artifacts", "target", "snapshot_id",
    "content_hash", "chain"}`` (the ids and hash of the last bundle). Raises BundleInvalid,
    LineageError, SignatureRequired or SettingsMismatch before writing anything.
    """
    with open_chain(paths, access) as chain:
        return _apply(repo, chain, mode, on_conflict, batch_size)


def _apply(repo: VectorRepository, chain: Chain, mode: str, on_conflict: str, batch_size: int) -> dict[str, Any]:
    if mode not in MODES:
        raise InvalidInput(f"import mode must be append or replace, got {mode!r}")
    rule = _rule(on_conflict)
    final, removed = artifact_plan(chain)
    last = chain[-1][2]
    problem = _settings_problem(repo, last)
    if problem:
        raise SettingsMismatch(problem, hint="import into a new store opened with open_target(uri, manifest)")
    files = {rel: layout.member(chain[i][1], rel).read_bytes() for rel, i in sorted(final.items())}
    deleted: list[str] = []
    from engine.progress import counted

    records = counted(merged_records(chain, deleted, batch_size), "import",
                      sum(int(doc["record_count"]) for _, _, doc in chain))
    if mode == "replace":
        result = repo.replace_all(records)
        repo.artifacts.replace_all(files)
        gone = 0
    else:
        result = repo.bulk_load(records, rule)
        gone = repo.delete(deleted) if deleted else 0
        for rel, data in files.items():
            repo.artifacts.write(rel, data)
        for rel in removed:
            repo.artifacts.delete(rel)
    return {"imported": result.written, "skipped": result.skipped, "deleted": gone, "artifacts": len(files),
            "target": repo.uri, "snapshot_id": last["snapshot_id"], "content_hash": last["content_hash"],
            "chain": [doc["snapshot_id"] for _, _, doc in chain]}
