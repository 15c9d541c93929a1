"""A FAISS HNSW store's graph as a bundle carries it: renumbered so that node ``i`` is the ``i``-th record in
id order (the bundle's row order), so that an importing HNSW store adopts it instead of building one.

Inside the store the graph's nodes are in insertion order behind an ``IndexIDMap2`` (node -> label);
``IndexHNSW.permute_entries`` reorders the nodes, their neighbour lists and the stored vectors in
place, so the graph stays exactly the same graph. Only a clean graph travels: one that still holds
deleted records (HNSW cannot remove nodes) would carry nodes the bundle has no rows for.
"""

from __future__ import annotations

import faiss
import numpy as np

from .faiss_index import LiveIndex


def graph_in_row_order(live: LiveIndex, labels_by_id: np.ndarray) -> tuple[faiss.Index, faiss.Index] | None:
    """``(graph, owner)``: the live HNSW graph renumbered so that node ``i`` is the ``i``-th record in id
    order (a bundle's row order), and the wrapper that owns its memory (keep it alive while the graph is
    used); None when it cannot be carried (a flat index, dead labels still in the graph, or labels that
    do not match the records). The live index is consumed: the caller resets it."""
    index = live.index
    if index is None or live.settings.index != "hnsw" or live.dead or len(labels_by_id) != int(index.ntotal):
        return None
    inner = faiss.downcast_index(index.index)
    if not isinstance(inner, faiss.IndexHNSWFlat):
        return None
    id_map = faiss.vector_to_array(index.id_map)
    if not len(id_map):
        return None
    internal = np.full(int(id_map.max()) + 1, -1, dtype=np.int64)
    internal[id_map] = np.arange(len(id_map), dtype=np.int64)
    if int(labels_by_id.max(initial=-1)) >= len(internal):
        return None
    perm = internal[labels_by_id]
    if (perm < 0).any() or len(np.unique(perm)) != len(perm):
        return None
    inner.permute_entries(np.ascontiguousarray(perm, dtype=np.int64))
    return inner, index
