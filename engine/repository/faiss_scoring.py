"""Exact scoring for a FAISS store: float64 distances as pgvector defines them, ranking by (distance, id),
a bounded brute force over stored rows, query checks, and what the index holds for a vector.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Sequence

import faiss
import numpy as np

from engine.errors import InvalidInput

from .base import Hit

EXACT_CHUNK = 4_096


def distances(metric: str, vectors: np.ndarray, query: np.ndarray) -> np.ndarray:
    """Exact float64 distances as pgvector defines them: cosine 1-cos, l2 Euclidean, inner_product -dot."""
    x = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    if metric == "l2":
        return np.linalg.norm(x - q, axis=1)
    return -(x @ q)


def row_scores(rows: Sequence[tuple], query: np.ndarray, metric: str) -> np.ndarray:
    """Exact distances of ``(id, vector blob, metadata)`` rows to the query."""
    if not rows:
        return np.zeros(0)
    vectors = np.frombuffer(b"".join(r[1] for r in rows), dtype="<f4").reshape(len(rows), -1)
    return distances(metric, vectors, query)


def ranked(rows: Sequence[tuple], scores: np.ndarray, k: int) -> list[Hit]:
    """The ``k`` best rows as Hits, by (score, id)."""
    if not rows:
        return []
    order = np.lexsort((np.array([r[0] for r in rows]), scores))[:k]
    return [Hit(rows[i][0], float(scores[i]), json.loads(rows[i][2])) for i in order]


def exact_top(cursor: sqlite3.Cursor, query: np.ndarray, k: int, metric: str) -> list[Hit]:
    """Brute force over the ``(id, vector, metadata)`` rows of ``cursor``, read in bounded chunks."""
    best: list[tuple] = []
    scores = np.zeros(0)
    while rows := cursor.fetchmany(EXACT_CHUNK):
        best, scores = best + rows, np.concatenate([scores, row_scores(rows, query, metric)])
        if len(best) > k:
            keep = np.nonzero(scores <= np.partition(scores, k - 1)[k - 1])[0]  # ties at the k-th place kept
            best, scores = [best[i] for i in keep], scores[keep]
    return ranked(best, scores, k)


def check_query(vector: object, dimensions: int, metric: str) -> np.ndarray:
    """The query as a float32 vector of the store's dimensions, or InvalidInput saying what is wrong."""
    try:
        q = np.asarray(vector, dtype=np.float32)
    except (TypeError, ValueError) as exc:
        raise InvalidInput(f"the query vector is not numeric ({exc})") from exc
    if q.shape != (dimensions,):
        raise InvalidInput(f"the query vector has shape {q.shape}, the store holds {dimensions}-d vectors")
    if not np.isfinite(q).all():
        raise InvalidInput("the query vector contains NaN or Inf")
    if metric == "cosine" and not q.any():
        raise InvalidInput("the query vector is all zeros, which has no cosine distance")
    return q


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    """What the index holds for ``vectors``: normalized copies for cosine, the vectors otherwise."""
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        x = x.copy()
        faiss.normalize_L2(x)
    return x
