"""Record-level comparison: a streaming merge of both sides' ascending ids."""

from __future__ import annotations

import numpy as np

from engine.records import vector_sha256

from .queryset import Reservoir
from .result import MAX_LISTED, Validation
from .sides import Side


def compare_records(source: Side, target: Side, result: Validation, sample: int | None,
                    rng: np.random.Generator, pool_size: int = 64) -> np.ndarray:
    """Merge both id streams: missing/unexpected ids, vector hash and metadata equality.

    Returns up to ``pool_size`` vectors of records both sides hold (a uniform reservoir sample of the
    source's), from which the queries are drawn.
    """
    check_positions = None
    if sample is not None and source.count:
        check_positions = set(rng.choice(source.count, size=min(sample, source.count), replace=False).tolist())
    missing: list[str] = []
    unexpected: list[str] = []
    drifted: list[str] = []
    changed: list[str] = []
    n_missing = n_unexpected = n_drifted = n_changed = checked = 0
    pool = Reservoir(pool_size, rng)

    def rows(side: Side):
        for batch in side.batches():
            for i, rid in enumerate(batch.ids):
                yield rid, batch, i

    from engine import progress

    s_iter, t_iter = rows(source), rows(target)
    progress.update("validate", 0, source.count)
    s, t = next(s_iter, None), next(t_iter, None)
    position = 0
    while s is not None or t is not None:
        if t is None or (s is not None and s[0] < t[0]):
            n_missing += 1
            if len(missing) < MAX_LISTED:
                missing.append(s[0])
            s = next(s_iter, None)
            position += 1
            continue
        if s is None or t[0] < s[0]:
            n_unexpected += 1
            if len(unexpected) < MAX_LISTED:
                unexpected.append(t[0])
            t = next(t_iter, None)
            continue
        rid, sb, si = s
        _, tb, ti = t
        pool.offer(sb.vectors[si])
        if check_positions is None or position in check_positions:
            checked += 1
            if vector_sha256(sb.vectors[si]) != vector_sha256(tb.vectors[ti]):
                n_drifted += 1
                if len(drifted) < MAX_LISTED:
                    drifted.append(rid)
            elif sb.metadata[si] != tb.metadata[ti] or sb.versions[si] != tb.versions[ti]:
                n_changed += 1
                if len(changed) < MAX_LISTED:
                    changed.append(rid)
        position += 1
        if not position % 4096:
            progress.update("validate", position, source.count)
        s, t = next(s_iter, None), next(t_iter, None)
    progress.update("validate", position, position)
    result.checks["records"] = {"source": source.count, "target": target.count, "hash_checked": checked,
                                "missing": n_missing, "unexpected": n_unexpected,
                                "vector_mismatch": n_drifted, "metadata_mismatch": n_changed}
    if n_missing:
        result.fail("ids_missing", f"{n_missing} source id(s) are missing in the target", ids=missing)
    if n_unexpected:
        result.fail("ids_unexpected", f"{n_unexpected} target id(s) are not in the source", ids=unexpected)
    if n_drifted:
        result.fail("vector_hash", f"{n_drifted} record(s) have different vector bytes", ids=drifted)
    if n_changed:
        result.fail("record_content", f"{n_changed} record(s) differ in metadata or version", ids=changed)
    return pool.array(source.dimensions or 0)
