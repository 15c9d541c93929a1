"""Reference answers for the conformance suite: deterministic records and NumPy brute force.

Every backend is compared to these, never to another backend, so a disagreement names the
backend that is wrong.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from engine.records import EmbeddingRecord
from engine.repository.filters import matches, normalize

BASE_TS = datetime(2024, 5, 17, 8, 30, 15, 123456, tzinfo=UTC)
GROUPS = ("alpha", "beta", "gamma")


def build_records(n: int, dims: int = 8, *, seed: int = 0, prefix: str = "r", version: int = 1,
                  metadata: Sequence[dict[str, Any]] | None = None) -> list[EmbeddingRecord]:
    """``n`` records with ids ``{prefix}{i:05d}`` and standard-normal vectors from ``default_rng(seed)``."""
    rng = np.random.default_rng(seed)
    vectors = rng.standard_normal((n, dims)).astype(np.float32)
    out = []
    for i in range(n):
        meta = dict(metadata[i]) if metadata is not None else {"i": i, "group": GROUPS[i % 3]}
        out.append(EmbeddingRecord(
            id=f"{prefix}{i:05d}", vector=vectors[i], metadata=meta, version=version,
            source_hash=f"src-{seed}-{i}", created_ts=BASE_TS + timedelta(seconds=i),
            updated_ts=BASE_TS + timedelta(seconds=i, microseconds=7)))
    return out


def distances(vectors: np.ndarray, query: np.ndarray, metric: str) -> np.ndarray:
    """The metric's distance (base.py: cosine 1-cos, l2 Euclidean, inner_product -dot) in float64."""
    x = np.asarray(vectors, dtype=np.float64)
    q = np.asarray(query, dtype=np.float64)
    if metric == "cosine":
        return 1.0 - (x @ q) / (np.linalg.norm(x, axis=1) * np.linalg.norm(q))
    if metric == "l2":
        return np.linalg.norm(x - q, axis=1)
    if metric == "inner_product":
        return -(x @ q)
    raise ValueError(metric)


def brute_force(records: Sequence[EmbeddingRecord], query: np.ndarray, metric: str, k: int,
                filters: dict[str, Any] | None = None) -> tuple[list[tuple[str, float]], dict[str, float]]:
    """The exact top ``k`` ``(id, distance)`` among records matching ``filters``, closest first, ties by id.

    Also returns every matching record's distance, so a ranking can be judged with a tolerance.
    """
    clauses = normalize(filters)
    pool = [r for r in records if matches(r.metadata, clauses)]
    if not pool:
        return [], {}
    dist = distances(np.stack([r.vector for r in pool]), query, metric)
    every = {r.id: float(d) for r, d in zip(pool, dist, strict=True)}
    ranked = sorted(every.items(), key=lambda item: (item[1], item[0]))
    return ranked[:k], every


def ranking_problems(hits: Sequence[Any], expected: Sequence[tuple[str, float]], every: dict[str, float],
                     *, tol: float = 1e-4) -> list[str]:
    """Why ``hits`` is not the expected exact ranking (empty list when it is).

    A hit may differ from the expected id at a rank only when its true distance equals the
    expected distance there within ``tol`` (a float near-tie between two backends' arithmetic).
    """
    problems = []
    if len(hits) != len(expected):
        problems.append(f"{len(hits)} hits, expected {len(expected)}")
    seen = set()
    for rank, (hit, (exp_id, exp_d)) in enumerate(zip(hits, expected, strict=False)):
        if hit.id in seen:
            problems.append(f"rank {rank}: id {hit.id!r} returned twice")
        seen.add(hit.id)
        if abs(hit.score - exp_d) > tol * max(1.0, abs(exp_d)):
            problems.append(f"rank {rank}: score {hit.score!r}, expected {exp_d!r} (id {exp_id!r})")
        if hit.id != exp_id:
            true_d = every.get(hit.id)
            if true_d is None:
                problems.append(f"rank {rank}: id {hit.id!r} does not match the filter / does not exist")
            elif abs(true_d - exp_d) > tol * max(1.0, abs(exp_d)):
                problems.append(f"rank {rank}: got {hit.id!r} (distance {true_d}), expected {exp_id!r} ({exp_d})")
    return problems


def recall(hit_ids: Sequence[str], expected_ids: Sequence[str]) -> float:
    return len(set(hit_ids) & set(expected_ids)) / max(1, len(expected_ids))


SETTING_OPTIONS = ("metric", "index", "dimensions", "dim", "m", "ef_construction", "ef_search")


def with_options(uri: str, **options: Any) -> str:
    """``uri`` with ``key=value`` store options appended to its query string."""
    if not options:
        return uri
    extra = "&".join(f"{k}={v}" for k, v in options.items())
    return f"{uri}{'&' if '?' in uri else '?'}{extra}"


def without_settings(uri: str) -> str:
    """``uri`` with its setting options (metric, index, dimensions, HNSW params) removed; table kept."""
    base, sep, query = uri.partition("?")
    if not sep:
        return uri
    kept = [p for p in query.split("&") if p and p.partition("=")[0] not in SETTING_OPTIONS]
    return f"{base}?{'&'.join(kept)}" if kept else base
