"""Search tuning after a restore: raise an HNSW store's ``ef_search`` until it serves the recall floor.

A restored HNSW index is a new graph: it does not answer like the source's, and with the default
search effort it may miss many true neighbours. :func:`tune_search` measures recall@k of the
store's approximate answers against its own exact answers on a seeded sample of queries (stored
vectors and perturbed stored vectors), and raises ``ef_search`` step by step (doubling, at least
``2k``) until the recall reaches the floor plus a margin of 0.04 (so that a validation's own sample of
queries also meets the floor) or ``MAX_EF_SEARCH`` (1000) is reached. The value chosen is stored with
:meth:`VectorRepository.set_ef_search`, so every process that opens the store later uses it.
An ef_search below k is raised to k first (a graph search keeps ef candidates, so fewer than k would
come back). ef_search is only ever raised, never lowered.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from engine.repository import MAX_EF_SEARCH, VectorRepository

from .queryset import Reservoir, draw_queries
from .recall import DEFAULT_FLOOR, recall_at_k

MARGIN = 0.04  # aim above the floor: a validation of 20 queries measures recall with a spread of ~0.015
SAMPLE = 128


def measured_recall(repo: VectorRepository, queries: np.ndarray, exact: list, k: int) -> float:
    found = [recall_at_k(e, repo.query(q, k)) for q, e in zip(queries, exact, strict=True)]
    return float(np.mean(found)) if found else 1.0


def tune_search(repo: VectorRepository, *, floor: float = DEFAULT_FLOOR, k: int = 10, queries: int = SAMPLE,
                seed: int = 0, max_ef_search: int = MAX_EF_SEARCH) -> dict[str, Any]:
    """Raise and store ``repo``'s ef_search until its recall@k reaches ``floor`` (+ margin) or the maximum.

    Returns ``{"ef_search", "recall", "floor", "goal", "reached", "tuned", "tried", "queries", "k",
    "max_ef_search", "index"}``: ``reached`` says whether the recall met the floor, ``tried`` lists every
    ``{"ef_search", "recall"}`` measured. A flat or empty
    store is left alone (``"tuned": false`` and a ``"reason"``; ``recall`` null for flat stores,
    which are exact).
    """
    settings = repo.settings
    current = int(settings.index_params.get("ef_search", 40))
    out: dict[str, Any] = {"ef_search": current, "recall": None, "floor": floor, "goal": min(1.0, floor + MARGIN),
                           "reached": True, "tuned": False, "tried": [], "queries": 0, "k": k,
                           "max_ef_search": max_ef_search, "index": settings.index}
    if settings.index != "hnsw":
        return {**out, "reason": "a flat index searches exactly"}
    if not repo.count() or settings.dimensions is None:
        return {**out, "reason": "the store holds no records"}
    rng = np.random.default_rng(seed)
    pool = Reservoir(queries, rng)
    pool.offer_batches(repo.iter_batches(10_000))
    vectors = draw_queries(pool.array(settings.dimensions), queries, settings.metric, rng).vectors
    exact = [repo.query(q, k, exact=True) for q in vectors]
    goal = out["goal"]
    ef = current
    if ef < k:  # a graph search keeps ef candidates: below k it cannot return k neighbours (answered exactly)
        ef = min(max_ef_search, k)
        repo.set_ef_search(ef)
    recall = measured_recall(repo, vectors, exact, k)
    out["tried"].append({"ef_search": ef, "recall": recall})
    while recall < goal and ef < max_ef_search:
        ef = min(max_ef_search, max(2 * ef, 2 * k))
        repo.set_ef_search(ef)
        recall = measured_recall(repo, vectors, exact, k)
        out["tried"].append({"ef_search": ef, "recall": recall})
    return {**out, "ef_search": ef, "recall": recall, "reached": recall >= floor, "tuned": ef != current,
            "queries": len(vectors)}
