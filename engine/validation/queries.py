"""Query-level comparison: do both sides return the same top-k, allowing reorders among equal scores?"""

from __future__ import annotations

import numpy as np

from engine.repository import Hit

from .result import Validation
from .sides import Side

SCORE_TOL = 1e-4


def query_vectors(pool: np.ndarray, n: int, dimensions: int, rng: np.random.Generator) -> np.ndarray:
    """``n`` queries: about half drawn from stored vectors (``pool``), the rest random directions."""
    from_store = min(len(pool), (n + 1) // 2)
    picked = pool[rng.choice(len(pool), size=from_store, replace=False)] if from_store else pool[:0]
    random = rng.standard_normal((n - from_store, dimensions)).astype(np.float32)
    return np.ascontiguousarray(np.concatenate([picked.reshape(-1, dimensions), random]), dtype=np.float32)


def overlap(expected: list[Hit], got: list[Hit], k: int) -> float:
    """Share of ``expected`` found in ``got``; a miss whose score ties ``got``'s last score still agrees."""
    if not expected:
        return 1.0 if not got else 0.0
    got_ids = {h.id for h in got}
    boundary = got[-1].score if len(got) >= min(k, len(expected)) and got else None
    agree = 0
    for hit in expected:
        if hit.id in got_ids or (boundary is not None and abs(hit.score - boundary) <= SCORE_TOL):
            agree += 1
    return agree / len(expected)


def rank_agreement(expected: list[Hit], got: list[Hit]) -> float:
    """Share of ranks holding the same id, or ids whose scores are equal within the tolerance."""
    if not expected:
        return 1.0
    same = sum(1 for a, b in zip(expected, got, strict=False)
               if a.id == b.id or abs(a.score - b.score) <= SCORE_TOL)
    return same / len(expected)


def compare_queries(source: Side, target: Side, pool: np.ndarray, n: int, k: int, min_overlap: float | None,
                    rng: np.random.Generator, result: Validation) -> None:
    """Run ``n`` queries on both sides and record overlap, rank agreement and score differences."""
    if n <= 0 or not source.count or source.dimensions is None:
        return
    queries = query_vectors(pool, n, source.dimensions, rng)
    expected = source.search(queries, k)
    got = target.search(queries, k)
    overlaps = [overlap(e, g, k) for e, g in zip(expected, got, strict=True)]
    ranks = [rank_agreement(e, g) for e, g in zip(expected, got, strict=True)]
    diffs = [abs(a.score - b.score) for e, g in zip(expected, got, strict=True)
             for a, b in zip(e, g, strict=False)]
    exact = source.exact and target.exact
    floor = min_overlap if min_overlap is not None else (1.0 if exact else 0.95)
    result.queries = len(queries)
    result.mean_overlap = float(np.mean(overlaps))
    result.min_overlap = float(np.min(overlaps))
    result.rank_agreement = float(np.mean(ranks))
    result.max_score_diff = float(max(diffs, default=0.0))
    result.checks["queries"] = {"count": len(queries), "k": k, "exact": exact, "threshold": floor,
                                "mean_overlap": result.mean_overlap, "min_overlap": result.min_overlap}
    worst = [i for i, o in enumerate(overlaps) if o < floor]
    if exact and worst:
        result.fail("top_k_overlap", f"{len(worst)} of {len(queries)} queries returned a different top-{k} "
                    f"(threshold {floor:.2f} per query on exact indexes)",
                    queries=worst[:20], mean_overlap=result.mean_overlap)
    elif not exact and result.mean_overlap < floor:
        result.fail("recall", f"mean top-{k} overlap {result.mean_overlap:.3f} is below the recall floor "
                    f"{floor:.2f}", mean_overlap=result.mean_overlap)
