"""``index.faiss``: a FAISS index rebuilt from the exported vectors, for bundles of FAISS stores.

Rows are added in the order of ``embeddings.parquet`` (ascending id), so label ``i`` is row ``i``.
Conventions (as the FAISS store uses them): cosine stores index L2-normalized vectors with inner
product, ``l2`` uses squared L2, ``inner_product`` inner product; ``hnsw`` is ``IndexHNSWFlat(d, m)``
with ``efConstruction``/``efSearch`` from the store's settings, ``flat`` is ``IndexFlat``. The
build runs single-threaded so the same rows always give the same bytes.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np

from .checksums import HashingWriter


def _faiss():
    import faiss

    return faiss


def new_index(dimensions: int, metric: str, index_type: str, params: dict[str, int]) -> Any:
    faiss = _faiss()
    kind = faiss.METRIC_L2 if metric == "l2" else faiss.METRIC_INNER_PRODUCT
    if index_type == "flat":
        return faiss.IndexFlat(dimensions, kind)
    index = faiss.IndexHNSWFlat(dimensions, int(params.get("m", 16)), kind)
    index.hnsw.efConstruction = int(params.get("ef_construction", 64))
    index.hnsw.efSearch = int(params.get("ef_search", 40))
    return index


def prepare(vectors: np.ndarray, metric: str) -> np.ndarray:
    x = np.ascontiguousarray(vectors, dtype=np.float32)
    if metric == "cosine":
        x = x.copy()
        _faiss().normalize_L2(x)
    return x


class FaissIndexBuilder:
    """Adds exported vectors batch by batch, then writes the index through a HashingWriter."""

    def __init__(self, path: Path, dimensions: int, metric: str, index_type: str,
                 params: dict[str, int]) -> None:
        self.path = path
        self.metric = metric
        self.index = new_index(dimensions, metric, index_type, params)

    def add(self, vectors: np.ndarray) -> None:
        if len(vectors):
            faiss = _faiss()
            threads = faiss.omp_get_max_threads()
            faiss.omp_set_num_threads(1)  # HNSW insertion order must not depend on thread timing
            try:
                self.index.add(prepare(vectors, self.metric))
            finally:
                faiss.omp_set_num_threads(threads)

    def finish(self) -> tuple[str, int]:
        """Serialize the index into ``path``; return its ``(sha256, size)``."""
        faiss = _faiss()
        sink = HashingWriter(self.path)
        try:
            writer = faiss.PyCallbackIOWriter(sink.write)
            faiss.write_index(self.index, writer)
            del writer
        except BaseException:
            sink.abort()
            raise
        self.index = None
        return sink.finish()


def index_problems(path: Path, record_count: int, dimensions: int) -> list[str]:
    """Why ``index.faiss`` is unreadable or disagrees with the manifest (empty list when fine)."""
    faiss = _faiss()
    try:
        index = faiss.read_index(str(path))
    except RuntimeError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "unknown error"
        return [f"FAISS cannot read the index ({first[:200]})"]
    problems = []
    if int(index.ntotal) != record_count:
        problems.append(f"the index holds {index.ntotal} vectors, the manifest says record_count={record_count}")
    if int(index.d) != dimensions:
        problems.append(f"the index has {index.d} dimensions, the manifest says {dimensions}")
    return problems
