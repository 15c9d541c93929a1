"""A FAISS HNSW store's graph travels in the bundle: ``index.faiss`` holds it renumbered to row order
(``faiss_index_type: hnsw``), it verifies like any index (header only), and a FAISS HNSW target adopts
it as it is instead of building a new graph. A graph that still holds deleted records is not carried."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np

from engine.repository import open_repository
from engine.snapshot import export_snapshot, verify_bundle
from engine.snapshot.faiss_header import read_header
from engine.snapshot.importer import import_into
from engine.snapshot.reader import manifest_of
from engine.synthetic import record_id, synthetic_batches

DIMS = 16
PARAMS = "index=hnsw&m=8&ef_construction=16"


def graph_of(path: Path) -> tuple[np.ndarray, np.ndarray]:
    index = faiss.read_index(str(path))
    inner = faiss.downcast_index(index.index) if isinstance(index, faiss.IndexIDMap2) else index
    return faiss.vector_to_array(inner.hnsw.neighbors), faiss.vector_to_array(inner.hnsw.levels)


def test_an_hnsw_graph_is_carried_and_adopted_without_a_rebuild(tmp_path):
    source = open_repository(f"faiss:{tmp_path / 'src'}?{PARAMS}", dimensions=DIMS)
    batches = list(synthetic_batches(1_500, DIMS, batch_size=500))
    for batch in reversed(batches):  # insertion order differs from id order: the graph must be renumbered
        source.write_batch(batch)
    source.compact()
    result = export_snapshot(source, tmp_path / "snaps")
    bundle = Path(result.path)
    assert manifest_of(bundle)["faiss_index_type"] == "hnsw"
    header = read_header(bundle / "index.faiss")
    assert (header.kind, header.ntotal, header.m, header.ef_construction) == ("hnsw", 1_500, 8, 16)
    assert verify_bundle(bundle).ok
    import_into(f"faiss:{tmp_path / 'dst'}", bundle)  # a new store, created with the bundle's settings
    target = open_repository(f"faiss:{tmp_path / 'dst'}")
    assert target.settings.index == "hnsw" and target.count() == 1_500
    checkpoint = next((tmp_path / "dst").glob("index.*.faiss"))
    carried = graph_of(bundle / "index.faiss")
    adopted = graph_of(checkpoint)
    assert all(np.array_equal(a, b) for a, b in zip(carried, adopted, strict=True)), "the graph was rebuilt"
    q = source.fetch([record_id(7)])[0].vector
    assert [h.id for h in target.query(q, 10)] == [h.id for h in source.query(q, 10)]
    source.close()
    target.close()


def test_a_graph_with_deleted_records_is_not_carried(tmp_path):
    source = open_repository(f"faiss:{tmp_path / 'src'}?{PARAMS}", dimensions=DIMS)
    source.bulk_load(synthetic_batches(600, DIMS))
    source.delete([record_id(i) for i in range(0, 600, 7)])  # dead labels stay in an HNSW graph
    result = export_snapshot(source, tmp_path / "snaps")
    source.close()
    assert manifest_of(result.path)["faiss_index_type"] == "flat"
    assert read_header(Path(result.path) / "index.faiss").kind == "flat"
    assert verify_bundle(result.path).ok
