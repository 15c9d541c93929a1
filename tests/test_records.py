"""Unit tests for engine.records: validation, normalization, canonical JSON, batches, conflict rules."""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from engine.errors import InvalidRecord
from engine.records import (
    EmbeddingRecord,
    OnConflict,
    RecordBatch,
    canonical_json,
    dedupe_batch,
    empty_batch,
    from_micros,
    make_batch,
    to_micros,
    validate_batch,
    vector_sha256,
    wins,
)

TS = datetime(2024, 1, 2, 3, 4, 5, 678901, tzinfo=UTC)


def rec(rid="a", vector=(1.0, 2.0, 3.0), **kw) -> EmbeddingRecord:
    return EmbeddingRecord(id=rid, vector=np.asarray(vector), **kw)


# --- EmbeddingRecord ------------------------------------------------------------------------------


@pytest.mark.parametrize("kwargs, problem", [
    ({"id": ""}, "non-empty"),
    ({"id": None}, "non-empty"),
    ({"id": 5}, "non-empty"),
    ({"id": "a\x00b"}, "NUL"),
    ({"vector": [1.0, float("nan")]}, "NaN or Inf"),
    ({"vector": [float("inf"), 1.0]}, "NaN or Inf"),
    ({"vector": [float("-inf")]}, "NaN or Inf"),
    ({"vector": []}, "1-D and non-empty"),
    ({"vector": [[1.0, 2.0]]}, "1-D and non-empty"),
    ({"vector": ["x", "y"]}, "not numeric"),
    ({"metadata": [1, 2]}, "JSON object"),
    ({"metadata": {"s": {1, 2}}}, "not plain JSON"),
    ({"metadata": {"o": object()}}, "not plain JSON"),
    ({"metadata": {"f": float("nan")}}, "not plain JSON"),
    ({"metadata": {1: "int key"}}, None),
    ({"version": True}, "integer"),
    ({"version": 1.0}, "integer"),
    ({"version": -1}, "between"),
    ({"version": 2**63}, "between"),
    ({"source_hash": None}, "source_hash"),
    ({"created_ts": datetime(2024, 1, 1)}, "naive"),
    ({"updated_ts": datetime(2024, 1, 1)}, "naive"),
    ({"created_ts": "2024-01-01T00:00:00Z"}, "datetime"),
], ids=lambda v: repr(v)[:40])
def test_invalid_record_is_refused_naming_its_id(kwargs, problem):
    fields = {"id": "rec-7", "vector": [1.0, 2.0], **kwargs}
    if "metadata" in kwargs and kwargs["metadata"] == {1: "int key"}:
        # json.dumps turns int keys into strings: canonical JSON accepts it; a later read gives "1".
        record = EmbeddingRecord(**fields)
        assert canonical_json(record.metadata) == '{"1":"int key"}'
        return
    with pytest.raises(InvalidRecord) as info:
        EmbeddingRecord(**fields)
    assert info.value.record_id == fields["id"]
    assert repr(fields["id"]) in str(info.value)
    if problem:
        assert problem in str(info.value)


def test_record_normalizes_vector_to_contiguous_float32():
    r = rec(vector=np.arange(10, dtype=np.float64)[::2])
    assert r.vector.dtype == np.float32 and r.vector.flags.c_contiguous
    assert r.vector.tolist() == [0.0, 2.0, 4.0, 6.0, 8.0]
    assert rec(vector=[1, 2]).vector.dtype == np.float32


def test_record_keeps_timestamps_in_utc_with_microseconds():
    plus2 = timezone(timedelta(hours=2))
    r = rec(created_ts=datetime(2024, 1, 2, 5, 4, 5, 678901, tzinfo=plus2), updated_ts=TS)
    assert r.created_ts == TS and r.created_ts.tzinfo is UTC and r.created_ts.microsecond == 678901
    assert r.updated_ts.tzinfo is UTC
    assert rec().created_ts.tzinfo is not None


def test_record_version_accepts_numpy_integers_and_stores_int():
    r = rec(version=np.int64(7))
    assert r.version == 7 and type(r.version) is int


def test_record_equality_compares_every_field_and_records_are_unhashable():
    a = rec(metadata={"x": 1}, created_ts=TS, updated_ts=TS)
    assert a == rec(metadata={"x": 1}, created_ts=TS, updated_ts=TS)
    assert a != rec(metadata={"x": 1.0}, created_ts=TS, updated_ts=TS)  # 1 and 1.0 are different JSON text
    assert a != rec(vector=(1.0, 2.0, 3.5), metadata={"x": 1}, created_ts=TS, updated_ts=TS)
    assert a != rec(metadata={"x": 1}, version=2, created_ts=TS, updated_ts=TS)
    assert a != rec(metadata={"x": 1}, source_hash="h", created_ts=TS, updated_ts=TS)
    assert a != rec(metadata={"x": 1}, created_ts=TS, updated_ts=TS + timedelta(microseconds=1))
    with pytest.raises(TypeError):
        hash(a)


