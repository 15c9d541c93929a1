"""The queries of a validation or a search tuning: stored vectors, perturbed stored vectors, a file.

Real queries land near stored vectors, not in uniformly random directions, so a query set is
built from a seeded sample of the stored vectors: about half are used as they are (``stored``),
the rest get Gaussian noise whose length is ``PERTURBATION`` times the vector's own length and,
for cosine stores, are normalized to unit length (``perturbed``). Queries from the user's traffic
can be added from a ``.npy`` file of shape ``(n, d)`` (``file``). The same seed gives the same set.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.errors import InvalidInput
from engine.records import RecordBatch

PERTURBATION = 0.1  # noise length relative to the stored vector's length
KINDS = ("stored", "perturbed", "file")


@dataclass(frozen=True)
class QuerySet:
    """``vectors`` (n, d) float32 and, for each row, its kind: stored, perturbed or file."""

    vectors: np.ndarray
    kinds: list[str]

    def __len__(self) -> int:
        return len(self.kinds)

    def counts(self) -> dict[str, int]:
        return {kind: self.kinds.count(kind) for kind in KINDS}


class Reservoir:
    """A uniform random sample of up to ``size`` vectors from a stream of rows (reservoir sampling)."""

    def __init__(self, size: int, rng: np.random.Generator) -> None:
        self.size, self.rng, self.seen = max(0, int(size)), rng, 0
        self.rows: list[np.ndarray] = []

    def offer(self, vector: np.ndarray) -> None:
        self.seen += 1
        if len(self.rows) < self.size:
            self.rows.append(np.array(vector, dtype=np.float32))
        elif self.size and self.rng.random() < self.size / self.seen:
            self.rows[int(self.rng.integers(self.size))] = np.array(vector, dtype=np.float32)

    def offer_batches(self, batches: Iterable[RecordBatch]) -> None:
        for batch in batches:
            for vector in batch.vectors:
                self.offer(vector)

    def array(self, dimensions: int) -> np.ndarray:
        return np.stack(self.rows) if self.rows else np.zeros((0, dimensions), np.float32)


def perturb(vectors: np.ndarray, metric: str, rng: np.random.Generator, scale: float = PERTURBATION) -> np.ndarray:
    """``vectors`` plus Gaussian noise of ``scale`` times each vector's length; unit length for cosine."""
    v = np.asarray(vectors, dtype=np.float64)
    if not len(v):
        return v.astype(np.float32)
    norms = np.linalg.norm(v, axis=1, keepdims=True)
    noise = rng.standard_normal(v.shape)
    noise *= scale * np.where(norms > 0, norms, 1.0) / np.sqrt(v.shape[1])
    out = v + noise
    if metric == "cosine":
        lengths = np.linalg.norm(out, axis=1, keepdims=True)
        out = out / np.where(lengths > 0, lengths, 1.0)
    return out.astype(np.float32)


def draw_queries(pool: np.ndarray, n: int, metric: str, rng: np.random.Generator) -> QuerySet:
    """``n`` queries from the sampled stored vectors ``pool``: ceil(n/2) as they are, the rest perturbed."""
    dims = pool.shape[1] if pool.ndim == 2 else 0
    if n <= 0 or not len(pool):
        return QuerySet(np.zeros((0, dims), np.float32), [])
    n_stored = (n + 1) // 2
    order = rng.permutation(len(pool))
    picks = np.resize(order, n)  # every sampled vector once before any repeats (tiny stores)
    stored = pool[picks[:n_stored]]
    perturbed = perturb(pool[picks[n_stored:]], metric, rng)
    vectors = np.ascontiguousarray(np.concatenate([stored, perturbed]), dtype=np.float32)
    return QuerySet(vectors, ["stored"] * n_stored + ["perturbed"] * (n - n_stored))


def load_queries_file(path: str | Path, dimensions: int, metric: str) -> QuerySet:
    """Queries from a NumPy ``.npy`` file of shape ``(n, dimensions)`` (float), or InvalidInput saying why not."""
    hint = f"save an (n, {dimensions}) float32 array with numpy.save('queries.npy', array)"
    try:
        data = np.load(Path(path), allow_pickle=False)
    except (OSError, ValueError) as exc:
        raise InvalidInput(f"cannot read the queries file {path}: {exc}", hint=hint) from exc
    if not isinstance(data, np.ndarray) or data.ndim != 2 or data.shape[1] != dimensions:
        shape = getattr(data, "shape", None)
        raise InvalidInput(f"the queries file {path} holds shape {shape}, expected (n, {dimensions})", hint=hint)
    if not np.issubdtype(data.dtype, np.floating):
        raise InvalidInput(f"the queries file {path} holds {data.dtype} values, expected float32", hint=hint)
    vectors = np.ascontiguousarray(data, dtype=np.float32)
    bad = np.flatnonzero(~np.isfinite(vectors).all(axis=1))
    if len(bad):
        raise InvalidInput(f"row {int(bad[0])} of the queries file {path} contains NaN or Inf", hint=hint)
    if metric == "cosine":
        zero = np.flatnonzero(~vectors.any(axis=1))
        if len(zero):
            raise InvalidInput(f"row {int(zero[0])} of the queries file {path} is all zeros, which has no "
                               "cosine distance", hint="remove the all-zero rows")
    return QuerySet(vectors, ["file"] * len(vectors))


def combine(*sets: QuerySet) -> QuerySet:
    parts = [s for s in sets if len(s)]
    if not parts:
        return sets[0]
    return QuerySet(np.ascontiguousarray(np.concatenate([s.vectors for s in parts]), dtype=np.float32),
                    [kind for s in parts for kind in s.kinds])
