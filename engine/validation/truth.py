"""Exact answers by brute force over a stream of record batches: the ground truth of a bundle side and
of a search tuning.

One pass over the batches answers every query: each batch's (queries x rows) distances are computed
in float64 with pgvector's definitions, each query keeps its ``k`` best ``(distance, id)`` pairs, so
memory holds one batch and ``k`` candidates per query, whatever the store's size. Ties are broken
by id, so the same data gives the same answer.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

from engine.records import RecordBatch
from engine.repository import Hit


def distances(vectors: np.ndarray, queries: np.ndarray, metric: str) -> np.ndarray:
    """(q, n) distances in float64 with pgvector's definitions (lower is closer)."""
    v = vectors.astype(np.float64)
    q = queries.astype(np.float64)
    if metric == "l2":
        sq = (q * q).sum(1)[:, None] + (v * v).sum(1)[None, :] - 2 * q @ v.T
        return np.sqrt(np.maximum(sq, 0.0))
    dots = q @ v.T
    if metric == "inner_product":
        return -dots
    norms = np.linalg.norm(q, axis=1)[:, None] * np.linalg.norm(v, axis=1)[None, :]
    return 1.0 - dots / np.where(norms == 0, 1.0, norms)


def _candidates(d: np.ndarray, k: int) -> np.ndarray:
    """Per row of ``d``, the columns of its ``k`` smallest values plus every column tied with the k-th
    (so that breaking ties by id stays possible); a (q, m) index array, m >= k, padded with -1."""
    n = d.shape[1]
    if n <= k:
        return np.broadcast_to(np.arange(n), d.shape).copy()
    part = np.argpartition(d, k - 1, axis=1)
    kth = np.take_along_axis(d, part[:, k - 1:k], axis=1)
    tied = (d == kth).sum(axis=1)  # the k-th value itself and any other column equal to it
    if (tied <= 1).all():
        return part[:, :k]
    rows = []
    for qi in range(d.shape[0]):
        rows.append(np.flatnonzero(d[qi] <= kth[qi, 0]))
    width = max(len(r) for r in rows)
    out = np.full((d.shape[0], width), -1, dtype=np.int64)
    for qi, r in enumerate(rows):
        out[qi, :len(r)] = r
    return out


def brute_force(batches: Iterable[RecordBatch], queries: np.ndarray, k: int, metric: str) -> list[list[Hit]]:
    """Exact top-k for every query over a stream of batches, keeping only k candidates per query."""
    best: list[list[tuple[float, str]]] = [[] for _ in range(len(queries))]
    if k <= 0 or not len(queries):
        return [[] for _ in best]
    for batch in batches:
        if not len(batch):
            continue
        d = distances(batch.vectors, queries, metric)
        picks = _candidates(d, k)
        for qi, row in enumerate(picks):
            merged = best[qi] + [(float(d[qi, j]), batch.ids[j]) for j in row if j >= 0]
            best[qi] = sorted(merged)[:k]
    return [[Hit(rid, score, {}) for score, rid in row] for row in best]
