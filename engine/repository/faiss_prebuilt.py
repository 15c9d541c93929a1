"""A bundle's ``index.faiss`` offered to a FAISS store on import: adopted only when it matches every row."""

from __future__ import annotations

import os

import faiss
import numpy as np

from .base import DEFAULT_HNSW, StoreSettings
from .faiss_scoring import prepare


class PrebuiltIndex:
    """A ready-made index (a bundle's ``index.faiss``: row ``i`` holds the ``i``-th record loaded),
    checked vector by vector against the records as they stream in.

    :meth:`adopt` returns it wrapped with the store's labels only when its type, metric, parameters
    and every stored vector match; otherwise the store builds its own index as usual.
    """

    def __init__(self, path: str | os.PathLike[str], settings: StoreSettings) -> None:
        self.index: faiss.Index | None = None
        self.rows = 0
        try:
            index = faiss.read_index(str(path))
        except RuntimeError:
            return
        if self._fits(index, settings):
            self.index = index
            self._vectors = index if settings.index == "flat" else faiss.downcast_index(index.storage)

    @staticmethod
    def _fits(index: faiss.Index, settings: StoreSettings) -> bool:
        kind = faiss.METRIC_L2 if settings.metric == "l2" else faiss.METRIC_INNER_PRODUCT
        if index.d != settings.dimensions or index.metric_type != kind:
            return False
        if settings.index == "flat":
            return isinstance(index, faiss.IndexFlat)
        params = settings.index_params
        return (isinstance(index, faiss.IndexHNSWFlat)
                and index.hnsw.nb_neighbors(1) == int(params.get("m", 16))
                and index.hnsw.efConstruction == int(params.get("ef_construction", DEFAULT_HNSW["ef_construction"])))

    def check(self, vectors: np.ndarray, metric: str) -> None:
        """Compare the next rows with what the index stores; any difference disables adoption."""
        if self.index is None or not len(vectors):
            return
        n = len(vectors)
        if self.rows + n > self.index.ntotal or not np.array_equal(
                self._vectors.reconstruct_n(self.rows, n), prepare(vectors, metric)):
            self.index = None
        self.rows += n

    def adopt(self, first_label: int, labels_used: int) -> faiss.Index | None:
        """The index as the store's ``IndexIDMap2`` (labels ``first_label + i``), if it matched every row."""
        if self.index is None or self.rows != self.index.ntotal or labels_used != self.rows:
            return None
        wrapped = empty_index_like(self.index)
        wrapped.index = self.index
        wrapped.referenced_objects = [self.index]  # keep the wrapped index alive with its wrapper
        faiss.copy_array_to_vector(np.arange(first_label, first_label + self.rows, dtype=np.int64), wrapped.id_map)
        wrapped.ntotal = self.rows
        wrapped.construct_rev_map()
        return wrapped


def empty_index_like(index: faiss.Index) -> faiss.Index:
    return faiss.IndexIDMap2(faiss.IndexFlat(index.d, index.metric_type))
