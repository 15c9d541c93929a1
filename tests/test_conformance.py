"""The VectorRepository conformance suite: writes, reads, settings. Every test runs on every backend.

Queries and filters are in ``test_conformance_queries.py``; behaviour across processes (freeze
flag, write lock) in ``test_conformance_processes.py``. A backend is done when all three pass.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import numpy as np
import pytest
from reference import build_records, with_options, without_settings

from engine.errors import ConflictError, IngestionPaused, InvalidRecord, SettingsMismatch, StoreError
from engine.records import EmbeddingRecord, OnConflict, RecordBatch, canonical_json, make_batch
from engine.repository import VectorRepository


def rec(rid: str, vector, version: int = 1, **metadata) -> EmbeddingRecord:
    return EmbeddingRecord(id=rid, vector=np.asarray(vector, np.float32), metadata=metadata, version=version)


def stored_ids(store) -> list[str]:
    return [r.id for r in store.iter_records()]


def only(store, rid: str) -> EmbeddingRecord:
    got = store.fetch([rid])
    assert len(got) == 1, f"fetch([{rid!r}]) returned {len(got)} records"
    return got[0]


# --- opening and settings -------------------------------------------------------------------------


def test_store_implements_the_protocol_and_names_its_backend(make_store, store_case):
    store = make_store()
    assert isinstance(store, VectorRepository)
    assert store.backend == store_case.backend
    assert store.settings.index == store_case.index
    assert store.metric == "cosine"
    assert isinstance(store.uri, str) and store.uri


def test_new_store_takes_dimensions_from_first_upsert(make_store):
    store = make_store()
    assert store.dimensions is None
    assert store.count() == 0
    assert store.sequence() == 0
    store.upsert(build_records(5, dims=12))
    assert store.dimensions == 12
    assert store.settings.dimensions == 12
    with pytest.raises(InvalidRecord):
        store.upsert(build_records(1, dims=8, prefix="other"))
    assert store.count() == 5


def test_metric_and_index_are_taken_from_uri_options(make_store, new_store_uri):
    store = make_store(new_store_uri(with_index=False, metric="l2", index="flat"))
    assert (store.metric, store.settings.index) == ("l2", "flat")


def test_metric_and_index_are_taken_from_keywords(make_store, new_store_uri):
    store = make_store(new_store_uri(with_index=False), metric="inner_product", index="flat")
    assert (store.metric, store.settings.index) == ("inner_product", "flat")


def test_conflicting_uri_option_and_keyword_raise_settings_mismatch(make_store, new_store_uri):
    with pytest.raises(SettingsMismatch):
        make_store(new_store_uri(metric="l2"), metric="cosine")


def test_reopened_store_keeps_content_and_takes_settings_from_the_store(make_store, new_store_uri, store_case):
    uri = new_store_uri(metric="inner_product")
    store = make_store(uri)
    records = build_records(30, dims=8, seed=3)
    store.upsert(records)
    store.delete([records[0].id])
    seq = store.sequence()
    make_store.close(store)

    again = make_store(without_settings(uri))
    assert again.metric == "inner_product"
    assert again.settings.index == store_case.index
    assert again.dimensions == 8
    assert again.count() == 29
    assert again.sequence() == seq
    assert again.fetch([r.id for r in records]) == records[1:]
    assert again.fetch([records[0].id]) == []
    hits = again.query(records[5].vector, 3)
    assert len(hits) == 3 and hits[0].id == records[5].id
    assert {h.id for h in again.query(records[0].vector, 100)} == {r.id for r in records[1:]}
    make_store.close(again)

    for wrong in ({"metric": "l2"}, {"dimensions": 16}, {"index": "flat" if store_case.index == "hnsw" else "hnsw"}):
        with pytest.raises(SettingsMismatch):
            make_store(without_settings(uri), **wrong)


def test_hnsw_build_parameters_are_kept_and_ef_search_may_change(make_store, new_store_uri, store_case):
    if store_case.index != "hnsw":
        pytest.skip("flat indexes have no HNSW parameters")
    uri = new_store_uri(m=8, ef_construction=32)
    store = make_store(uri)
    store.upsert(build_records(50, dims=8))
    assert (store.settings.index_params["m"], store.settings.index_params["ef_construction"]) == (8, 32)
    make_store.close(store)
    again = make_store(without_settings(uri))
    assert (again.settings.index_params["m"], again.settings.index_params["ef_construction"]) == (8, 32)
    make_store.close(again)
    tuned = make_store(with_options(without_settings(uri), ef_search=100))
    assert tuned.settings.index_params["ef_search"] == 100
    assert len(tuned.query(np.ones(8), 10)) == 10
    make_store.close(tuned)
    with pytest.raises(SettingsMismatch):
        make_store(with_options(without_settings(uri), m=16))


# --- records round-trip ---------------------------------------------------------------------------


def tricky_records() -> list[EmbeddingRecord]:
    plus2 = timezone(timedelta(hours=2))
    return [
        EmbeddingRecord(
            id="tricky-1", vector=np.array([1e-7, -0.0, 3.25, -1e6, 1e6, 0.1, 7.0, -2.5], np.float32),
            metadata={"b": 1.0, "a": 1, "long_key_comes_first_in_jsonb": "x", "u": "é😀\n\"q\"",
                      "nested": {"y": [1, 2.0, None, True, "s"], "x": {}}, "none": None, "f": False},
            version=2**62, source_hash="sha256:é",
            created_ts=datetime(2001, 2, 3, 4, 5, 6, 789012, tzinfo=plus2),
            updated_ts=datetime(2030, 12, 31, 23, 59, 59, 999999, tzinfo=UTC)),
        EmbeddingRecord(id="tricky-2", vector=np.linspace(-1, 1, 8, dtype=np.float32), metadata={},
                        version=0, source_hash="", created_ts=datetime(1969, 7, 20, 20, 17, 40, 1, tzinfo=UTC),
                        updated_ts=datetime(1999, 1, 1, tzinfo=UTC)),
    ]


def assert_identical(got: EmbeddingRecord, want: EmbeddingRecord) -> None:
    assert got.id == want.id
    assert got.vector.dtype == np.float32 and got.vector.tobytes() == want.vector.tobytes(), got.id
    assert canonical_json(got.metadata) == canonical_json(want.metadata), got.id
    assert (got.version, got.source_hash) == (want.version, want.source_hash), got.id
    for name in ("created_ts", "updated_ts"):
        ts = getattr(got, name)
        assert ts.utcoffset() == timedelta(0), f"{got.id} {name} is not UTC: {ts!r}"
        assert ts == getattr(want, name), f"{got.id} {name}: {ts!r} != {getattr(want, name)!r}"
    assert got == want


def test_records_round_trip_exactly_through_fetch_and_iteration(make_store):
    store = make_store()
    want = tricky_records()
    store.upsert(want)
    for got, expected in zip(store.fetch([r.id for r in want]), want, strict=True):
        assert_identical(got, expected)
    for got, expected in zip(store.iter_records(), want, strict=True):
        assert_identical(got, expected)
    (batch,) = list(store.iter_batches())
    assert batch.ids == [r.id for r in want]
    assert batch.metadata == [canonical_json(r.metadata) for r in want]
    assert batch.vectors.dtype == np.float32 and batch.vectors.flags.c_contiguous


def test_metadata_numbers_keep_their_json_text(make_store):
    meta = {"one_float": 1.0, "huge": 1e300, "tiny": 1.5e-7, "tenth": 0.1, "long": 123456789.123456789,
            "big_int": 2**63, "neg": -17}
    store = make_store()
    store.upsert([rec("n", np.ones(8), **meta)])
    (got,) = store.fetch(["n"])
    assert canonical_json(got.metadata) == canonical_json(meta)
    assert type(got.metadata["one_float"]) is float and type(got.metadata["big_int"]) is int


def test_fetch_follows_the_order_of_ids_and_leaves_out_unknown_ids(make_store):
    store = make_store()
    records = build_records(10)
    store.upsert(records)
    ids = [records[7].id, "missing", records[2].id, records[9].id, "also-missing", records[0].id]
    got = store.fetch(ids)
    assert [r.id for r in got] == [records[7].id, records[2].id, records[9].id, records[0].id]
    assert got == [records[7], records[2], records[9], records[0]]
    assert store.fetch([]) == []
    assert store.fetch(["missing"]) == []


# --- version precedence ---------------------------------------------------------------------------


def test_upsert_version_precedence_equal_replaces_older_is_ignored_newer_replaces(make_store):
    store = make_store(metric="l2")
    a, b, c, d = (np.full(8, x, np.float32) for x in (1.0, 2.0, 3.0, 4.0))
    store.upsert([rec("x", a, version=2, tag="first"), rec("other", np.zeros(8) + 9)])

    res = store.upsert([rec("x", b, version=2, tag="equal")])
    assert (res.written, res.skipped) == (1, 0)
    stored = only(store, "x")
    assert (stored.version, stored.metadata, stored.vector.tolist()) == (2, {"tag": "equal"}, b.tolist())

    res = store.upsert([rec("x", c, version=1, tag="older")])
    assert (res.written, res.skipped) == (0, 1)
    assert_identical(only(store, "x"), stored)
    hits = store.query(c, 1)
    assert hits[0].id == "x" and hits[0].metadata == {"tag": "equal"}
    assert hits[0].score == pytest.approx(float(np.linalg.norm(b - c)), rel=1e-5)

    res = store.upsert([rec("x", d, version=3, tag="newer")])
    assert (res.written, res.skipped) == (1, 0)
    stored = only(store, "x")
    assert (stored.version, stored.metadata, stored.vector.tolist()) == (3, {"tag": "newer"}, d.tolist())
    assert store.query(d, 1)[0].score == pytest.approx(0.0, abs=1e-5)
    assert store.count() == 2


def test_duplicate_ids_in_one_batch_resolve_as_if_written_in_order(make_store):
    store = make_store(metric="l2")
    store.upsert([
        rec("a", np.full(8, 1.0), version=1, n=1), rec("a", np.full(8, 3.0), version=3, n=3),
        rec("a", np.full(8, 2.0), version=2, n=2),
        rec("b", np.full(8, 5.0), version=1, n="first"), rec("b", np.full(8, 6.0), version=1, n="last"),
    ])
    assert store.count() == 2
    assert [(r.id, r.version, r.metadata) for r in store.fetch(["a", "b"])] == [
        ("a", 3, {"n": 3}), ("b", 1, {"n": "last"})]
    hits = store.query(np.full(8, 3.0), 10)
    assert [h.id for h in hits] == ["a", "b"]
    assert hits[0].score == pytest.approx(0.0, abs=1e-5)


# --- delete, count, iteration ---------------------------------------------------------------------


def test_delete_returns_how_many_existed_and_hides_the_records(make_store):
    store = make_store()
    records = build_records(20)
    store.upsert(records)
    gone = [records[3].id, records[11].id]
    assert store.delete([*gone, "never-stored"]) == 2
    assert store.delete(gone) == 0
    assert store.count() == 18
    assert store.fetch(gone) == []
    assert not set(gone) & set(stored_ids(store))
    for r in records[:5]:
        assert not {h.id for h in store.query(r.vector, 20)} & set(gone)
    assert len(store.query(records[3].vector, 50)) == 18
    store.upsert([records[3]])
    assert store.count() == 19 and store.fetch([records[3].id]) == [records[3]]
    assert store.query(records[3].vector, 1)[0].id == records[3].id


UNICODE_IDS = ["é", "z", "Z", "10", "9", "a", "b", "A", "a b", "a/b", "ｚ", "😀", "aa", "a0", "-1"]


def test_iteration_is_in_ascending_python_string_order(make_store):
    store = make_store()
    rng = np.random.default_rng(1)
    store.upsert([rec(rid, rng.standard_normal(8), i=i) for i, rid in enumerate(UNICODE_IDS)])
    assert stored_ids(store) == sorted(UNICODE_IDS)
    assert [r.id for r in store.iter_records(batch_size=2)] == sorted(UNICODE_IDS)
    batches = list(store.iter_batches(batch_size=4))
    assert [i for b in batches for i in b.ids] == sorted(UNICODE_IDS)


def test_iter_batches_respects_batch_size_and_returns_every_record(make_store):
    store = make_store()
    records = build_records(23, seed=5)
    store.upsert(records[::-1])
    batches = list(store.iter_batches(batch_size=5))
    assert all(isinstance(b, RecordBatch) for b in batches)
    assert [len(b) for b in batches] == [5, 5, 5, 5, 3]
    assert [r for b in batches for r in b.records()] == records
    assert list(store.iter_records(batch_size=7)) == records


def test_empty_store_iterates_and_queries_nothing(make_store):
    store = make_store()
    assert list(store.iter_batches()) == []
    assert list(store.iter_records()) == []
    store.upsert(build_records(2))
    store.delete(["r00000", "r00001"])
    assert list(store.iter_batches()) == []
    assert store.query(np.ones(8), 5) == []


# --- invalid input --------------------------------------------------------------------------------


def raw_batch(ids, vectors, metadata=None, versions=None) -> RecordBatch:
    n = len(ids)
    return make_batch(ids=ids, vectors=np.asarray(vectors, np.float32),
                      metadata=metadata or ["{}"] * n, versions=versions or [1] * n,
                      source_hashes=[""] * n, created_us=[0] * n, updated_us=[0] * n, validate=False)


def bad_input(kind: str):
    """(how to write, payload, bad id) for one kind of invalid input mixed with good records."""
    good = np.ones((2, 8), np.float32)
    nan = np.vstack([good, np.full((1, 8), np.nan, np.float32)])
    inf = np.vstack([good, np.array([[1, 2, np.inf, 0, 0, 0, 0, 0]], np.float32)])
    three = np.vstack([good, np.ones((1, 8), np.float32)])
    ids = ["good-1", "good-2", "bad"]
    return {
        "nan": ("write_batch", raw_batch(ids, nan), "bad"),
        "inf": ("write_batch", raw_batch(ids, inf), "bad"),
        "empty-id": ("write_batch", raw_batch(["good-1", "good-2", ""], three), ""),
        "metadata-not-json": ("write_batch", raw_batch(ids, three, ["{}", "{}", '{"x": NaN}']), "bad"),
        "metadata-not-object": ("write_batch", raw_batch(ids, three, ["{}", "{}", "[1,2]"]), "bad"),
        "metadata-not-canonical": ("write_batch", raw_batch(ids, three, ["{}", "{}", '{"b": 1, "a": 2}']), "bad"),
        "negative-version": ("write_batch", raw_batch(ids, three, versions=[1, 1, -1]), "bad"),
        "wrong-dimensions": ("upsert", [rec("good-1", np.ones(8)), rec("good-2", np.ones(8)),
                                        rec("bad", np.ones(9))], "bad"),
        "wrong-dimensions-batch": ("write_batch", raw_batch(ids, np.ones((3, 9))), None),
        "zero-vector-cosine": ("upsert", [rec("good-1", np.ones(8)), rec("good-2", np.ones(8)),
                                          rec("bad", np.zeros(8))], "bad"),
        "zero-vector-cosine-batch": ("write_batch", raw_batch(ids, np.vstack([good, np.zeros((1, 8))])), "bad"),
    }[kind]


BAD_KINDS = ["nan", "inf", "empty-id", "metadata-not-json", "metadata-not-object", "metadata-not-canonical",
             "negative-version", "wrong-dimensions", "wrong-dimensions-batch", "zero-vector-cosine",
             "zero-vector-cosine-batch"]


@pytest.mark.parametrize("kind", BAD_KINDS)
def test_invalid_record_in_a_batch_is_named_and_nothing_is_written(make_store, kind):
    store = make_store()  # cosine
    existing = build_records(3, dims=8, prefix="old")
    store.upsert(existing)
    seq = store.sequence()
    how, payload, bad_id = bad_input(kind)
    with pytest.raises(InvalidRecord) as info:
        getattr(store, how)(payload)
    if bad_id is not None:
        assert info.value.record_id == bad_id
        assert repr(bad_id) in str(info.value)
    assert store.count() == 3
    assert store.fetch(["good-1", "good-2", "bad"]) == []
    assert stored_ids(store) == [r.id for r in existing]
    assert store.sequence() == seq


# --- write_batch conflict rules, bulk_load, replace_all --------------------------------------------


def batch_of(*records: EmbeddingRecord) -> RecordBatch:
    return RecordBatch.from_records(records)


def test_write_batch_error_rule_raises_on_collision_and_writes_nothing(make_store):
    store = make_store()
    store.upsert([rec("a", np.ones(8), version=1, old=True)])
    seq = store.sequence()
    with pytest.raises(ConflictError):
        store.write_batch(batch_of(rec("b", np.ones(8) * 2), rec("a", np.ones(8) * 3, version=9)), OnConflict.ERROR)
    assert stored_ids(store) == ["a"]
    assert only(store, "a").metadata == {"old": True}
    assert store.sequence() == seq
    res = store.write_batch(batch_of(rec("b", np.ones(8) * 2), rec("c", np.ones(8) * 3)), OnConflict.ERROR)
    assert (res.written, res.skipped) == (2, 0)
    assert stored_ids(store) == ["a", "b", "c"]


CONFLICT_CASES = {
    # rule: (ids holding the new content afterwards, written, skipped)
    OnConflict.KEEP: ({"c"}, 1, 2),
    OnConflict.OVERWRITE: ({"a", "b", "c"}, 3, 0),
    OnConflict.VERSION: ({"c"}, 1, 2),
    OnConflict.NEWER_OR_EQUAL: ({"b", "c"}, 2, 1),
}


@pytest.mark.parametrize("rule", list(CONFLICT_CASES), ids=[r.value for r in CONFLICT_CASES])
def test_write_batch_conflict_rule_decides_which_rows_replace(make_store, rule):
    store = make_store()
    store.upsert([rec("a", np.ones(8), version=2, gen="old"), rec("b", np.ones(8), version=2, gen="old")])
    incoming = batch_of(rec("a", np.arange(1, 9), version=1, gen="new"),
                        rec("b", np.arange(1, 9), version=2, gen="new"),
                        rec("c", np.arange(1, 9), version=1, gen="new"))
    res = store.write_batch(incoming, rule)
    new_ids, written, skipped = CONFLICT_CASES[rule]
    assert (res.written, res.skipped) == (written, skipped)
    got = {r.id: r for r in store.fetch(["a", "b", "c"])}
    assert {rid for rid, r in got.items() if r.metadata["gen"] == "new"} == new_ids
    for rid, r in got.items():
        want = incoming.record(incoming.ids.index(rid)) if rid in new_ids else None
        if want is not None:
            assert_identical(r, want)
        else:
            assert (r.version, r.vector.tolist()) == (2, [1.0] * 8)


def test_bulk_load_writes_every_batch_with_the_conflict_rule(make_store):
    store = make_store()
    records = build_records(50, seed=9)
    batches = [batch_of(*records[i:i + 20]) for i in range(0, 50, 20)]
    res = store.bulk_load(iter(batches))
    assert (res.written, res.skipped) == (50, 0)
    assert list(store.iter_records()) == records
    older = [EmbeddingRecord(r.id, r.vector * 2, {"older": 1}, version=0) for r in records[:5]]
    res = store.bulk_load([batch_of(*older)], OnConflict.VERSION)
    assert (res.written, res.skipped) == (0, 5)
    assert store.fetch([records[0].id]) == [records[0]]
    assert len(store.query(records[0].vector, 5)) == 5


def test_bulk_load_into_an_empty_store_applies_the_rule_to_ids_repeated_across_batches(make_store):
    # pgvector streams ascending batches into one COPY and merges a batch that goes back in id order
    store = make_store()
    records = build_records(15, seed=5)
    newer = EmbeddingRecord(records[2].id, records[2].vector * 3, {"newer": 1}, version=2)
    older = EmbeddingRecord(records[3].id, records[3].vector * 5, {"older": 1}, version=0)
    batches = [batch_of(*records[:10]), batch_of(newer, older), batch_of(*records[10:])]
    res = store.bulk_load(iter(batches), OnConflict.VERSION)
    assert (res.written, res.skipped) == (16, 1)
    want = records[:2] + [newer] + records[3:]
    got = list(store.iter_records())
    assert [r.id for r in got] == [r.id for r in want]
    for g, w in zip(got, want, strict=True):
        assert (g.version, g.metadata, g.vector.tobytes()) == (w.version, w.metadata, w.vector.tobytes())


def test_replace_all_leaves_exactly_the_new_content_and_reports_deletes(make_store):
    store = make_store()
    old = build_records(10, prefix="old")
    keep = build_records(3, prefix="both", seed=1)
    store.upsert(old + keep)
    seq = store.sequence()
    new = build_records(6, prefix="new", seed=2) + build_records(3, prefix="both", seed=4, version=1)
    res = store.replace_all([batch_of(*new[:4]), batch_of(*new[4:])])
    assert res.written == len(new)
    assert list(store.iter_records()) == sorted(new, key=lambda r: r.id)
    assert store.count() == 9
    assert store.fetch([r.id for r in old]) == []
    hit_ids = {h.id for h in store.query(old[0].vector, 50)}
    assert hit_ids == {r.id for r in new}
    changes = store.changes_since(seq)
    deleted = {d[0] for d in changes.deletes}
    assert {r.id for r in old} <= deleted
    assert {r.id for r in new} <= {i for b in changes.upserts for i in b.ids}


# --- change tracking, stats ------------------------------------------------------------------------


def test_sequence_increases_and_changes_since_reports_exactly_the_later_writes(make_store):
    store = make_store()
    s0 = store.sequence()
    store.upsert([rec("a", np.ones(8)), rec("b", np.ones(8) * 2), rec("c", np.ones(8) * 3)])
    s1 = store.sequence()
    assert s1 > s0
    store.delete(["b"])
    s2 = store.sequence()
    assert s2 > s1
    store.upsert([rec("d", np.ones(8) * 4)])
    store.upsert([rec("a", np.ones(8) * 5, version=2, changed=True)])
    s3 = store.sequence()
    assert s3 > s2

    changes = store.changes_since(s1)
    assert changes.since == s1 and changes.until == s3
    upserted = [i for batch in changes.upserts for i in batch.ids]
    assert upserted == ["a", "d"]
    assert [r.version for batch in changes.upserts for r in batch.records()] == [2, 1]
    assert [(rid, version) for rid, version, _ in changes.deletes] == [("b", 1)]
    assert all(s1 < seq <= s3 for _, _, seq in changes.deletes)

    later = store.changes_since(s3)
    assert [i for b in later.upserts for i in b.ids] == [] and later.deletes == []
    everything = store.changes_since(0)
    assert {i for b in everything.upserts for i in b.ids} == {"a", "c", "d"}
    assert "b" in {d[0] for d in everything.deletes}


def test_changes_since_returns_upserts_in_batches_of_ascending_id(make_store):
    store = make_store()
    records = build_records(25, seed=4)
    store.upsert(records[::-1])
    changes = store.changes_since(0, batch_size=10)
    assert all(len(b) <= 10 for b in changes.upserts)
    assert [r for b in changes.upserts for r in b.records()] == records


def test_stats_report_backend_count_dimensions_metric_index_paused_sequence(make_store, store_case):
    store = make_store(metric="l2")
    store.upsert(build_records(7, dims=16))
    stats = store.stats()
    assert {"backend", "count", "dimensions", "metric", "index", "paused", "sequence"} <= set(stats)
    assert stats["backend"] == store_case.backend
    assert (stats["count"], stats["dimensions"], stats["metric"]) == (7, 16, "l2")
    assert stats["index"] == store_case.index
    assert stats["paused"] is False
    assert stats["sequence"] == store.sequence()


def test_paused_store_refuses_upsert_and_delete_until_resumed(make_store):
    store = make_store()
    store.upsert(build_records(3))
    store.pause_ingestion()
    assert store.is_paused() and store.stats()["paused"] is True
    with pytest.raises(IngestionPaused):
        store.upsert(build_records(2, prefix="new"))
    with pytest.raises(IngestionPaused):
        store.delete(["r00000"])
    assert store.count() == 3
    assert len(store.query(np.ones(8), 2)) == 2
    store.resume_ingestion()
    assert not store.is_paused()
    store.upsert(build_records(2, prefix="new"))
    assert store.delete(["r00000"]) == 1
    assert store.count() == 4


# --- artifacts ------------------------------------------------------------------------------------


def test_artifacts_write_read_list_delete_and_replace_all(make_store):
    arts = make_store().artifacts
    assert arts.list() == []
    arts.write("bpmn/export_v1.bpmn", b"<definitions/>")
    arts.write("prompts/summary_v2.yaml", b"text: hi\n")
    arts.write("bpmn/export_v1.bpmn", b"<definitions id='2'/>")
    assert arts.read("bpmn/export_v1.bpmn") == b"<definitions id='2'/>"
    listed = arts.list()
    assert [a.path for a in listed] == ["bpmn/export_v1.bpmn", "prompts/summary_v2.yaml"]
    assert listed[1].size == len(b"text: hi\n")
    import hashlib
    assert listed[1].sha256 == hashlib.sha256(b"text: hi\n").hexdigest()
    assert arts.delete("prompts/summary_v2.yaml") is True
    assert arts.delete("prompts/summary_v2.yaml") is False
    with pytest.raises(StoreError):
        arts.read("prompts/summary_v2.yaml")
    arts.replace_all({"domains/domain_profiles.jsonl": b"{}\n", "examples/examples_v1.jsonl": b""})
    assert [a.path for a in arts.list()] == ["domains/domain_profiles.jsonl", "examples/examples_v1.jsonl"]
    assert arts.read("examples/examples_v1.jsonl") == b""


@pytest.mark.parametrize("path", ["../escape_v1.bpmn", "bpmn/../../x_v1.bpmn", "/etc/passwd", "bpmn/x.bpmn",
                                  "unknown/thing_v1.yaml", "bpmn/sub/x_v1.bpmn", ""])
def test_invalid_artifact_path_is_refused(make_store, path):
    arts = make_store().artifacts
    with pytest.raises(StoreError):
        arts.write(path, b"x")
    with pytest.raises(StoreError):
        arts.replace_all({path: b"x"})
    assert arts.list() == []