# --- canonical JSON, timestamps, hashes -----------------------------------------------------------


def test_canonical_json_sorts_keys_has_no_whitespace_and_keeps_unicode():
    assert canonical_json({"b": [1, 2.0], "a": {"z": None, "y": True}, "é": "😀"}) == \
        '{"a":{"y":true,"z":null},"b":[1,2.0],"é":"😀"}'


@pytest.mark.parametrize("value", [{"x": float("nan")}, {"x": float("inf")}, {"x": {1, 2}}, {"x": b"bytes"}])
def test_canonical_json_refuses_what_is_not_plain_json(value):
    with pytest.raises(InvalidRecord):
        canonical_json(value, record_id="r")


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False, allow_infinity=False)
    | st.text(max_size=5),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=3), inner, max_size=3),
    max_leaves=10)


@settings(max_examples=100, deadline=None)
@given(st.dictionaries(st.text(max_size=4), JSON, max_size=4))
def test_canonical_json_is_a_fixed_point_of_parse_and_serialize(value):
    text = canonical_json(value)
    assert canonical_json(json.loads(text)) == text


@settings(max_examples=200, deadline=None)
@given(st.datetimes(min_value=datetime(1, 1, 2), max_value=datetime(9999, 12, 30),
                    timezones=st.sampled_from([UTC, timezone(timedelta(hours=-7, minutes=-30))])))
def test_microsecond_timestamps_round_trip_exactly(ts):
    us = to_micros(ts, record_id="r", name="ts")
    back = from_micros(us)
    assert back == ts and back.tzinfo is UTC


def test_to_micros_counts_from_the_unix_epoch_and_refuses_naive():
    assert to_micros(datetime(1970, 1, 1, 0, 0, 1, 5, tzinfo=UTC), record_id="r", name="t") == 1_000_005
    assert to_micros(datetime(1969, 12, 31, 23, 59, 59, tzinfo=UTC), record_id="r", name="t") == -1_000_000
    with pytest.raises(InvalidRecord, match="naive"):
        to_micros(datetime(2024, 1, 1), record_id="r", name="t")


def test_vector_sha256_hashes_little_endian_float32_bytes():
    v = np.array([1.0, -2.5, 3.25], dtype=np.float64)
    expected = hashlib.sha256(np.array([1.0, -2.5, 3.25], dtype="<f4").tobytes()).hexdigest()
    assert vector_sha256(v) == expected
    assert vector_sha256(np.array([1.0, -2.5, 3.25], dtype=">f4")) == expected


# --- RecordBatch ----------------------------------------------------------------------------------


def three_records() -> list[EmbeddingRecord]:
    return [rec("c", [1, 2], metadata={"n": 3}, version=3, source_hash="h3", created_ts=TS, updated_ts=TS),
            rec("a", [3, 4], metadata={"n": 1, "é": [1.0]}, created_ts=TS - timedelta(days=40000), updated_ts=TS),
            rec("b", [5, 6], created_ts=TS, updated_ts=TS + timedelta(microseconds=1))]


def test_batch_from_records_round_trips_every_record():
    records = three_records()
    batch = RecordBatch.from_records(records)
    assert len(batch) == 3 and batch.dimensions == 2
    assert batch.vectors.dtype == np.float32 and batch.vectors.flags.c_contiguous
    assert batch.metadata[1] == canonical_json(records[1].metadata)
    assert batch.versions.dtype == np.int64 and batch.created_us.dtype == np.int64
    assert batch.records() == records
    assert batch.record(1) == records[1]


def test_batch_take_and_sorted_by_id_keep_rows_together():
    batch = RecordBatch.from_records(three_records())
    ordered = batch.sorted_by_id()
    assert ordered.ids == ["a", "b", "c"]
    assert ordered.records() == sorted(three_records(), key=lambda r: r.id)
    assert batch.take([2, 0]).records() == [three_records()[2], three_records()[0]]
    assert ordered.sorted_by_id() is ordered


def test_batch_vector_hashes_match_vector_sha256():
    batch = RecordBatch.from_records(three_records())
    assert batch.vector_hashes() == [vector_sha256(r.vector) for r in three_records()]


def test_batch_with_mixed_dimensions_names_the_odd_record():
    with pytest.raises(InvalidRecord) as info:
        RecordBatch.from_records([rec("a", [1, 2]), rec("b", [1, 2]), rec("odd", [1, 2, 3])])
    assert info.value.record_id == "odd"


