"""Conformance: nearest-neighbour queries and metadata filters, each compared to NumPy brute force.

Expected answers come from ``reference.brute_force`` and ``engine.repository.filters.matches``,
never from another backend, so every backend gives the same answer or the failing one is named.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from reference import brute_force, build_records, ranking_problems, recall

from engine.errors import InvalidFilter, ProcosError
from engine.records import EmbeddingRecord, RecordBatch

METRICS = ["cosine", "l2", "inner_product"]


def rec(rid: str, vector, **metadata) -> EmbeddingRecord:
    return EmbeddingRecord(id=rid, vector=np.asarray(vector, np.float32), metadata=metadata)


def assert_exact(store, records, query, k, filters=None) -> None:
    expected, every = brute_force(records, query, store.metric, k, filters)
    hits = store.query(query, k, filters=filters)
    problems = ranking_problems(hits, expected, every)
    assert not problems, f"{store.backend} {store.metric} k={k} filters={filters}: " + "; ".join(problems)
    for hit in hits:
        assert hit.metadata == by_id(records)[hit.id].metadata


def by_id(records):
    return {r.id: r for r in records}


# --- unfiltered -----------------------------------------------------------------------------------


@pytest.mark.parametrize("metric", METRICS)
def test_flat_index_returns_the_exact_top_k_with_metric_distances(make_store, store_case, metric):
    if store_case.index != "flat":
        pytest.skip("HNSW is approximate: see test_hnsw_index_recall_is_at_least_0_9")
    store = make_store(metric=metric)
    records = build_records(300, dims=16, seed=11)
    store.upsert(records)
    rng = np.random.default_rng(12)
    for query in [*rng.standard_normal((4, 16)), records[17].vector]:
        assert_exact(store, records, query, 10)
    assert_exact(store, records, rng.standard_normal(16), 1)


@pytest.mark.parametrize("metric", METRICS)
def test_hnsw_index_recall_is_at_least_0_9(make_store, store_case, metric):
    if store_case.index != "hnsw":
        pytest.skip("flat indexes are exact: see test_flat_index_returns_the_exact_top_k_with_metric_distances")
    store = make_store(metric=metric)
    records = build_records(2000, dims=32, seed=21)
    store.upsert(records)
    queries = np.random.default_rng(22).standard_normal((20, 32)).astype(np.float32)
    total = 0.0
    for query in queries:
        expected, every = brute_force(records, query, metric, 10)
        hits = store.query(query, 10)
        assert len(hits) == 10
        scores = [h.score for h in hits]
        assert scores == sorted(scores), "hits are not closest first"
        for h in hits:
            assert h.score == pytest.approx(every[h.id], rel=1e-4, abs=1e-4), f"score of {h.id} is not its distance"
        total += recall([h.id for h in hits], [i for i, _ in expected])
    assert total / len(queries) >= 0.9, f"{store.backend}-hnsw {metric}: mean recall@10 {total / len(queries):.3f}"


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
def test_equal_distances_are_ordered_by_id(make_store, metric):
    store = make_store(metric=metric)
    rng = np.random.default_rng(31)
    twin = 10 * rng.standard_normal(8).astype(np.float32)  # long, so its own dot product is the largest
    others = build_records(40, dims=8, seed=32, prefix="o")
    store.upsert([*others, *(rec(rid, twin) for rid in ["t-d", "t-b", "t-e", "t-a", "t-c"])])
    hits = store.query(twin, 5)
    assert [h.id for h in hits] == ["t-a", "t-b", "t-c", "t-d", "t-e"]
    assert len({h.score for h in hits}) == 1


def test_a_tie_cut_by_k_keeps_the_smallest_ids(make_store, store_case):
    if store_case.index != "flat":
        pytest.skip("HNSW may return any of several equally close records")
    store = make_store(metric="l2")
    twin = np.full(8, 0.5, np.float32)
    store.upsert([*build_records(30, seed=33, prefix="o"), *(rec(f"t{i}", twin) for i in (5, 3, 9, 1, 7, 2))])
    assert [h.id for h in store.query(twin, 3)] == ["t1", "t2", "t3"]


def test_k_larger_than_the_store_returns_every_record(make_store):
    store = make_store()
    records = build_records(12, seed=34)
    store.upsert(records)
    hits = store.query(records[0].vector, 100)
    assert sorted(h.id for h in hits) == sorted(r.id for r in records)
    assert hits[0].id == records[0].id
    assert hits[0].score == pytest.approx(0.0, abs=1e-5)


# --- filters --------------------------------------------------------------------------------------

LANGS = ("en", "de", "fr")


def filter_records(n: int, dims: int, seed: int) -> list[EmbeddingRecord]:
    rng = np.random.default_rng(seed)
    metas = []
    for i in range(n):
        meta = {"lang": LANGS[i % 3], "tier": [1, 2, 1.0, 3][i % 4], "flag": bool(i % 2), "i": i}
        if i % 5 == 0:
            meta["opt"] = None
        if i % 7 == 0:
            del meta["lang"]
        if i % 11 == 0:
            meta["tier"] = True
        metas.append(meta)
    return build_records(n, dims=dims, seed=int(rng.integers(1 << 30)), metadata=metas)


FILTERS = [
    {"lang": "en"},
    {"lang": {"$in": ["en", "de"]}},
    {"lang": "en", "tier": 2},
    {"tier": 1},
    {"tier": 1.0},
    {"tier": True},
    {"flag": True},
    {"flag": 1},
    {"opt": None},
    {"tier": {"$in": [3, True]}, "flag": False},
    {"absent": 1},
    {"lang": "xx"},
    {},
]


@pytest.mark.parametrize("metric", METRICS)
def test_filtered_query_is_exact_over_matching_records(make_store, metric):
    store = make_store(metric=metric)
    records = filter_records(240, 16, seed=41)
    store.upsert(records)
    rng = np.random.default_rng(42)
    query = rng.standard_normal(16)
    for flt in FILTERS:
        assert_exact(store, records, query, 10, flt)
        assert_exact(store, records, query, 1000, flt)


def test_json_equality_one_equals_one_point_zero_true_is_not_one_missing_never_matches(make_store):
    values = {"int1": 1, "float1": 1.0, "true": True, "false": False, "str1": "1", "zero": 0,
              "null": None, "list": [1], "obj": {"v": 1}}
    rng = np.random.default_rng(43)
    records = [rec(name, rng.standard_normal(8), v=value) for name, value in values.items()]
    records.append(rec("missing", rng.standard_normal(8), other=1))
    store = make_store()
    store.upsert(records)
    expect = [  # a list, not a dict: 1, 1.0 and True are the same dict key in Python
        (1, {"int1", "float1"}), (1.0, {"int1", "float1"}), (True, {"true"}), (False, {"false"}),
        ("1", {"str1"}), (0, {"zero"}), (None, {"null"}), ("true", set()),
    ]
    for value, ids in expect:
        got = {h.id for h in store.query(np.ones(8), 50, filters={"v": value})}
        assert got == ids, f"{store.backend}: filter v={value!r} matched {sorted(got)}, expected {sorted(ids)}"
    got = {h.id for h in store.query(np.ones(8), 50, filters={"v": {"$in": [1, None, "1"]}})}
    assert got == {"int1", "float1", "null", "str1"}
    got = {h.id for h in store.query(np.ones(8), 50, filters={"v": 1, "other": 1})}
    assert got == set()


def test_selective_filter_still_returns_k_results(make_store):
    records = build_records(3000, dims=16, seed=51)
    rare = set(range(7, 3000, 250))  # 12 records
    metas = [{"rare": True, "i": i} if i in rare else {"rare": False, "i": i} for i in range(3000)]
    records = [EmbeddingRecord(r.id, r.vector, m) for r, m in zip(records, metas, strict=True)]
    assert len(rare) == 12
    store = make_store()
    store.bulk_load([RecordBatch.from_records(records)])
    query = np.random.default_rng(52).standard_normal(16)
    assert_exact(store, records, query, 10, {"rare": True})
    assert_exact(store, records, query, 10, {"i": {"$in": [3, 2999, 1500]}})


@pytest.mark.parametrize("bad", [
    {"x": {"$gt": 1}}, {"x": {"$in": []}}, {"x": {"$in": 1}}, {"x": [1, 2]}, {"x": {"a": 1}},
    {"": 1}, {"x": float("nan")}, {"x": float("inf")}, "lang=en", ["x"], {"x": {"$in": [1], "$nin": [2]}},
    {'a"b': 1},
], ids=repr)
def test_invalid_filter_raises_invalid_filter(make_store, bad):
    store = make_store()
    store.upsert(build_records(5))
    with pytest.raises(InvalidFilter):
        store.query(np.ones(8), 3, filters=bad)


# --- property: filter semantics equal the reference on random data --------------------------------

SCALARS = st.sampled_from(["en", "de", "é", "1", "true", "", 1, 1.0, 2, 0, -3, 2.5, True, False, None])
VALUES = st.one_of(SCALARS, st.lists(SCALARS, max_size=2), st.dictionaries(st.sampled_from(["a", "v"]),
                                                                            SCALARS, max_size=1))
FIELDS = st.sampled_from(["a", "b", "c", "é"])
METADATA = st.dictionaries(FIELDS, VALUES, max_size=3)
CONDITION = st.one_of(SCALARS, st.fixed_dictionaries({"$in": st.lists(SCALARS, min_size=1, max_size=3)}))
FILTER = st.dictionaries(st.one_of(FIELDS, st.just("zz")), CONDITION, max_size=2)


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(metas=st.lists(METADATA, min_size=1, max_size=12), filters=st.lists(FILTER, min_size=1, max_size=4))
def test_filter_semantics_equal_the_reference_on_random_metadata(make_store, new_store_uri, metas, filters):
    store = make_store(new_store_uri())
    try:
        records = build_records(len(metas), dims=8, seed=len(metas), metadata=metas)
        store.upsert(records)
        query = np.ones(8)
        for flt in filters:
            assert_exact(store, records, query, len(records), flt)
    finally:
        make_store.close(store)


@pytest.mark.parametrize("bad", [np.ones(7), np.ones(9), np.array([1.0, np.nan, 0, 0, 0, 0, 0, 0])],
                         ids=["7-dims", "9-dims", "nan"])
def test_query_with_an_unusable_vector_raises_a_procos_error(make_store, bad):
    store = make_store()
    store.upsert(build_records(5))
    with pytest.raises(ProcosError):
        store.query(bad, 3)
