"""The record half of an import plan: what an import would do to each record, computed, not guessed.

The bundle's (or chain's final) records are compared with the target's by id, batch by batch (memory
bounded by the batch size), under the same rules the import applies: ``append`` with a conflict rule
(``version``: replace when the incoming version is higher, ties keep the stored record; ``keep``;
``overwrite``; ``error``: any collision makes the import fail) or ``replace`` (the target becomes exactly
the bundle: ids only in the target are deleted). Nothing is written.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

from engine.records import OnConflict, RecordBatch

if TYPE_CHECKING:
    from engine.repository import VectorRepository

FETCH = 1_000


def record_plan(repo: VectorRepository | None, batches: Iterable[RecordBatch], mode: str, rule: OnConflict,
                deletes: list[str] | None = None) -> dict[str, Any]:
    """``{"target_exists", "would_create", "would_insert", "would_replace", "would_skip", "would_delete",
    "would_conflict"}`` for loading ``batches`` (then deleting ``deletes``) into ``repo`` (None: a new store)."""
    counts = {"would_insert": 0, "would_replace": 0, "would_skip": 0, "would_delete": 0, "would_conflict": 0}
    matched = 0
    for batch in batches:
        for start in range(0, len(batch), FETCH):
            ids = batch.ids[start:start + FETCH]
            stored = {r.id: r.version for r in repo.fetch(ids)} if repo is not None else {}
            matched += len(stored)
            for offset, rid in enumerate(ids):
                if rid not in stored:
                    counts["would_insert"] += 1
                elif mode == "replace":
                    counts["would_replace"] += 1
                else:
                    counts[_append_outcome(rule, int(batch.versions[start + offset]), stored[rid])] += 1
    if repo is not None and mode == "replace":
        counts["would_delete"] = repo.count() - matched
    elif repo is not None and deletes:
        counts["would_delete"] = sum(len(repo.fetch(deletes[i:i + FETCH])) for i in range(0, len(deletes), FETCH))
    return {"target_exists": repo is not None, "would_create": repo is None, **counts}


def _append_outcome(rule: OnConflict, incoming: int, stored: int) -> str:
    if rule == OnConflict.OVERWRITE:
        return "would_replace"
    if rule == OnConflict.KEEP:
        return "would_skip"
    if rule == OnConflict.ERROR:
        return "would_conflict"
    if rule == OnConflict.NEWER_OR_EQUAL:
        return "would_replace" if incoming >= stored else "would_skip"
    return "would_replace" if incoming > stored else "would_skip"