def test_empty_batches():
    assert len(RecordBatch.from_records([])) == 0
    empty = empty_batch(4)
    assert empty.dimensions == 4 and empty.records() == []


def columns(n=2, **over):
    base = dict(ids=[f"id{i}" for i in range(n)], vectors=np.ones((n, 3)), metadata=["{}"] * n,
                versions=[1] * n, source_hashes=[""] * n, created_us=[0] * n, updated_us=[0] * n)
    return {**base, **over}


@pytest.mark.parametrize("over, bad_id", [
    ({"vectors": np.array([[1, 2, 3], [np.nan, 0, 0]])}, "id1"),
    ({"vectors": np.array([[1, 2, 3], [np.inf, 0, 0]])}, "id1"),
    ({"ids": ["id0", ""]}, ""),
    ({"ids": ["id0", "a\x00"]}, "a\x00"),
    ({"metadata": ["{}", "not json"]}, "id1"),
    ({"metadata": ["{}", "[1]"]}, "id1"),
    ({"metadata": ["{}", '{"b":1,"a":2}']}, "id1"),
    ({"metadata": ["{}", '{"a": 1}']}, "id1"),
    ({"metadata": ["{}", '{"a":NaN}']}, "id1"),
    ({"versions": [1, -5]}, "id1"),
], ids=lambda v: repr(v)[:40])
def test_make_batch_validation_names_the_bad_row(over, bad_id):
    with pytest.raises(InvalidRecord) as info:
        make_batch(**columns(**over))
    assert info.value.record_id == bad_id
    make_batch(**columns(**over), validate=False)  # unvalidated construction is allowed


@pytest.mark.parametrize("over", [{"vectors": np.ones((3, 3))}, {"vectors": np.ones(2)}, {"metadata": ["{}"]},
                                  {"versions": [1]}, {"updated_us": [0, 0, 0]}])
def test_make_batch_refuses_columns_of_different_lengths(over):
    with pytest.raises(InvalidRecord):
        make_batch(**columns(**over))


def test_validate_batch_checks_store_dimensions_and_zero_vectors_under_cosine():
    batch = make_batch(**columns(vectors=np.array([[1, 2, 3], [0, 0, 0]])))
    validate_batch(batch, dimensions=3, metric="l2")
    with pytest.raises(InvalidRecord, match="dimensions"):
        validate_batch(batch, dimensions=4)
    with pytest.raises(InvalidRecord) as info:
        validate_batch(batch, metric="cosine")
    assert info.value.record_id == "id1" and "zeros" in str(info.value)


# --- conflict rules -------------------------------------------------------------------------------


@pytest.mark.parametrize("rule, older, equal, newer", [
    (OnConflict.NEWER_OR_EQUAL, False, True, True),
    (OnConflict.VERSION, False, False, True),
    (OnConflict.KEEP, False, False, False),
    (OnConflict.OVERWRITE, True, True, True),
    (OnConflict.ERROR, False, False, False),
])
def test_wins_decides_by_rule_and_version(rule, older, equal, newer):
    assert (wins(1, 2, rule), wins(2, 2, rule), wins(3, 2, rule)) == (older, equal, newer)


def dup_batch():
    return make_batch(ids=["a", "b", "a", "a"], vectors=np.arange(8, dtype=np.float32).reshape(4, 2) + 1,
                      metadata=['{"n":0}', '{"n":1}', '{"n":2}', '{"n":3}'], versions=[2, 1, 3, 3],
                      source_hashes=[""] * 4, created_us=[0] * 4, updated_us=[0] * 4)


@pytest.mark.parametrize("rule, winner_meta", [
    (OnConflict.NEWER_OR_EQUAL, '{"n":3}'), (OnConflict.VERSION, '{"n":2}'), (OnConflict.KEEP, '{"n":0}'),
    (OnConflict.OVERWRITE, '{"n":3}'),
])
def test_dedupe_batch_resolves_repeated_ids_as_sequential_writes(rule, winner_meta):
    out = dedupe_batch(dup_batch(), rule)
    assert sorted(out.ids) == ["a", "b"]
    assert out.metadata[out.ids.index("a")] == winner_meta


def test_dedupe_batch_with_error_rule_refuses_repeats_and_passes_unique_batches_through():
    with pytest.raises(InvalidRecord) as info:
        dedupe_batch(dup_batch(), OnConflict.ERROR)
    assert info.value.record_id == "a"
    unique = make_batch(**columns())
    assert dedupe_batch(unique, OnConflict.ERROR) is unique
