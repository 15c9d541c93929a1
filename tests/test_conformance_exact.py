"""Conformance: ``query(..., exact=True)`` and ``set_ef_search`` on every backend.

The exact path must equal NumPy brute force (``reference.brute_force``: pgvector's distances, ties
by id) whatever the index. The HNSW stores here are built deliberately poor (``m=4,
ef_construction=8, ef_search=1``) so that an exact path that secretly asked the graph would fail;
one test checks that the approximate path of those stores really does miss.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest
from reference import brute_force, build_records, ranking_problems, with_options, without_settings

from engine.errors import InvalidInput
from engine.records import EmbeddingRecord, RecordBatch
from engine.repository import MAX_EF_SEARCH

METRICS = ["cosine", "l2", "inner_product"]
POOR = {"m": 4, "ef_construction": 8, "ef_search": 1}


def queries_for(records, n: int, seed: int) -> np.ndarray:
    """Stored vectors, stored vectors with a little noise, and random directions."""
    rng = np.random.default_rng(seed)
    vectors = np.stack([r.vector for r in records])
    stored = vectors[rng.choice(len(vectors), n, replace=False)]
    noisy = stored + 0.1 * rng.standard_normal(stored.shape).astype(np.float32)
    return np.concatenate([stored, noisy, rng.standard_normal((n, vectors.shape[1])).astype(np.float32)])


def exact_problems(store, records, query, k) -> list[str]:
    expected, every = brute_force(records, query, store.metric, k)
    return ranking_problems(store.query(query, k, exact=True), expected, every)


@pytest.mark.parametrize("metric", METRICS)
def test_exact_query_equals_brute_force_on_every_index(make_store, new_store_uri, metric):
    store = make_store(new_store_uri(metric=metric, **POOR))
    records = build_records(1500, dims=24, seed=61)
    store.bulk_load([RecordBatch.from_records(records)])
    for i, query in enumerate(queries_for(records, 8, seed=62)):
        for k in (1, 10, 37):
            problems = exact_problems(store, records, query, k)
            assert not problems, f"{store.backend}-{store.settings.index} {metric} query {i} k={k}: {problems}"


def test_the_poor_hnsw_graph_really_misses_so_the_exact_test_can_fail(make_store, new_store_uri, store_case):
    if store_case.index != "hnsw":
        pytest.skip("flat indexes are exact on the approximate path too")
    store = make_store(new_store_uri(**POOR))
    records = build_records(1500, dims=24, seed=61)
    store.bulk_load([RecordBatch.from_records(records)])
    misses = 0
    for query in queries_for(records, 8, seed=62):
        expected, _ = brute_force(records, query, store.metric, 10)
        misses += len({i for i, _ in expected} - {h.id for h in store.query(query, 10)})
    assert misses > 0, "the approximate path found every exact neighbour: this data cannot tell the paths apart"


def test_exact_query_ties_are_ordered_by_id_and_a_tie_cut_by_k_keeps_the_smallest_ids(make_store, new_store_uri):
    store = make_store(new_store_uri(metric="l2", **POOR))
    twin = np.full(8, 0.5, np.float32)
    others = build_records(200, seed=63, prefix="o")
    store.upsert([*others, *(EmbeddingRecord(f"t{i}", twin, {}) for i in (5, 3, 9, 1, 7, 2))])
    assert [h.id for h in store.query(twin, 3, exact=True)] == ["t1", "t2", "t3"]
    assert [h.id for h in store.query(twin, 6, exact=True)] == ["t1", "t2", "t3", "t5", "t7", "t9"]


def test_exact_query_never_returns_deleted_or_replaced_vectors(make_store, new_store_uri):
    store = make_store(new_store_uri(**POOR))
    records = build_records(800, dims=16, seed=64)
    store.bulk_load([RecordBatch.from_records(records)])
    query = records[5].vector
    first, _ = brute_force(records, query, store.metric, 20)
    gone = [rid for rid, _ in first[:6]]
    assert store.delete(gone) == 6
    moved = EmbeddingRecord(first[7][0], -query, {"moved": True}, version=2)  # now the farthest record
    store.upsert([moved])
    live = [moved if r.id == moved.id else r for r in records if r.id not in gone]
    for k in (5, 20):
        problems = exact_problems(store, live, query, k)
        assert not problems, f"{store.backend}-{store.settings.index} k={k}: {problems}"
    assert moved.id not in {h.id for h in store.query(query, 20, exact=True)}


def test_exact_query_with_k_beyond_the_store_returns_every_record(make_store):
    store = make_store()
    records = build_records(30, seed=65)
    store.upsert(records)
    hits = store.query(records[3].vector, 100, exact=True)
    assert sorted(h.id for h in hits) == sorted(r.id for r in records)
    assert hits[0].id == records[3].id and hits[0].score == pytest.approx(0.0, abs=1e-5)
    assert store.query(records[3].vector, 0, exact=True) == []


def test_exact_query_with_filters_is_the_filtered_exact_answer(make_store):
    store = make_store()
    records = build_records(300, seed=66)
    store.upsert(records)
    query = np.random.default_rng(67).standard_normal(8)
    expected, every = brute_force(records, query, store.metric, 10, {"group": "beta"})
    hits = store.query(query, 10, {"group": "beta"}, exact=True)
    assert not ranking_problems(hits, expected, every)


# --- the search effort ------------------------------------------------------------------------------


def test_set_ef_search_is_persisted_for_every_later_opening(make_store, new_store_uri):
    uri = new_store_uri(**POOR)
    store = make_store(uri)
    store.upsert(build_records(50))
    store.set_ef_search(123)
    assert store.settings.index_params["ef_search"] == 123
    assert len(store.query(np.ones(8), 10)) == 10
    make_store.close(store)
    plain = without_settings(uri)
    again = make_store(plain)
    assert again.settings.index_params["ef_search"] == 123
    assert again.stats()["index_params"]["ef_search"] == 123
    assert {k: again.settings.index_params[k] for k in ("m", "ef_construction")} == {"m": 4, "ef_construction": 8}
    make_store.close(again)
    override = make_store(with_options(plain, ef_search=77))  # a URI's own value wins for that opening only
    assert override.settings.index_params["ef_search"] == 77
    make_store.close(override)
    code = f"""
        from engine.repository import open_repository
        print(open_repository({plain!r}, create=False).settings.index_params["ef_search"])
    """
    out = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "123"


def test_set_ef_search_works_while_paused_and_refuses_values_out_of_range(make_store):
    store = make_store()
    store.upsert(build_records(5))
    store.pause_ingestion()
    store.set_ef_search(MAX_EF_SEARCH)
    assert store.settings.index_params["ef_search"] == MAX_EF_SEARCH
    for bad in (0, -1, MAX_EF_SEARCH + 1, 2.5, "40", True):
        with pytest.raises(InvalidInput, match="ef_search"):
            store.set_ef_search(bad)
    assert store.settings.index_params["ef_search"] == MAX_EF_SEARCH
    assert store.is_paused()


def test_a_higher_ef_search_finds_more_true_neighbours_in_this_and_later_openings(make_store, new_store_uri,
                                                                                 store_case):
    if store_case.index != "hnsw":
        pytest.skip("a flat index searches exhaustively whatever ef_search says")
    uri = new_store_uri(**POOR)
    store = make_store(uri)
    records = build_records(1500, dims=24, seed=61)
    store.bulk_load([RecordBatch.from_records(records)])
    queries = queries_for(records, 8, seed=62)
    truth = [{i for i, _ in brute_force(records, q, store.metric, 10)[0]} for q in queries]

    def found(repo) -> int:
        return sum(len(t & {h.id for h in repo.query(q, 10)}) for q, t in zip(queries, truth, strict=True))

    before = found(store)
    store.set_ef_search(400)
    after = found(store)
    assert after > before, f"ef_search 1 -> 400 found {before} -> {after} of {10 * len(queries)}"
    make_store.close(store)
    assert found(make_store(without_settings(uri))) == after
