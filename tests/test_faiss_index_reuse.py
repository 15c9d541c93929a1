"""A FAISS target adopts a bundle's index.faiss when it matches every row, and builds its own otherwise."""

from __future__ import annotations

from pathlib import Path

import faiss
import numpy as np
import pytest

from engine.records import OnConflict
from engine.repository import DEFAULT_HNSW, open_repository
from engine.repository.faiss_prebuilt import PrebuiltIndex
from engine.snapshot.faiss_file import FaissIndexBuilder
from engine.synthetic import synthetic_batches


def bundle_index(path: Path, batches, metric: str, index: str) -> Path:
    builder = FaissIndexBuilder(path, 16, metric, index, dict(DEFAULT_HNSW))  # what a default store is built with
    for batch in batches:
        builder.add(batch.vectors)
    builder.finish()
    return path


@pytest.mark.parametrize("index", ["flat", "hnsw"])
@pytest.mark.parametrize("method", ["replace_all", "bulk_load"])
def test_matching_index_is_adopted_and_answers_like_a_fresh_build(index: str, method: str, tmp_path: Path,
                                                                   monkeypatch):
    batches = list(synthetic_batches(300, 16, seed=3, batch_size=70))
    prebuilt = bundle_index(tmp_path / "index.faiss", batches, "cosine", index)
    adopted = []
    original = PrebuiltIndex.adopt
    monkeypatch.setattr(PrebuiltIndex, "adopt", lambda self, *a: adopted.append(r := original(self, *a)) or r)
    repo = open_repository(f"faiss:{tmp_path / 'a'}?index={index}", dimensions=16)
    load = getattr(repo, method)
    (load(batches, search_index=str(prebuilt)) if method == "replace_all"
     else load(batches, OnConflict.VERSION, search_index=str(prebuilt)))
    assert adopted and adopted[-1] is not None, "the matching index was not adopted"
    fresh = open_repository(f"faiss:{tmp_path / 'b'}?index={index}", dimensions=16)
    fresh.bulk_load(batches)
    queries = np.random.default_rng(1).standard_normal((10, 16)).astype(np.float32)
    for q in queries:
        assert [h.id for h in repo.query(q, 5)] == [h.id for h in fresh.query(q, 5)]
    repo.close()
    reopened = open_repository(f"faiss:{tmp_path / 'a'}")  # the adopted index was checkpointed
    assert reopened.count() == 300 and [h.id for h in reopened.query(queries[0], 5)] == \
        [h.id for h in fresh.query(queries[0], 5)]
    reopened.close()
    fresh.close()


def test_an_index_that_does_not_match_the_rows_is_ignored(tmp_path: Path):
    batches = list(synthetic_batches(120, 16, seed=3))
    other = list(synthetic_batches(120, 16, seed=4))  # same ids, other vectors
    wrong = bundle_index(tmp_path / "index.faiss", other, "cosine", "flat")
    repo = open_repository(f"faiss:{tmp_path / 'a'}?index=flat", dimensions=16)
    repo.replace_all(batches, search_index=str(wrong))
    for batch in batches:
        for i in (0, 50, 119):
            hit = repo.query(batch.vectors[i], 1)[0]
            assert hit.id == batch.ids[i] and hit.score < 1e-5  # built from the rows, not from the file
    repo.close()


def test_index_with_other_parameters_or_garbage_is_not_adopted(tmp_path: Path):
    batches = list(synthetic_batches(50, 16, seed=3))
    settings = open_repository(f"faiss:{tmp_path / 's'}?index=hnsw&m=8", dimensions=16).settings
    hnsw16 = bundle_index(tmp_path / "hnsw16.faiss", batches, "cosine", "hnsw")
    assert PrebuiltIndex(hnsw16, settings).index is None  # built with m=16, the store uses m=8
    (tmp_path / "garbage.faiss").write_bytes(b"not an index")
    assert PrebuiltIndex(tmp_path / "garbage.faiss", settings).index is None
    l2 = faiss.IndexFlatL2(16)
    faiss.write_index(l2, str(tmp_path / "l2.faiss"))
    cosine_flat = open_repository(f"faiss:{tmp_path / 'c'}?index=flat", dimensions=16).settings
    assert PrebuiltIndex(tmp_path / "l2.faiss", cosine_flat).index is None  # metric differs


@pytest.mark.parametrize("mode", ["replace", "append"])
def test_import_of_a_faiss_bundle_into_a_faiss_store_reuses_its_index(mode: str, tmp_path: Path, monkeypatch):
    from engine import api

    source = f"faiss:{tmp_path / 'src'}?index=flat"
    api.seed_store(source, 400, 16)
    bundle = api.export_snapshot(source, tmp_path / "snaps")["path"]
    adopted = []
    original = PrebuiltIndex.adopt
    monkeypatch.setattr(PrebuiltIndex, "adopt", lambda self, *a: adopted.append(r := original(self, *a)) or r)
    result = api.import_snapshot(bundle, f"faiss:{tmp_path / 'dst'}", mode=mode)
    assert result["imported"] == 400
    assert len(adopted) == 1 and adopted[0] is not None
    check = api.validate(source, f"faiss:{tmp_path / 'dst'}", queries=10, k=5)
    assert check["passed"], check["failures"]


def test_an_hnsw_store_exports_its_graph_and_an_hnsw_importer_adopts_it(tmp_path: Path, monkeypatch):
    from engine import api

    source = f"faiss:{tmp_path / 'src'}?index=hnsw&m=12"
    api.seed_store(source, 300, 16)
    bundle = Path(api.export_snapshot(source, tmp_path / "snaps")["path"])
    written = faiss.read_index(str(bundle / "index.faiss"))
    assert isinstance(written, faiss.IndexHNSWFlat) and written.ntotal == 300  # the source's graph, row order
    adopted = []
    original = PrebuiltIndex.adopt
    monkeypatch.setattr(PrebuiltIndex, "adopt", lambda self, *a: adopted.append(r := original(self, *a)) or r)
    api.import_snapshot(str(bundle), f"faiss:{tmp_path / 'dst'}")
    assert len(adopted) == 1 and adopted[0] is not None, "the carried graph was not adopted"
    target = open_repository(f"faiss:{tmp_path / 'dst'}")
    assert target.settings.index == "hnsw" and target.settings.index_params["m"] == 12
    target.close()
    assert api.validate(source, f"faiss:{tmp_path / 'dst'}", queries=10, k=5)["passed"]
