"""The exact answers a search tuning and a bundle side rely on: ``engine.validation.truth.brute_force``
streams batches and must give what a whole-store sort by (distance, id) gives, whatever the batch size,
with ties broken by id."""

from __future__ import annotations

import numpy as np
import pytest
from reference import brute_force as reference
from reference import build_records

from engine.records import RecordBatch
from engine.validation.truth import brute_force


def batches(records, size):
    for start in range(0, len(records), size):
        yield RecordBatch.from_records(records[start:start + size])


@pytest.mark.parametrize("metric", ["cosine", "l2", "inner_product"])
@pytest.mark.parametrize("size", [1, 7, 64, 1000])
def test_streamed_answers_equal_a_whole_sort_at_any_batch_size(metric, size):
    records = build_records(300, 6, seed=4)
    queries = np.random.default_rng(9).standard_normal((12, 6)).astype(np.float32)
    got = brute_force(batches(records, size), queries, 10, metric)
    for q, hits in zip(queries, got, strict=True):
        expected, _ = reference(records, q, metric, 10)
        assert [h.id for h in hits] == [rid for rid, _ in expected]
        assert np.allclose([h.score for h in hits], [d for _, d in expected], rtol=1e-9, atol=1e-12)


def test_ties_at_the_kth_place_are_broken_by_id_across_batches():
    base = build_records(40, 4, seed=1)
    twin = base[0].vector
    records = [r if i % 2 else type(r)(**{**r.__dict__, "vector": twin}) for i, r in enumerate(base)]  # 20 equal
    records = records[20:] + records[:20]  # the batch holding the lower ids comes second
    got = brute_force(batches(records, 20), twin[None, :], 5, "l2")[0]
    assert [h.id for h in got] == [base[i].id for i in range(0, 10, 2)]  # the first 5 of the 20 ties, by id
    assert all(h.score == 0.0 for h in got)


def test_fewer_records_than_k_and_no_queries():
    records = build_records(3, 4)
    got = brute_force(batches(records, 2), np.ones((2, 4), np.float32), 10, "cosine")
    assert [len(hits) for hits in got] == [3, 3]
    assert brute_force(batches(records, 2), np.zeros((0, 4), np.float32), 10, "cosine") == []
