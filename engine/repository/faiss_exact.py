"""Exact nearest neighbours of a FAISS store from the vectors its index stores, whatever the index type.

A flat index is searched as it is. An HNSW index keeps its vectors in a flat ``storage`` index
(position ``i`` holds label ``id_map[i]``); that storage is searched exhaustively, skipping the
labels of deleted records the graph still holds. The candidates (the ``k`` best plus a margin, and
everything tied with the ``k``-th within float32 rounding) are then rescored in float64 from
``store.sqlite`` by the caller, so the answer is the exact top ``k`` by the metric's distance,
ties by id.
"""

from __future__ import annotations

import faiss
import numpy as np

from .faiss_index import LiveIndex
from .faiss_scoring import prepare

MARGIN = 8  # extra candidates beyond k, so float32 rounding cannot push a true top-k vector out
ROUNDING = 1e-4  # index distances closer than this to the k-th candidate's are treated as tied


class ExactSearch:
    """Exhaustive search over a :class:`LiveIndex`'s stored vectors (cached per index state)."""

    def __init__(self) -> None:
        self._key: tuple | None = None
        self._flat: faiss.Index | None = None
        self._labels: np.ndarray | None = None
        self._params: faiss.SearchParameters | None = None
        self._keep: tuple = ()

    def _prepare(self, live: LiveIndex) -> None:
        index = live.index
        assert index is not None
        key = (index, int(index.ntotal), len(live.dead))
        if self._key is not None and self._key[0] is index and self._key[1:] == key[1:]:
            return
        inner = faiss.downcast_index(index.index)
        flat = faiss.downcast_index(inner.storage) if isinstance(inner, faiss.IndexHNSW) else inner
        labels = faiss.vector_to_array(index.id_map).astype(np.int64)
        params = None
        keep: tuple = ()
        if live.dead:
            dead = np.fromiter(live.dead, dtype=np.int64, count=len(live.dead))
            positions = np.flatnonzero(np.isin(labels, dead)).astype(np.int64)
            batch = faiss.IDSelectorBatch(positions)
            params = faiss.SearchParameters()
            params.sel = faiss.IDSelectorNot(batch)
            keep = (batch, params.sel)  # the selectors must outlive every search that uses them
        self._key, self._flat, self._labels, self._params, self._keep = key, flat, labels, params, keep

    def candidates(self, live: LiveIndex, query: np.ndarray, k: int) -> np.ndarray:
        """Labels of the ``k`` nearest live vectors, plus a margin and every near-tie with the ``k``-th."""
        self._prepare(live)
        assert self._flat is not None and self._labels is not None
        total = live.live_count
        if total <= 0 or k <= 0:
            return np.zeros(0, np.int64)
        q = prepare(query.reshape(1, -1), live.settings.metric)
        want = min(k + MARGIN, total)
        while True:
            if self._params is None:
                dist, pos = self._flat.search(q, want)
            else:
                dist, pos = self._flat.search(q, want, params=self._params)
            keep = pos[0] >= 0
            dist, pos = dist[0][keep], pos[0][keep]
            last = min(k, len(dist)) - 1
            if want >= total or len(dist) < want or abs(float(dist[-1]) - float(dist[last])) > ROUNDING * max(
                    1.0, abs(float(dist[last]))):
                return self._labels[pos]
            want = min(want * 2, total)  # the margin is all near-ties with the k-th: look further
