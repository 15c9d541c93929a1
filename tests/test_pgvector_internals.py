"""pgvector backend specifics: COPY BINARY codec, id collation, atomic replace, locking, URIs.

The behaviour every backend shares is in test_conformance.py; these tests prove what only the
PostgreSQL implementation can get wrong. They use the session's one server (conftest ``pg_server``)
and a fresh table per test.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import threading
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from conftest import with_options
from reference import brute_force, build_records

from engine.errors import ConflictError, IngestionPaused, InvalidURI, SettingsMismatch, StoreError
from engine.records import EmbeddingRecord, OnConflict, RecordBatch, canonical_json, make_batch
from engine.repository import open_repository
from engine.repository.pgcopy import decode_stream, read_dtype

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def table() -> str:
    return f"pi_{uuid.uuid4().hex[:12]}"


@pytest.fixture
def uri(pg_dsn: str, table: str) -> str:
    return with_options(pg_dsn, table=table)


@pytest.fixture
def stores(uri: str):
    opened = []

    def open_(u: str | None = None, **kw):
        repo = open_repository(u or uri, **kw)
        opened.append(repo)
        return repo

    yield open_
    for repo in opened:
        repo.close()


def tricky_batch() -> RecordBatch:
    """Values at the edges of every column's encoding."""
    f32 = np.finfo(np.float32)
    vectors = np.array([
        [1.0, -0.0, f32.max, -f32.max],
        [f32.tiny, f32.smallest_subnormal, -f32.smallest_subnormal, 1e-30],
        [0.1, 1 / 3, np.pi, -np.e],
        [123456.789, -7.5e-8, 2.0 ** -126, 65504.0],
    ], dtype=np.float32)
    stamps = [datetime(1, 1, 1, tzinfo=UTC), datetime(1969, 12, 31, 23, 59, 59, 999999, tzinfo=UTC),
              datetime(2000, 1, 1, tzinfo=UTC) - timedelta(microseconds=1), datetime(9999, 12, 31, 23, 59, 59, 999999,
                                                                                      tzinfo=UTC)]
    us = [(s - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(microseconds=1) for s in stamps]
    metadata = [{"text": "naïve ☃ 漢字 🚀", "nested": {"b": [1, 2.5, None, True]}, "a": ""},
                {"quote": "\"'\\\n\t", "big": 2 ** 53 + 1, "neg": -0.0},
                {}, {"k" * 300: "v" * 5000}]
    return make_batch(ids=["é", "a b", "Z\u0301", "🚀" * 40], vectors=vectors,
                      metadata=[canonical_json(m) for m in metadata], versions=[0, 1, 2 ** 63 - 1, 42],
                      source_hashes=["", "sha256:ab", "x" * 200, "ü"], created_us=us, updated_us=us[::-1])


def assert_batches_identical(got: RecordBatch, want: RecordBatch) -> None:
    assert got.ids == want.ids
    assert got.vectors.dtype == np.float32
    assert got.vectors.view(np.uint32).tolist() == want.vectors.view(np.uint32).tolist()  # -0.0, subnormals
    assert got.metadata == want.metadata
    assert got.versions.tolist() == want.versions.tolist()
    assert got.source_hashes == want.source_hashes
    assert got.created_us.tolist() == want.created_us.tolist()
    assert got.updated_us.tolist() == want.updated_us.tolist()


def test_copy_binary_roundtrip_is_bit_exact(stores):
    repo = stores(index="flat", metric="l2")
    batch = tricky_batch()
    assert repo.write_batch(batch).written == 4
    want = batch.sorted_by_id()
    got = list(repo.iter_batches(batch_size=3))
    assert [len(b) for b in got] == [3, 1]
    merged = RecordBatch.from_records([r for b in got for r in b.records()])
    assert_batches_identical(merged, want)
    assert repo.fetch(list(reversed(batch.ids))) == list(reversed(batch.records()))
    changes = repo.changes_since(0)
    assert_batches_identical(changes.upserts[0], want)


def test_decoder_handles_any_chunking_of_the_stream(stores, pg_dsn, table):
    repo = stores(index="flat")
    records = build_records(50, dims=5, seed=3)
    repo.upsert(records)
    with psycopg.connect(pg_dsn) as conn, conn.cursor() as cur:
        with cur.copy(f"COPY (SELECT version, created_ts, updated_ts, embedding, id, metadata_json, source_hash "
                      f"FROM {table} ORDER BY id) TO STDOUT (FORMAT BINARY)") as copy:
            raw = b"".join(bytes(c) for c in copy)
    assert read_dtype(5).itemsize < len(raw)
    rng = np.random.default_rng(0)
    for sizes in ([1] * len(raw), rng.integers(1, 97, len(raw)).tolist(), [len(raw)]):
        chunks, pos = [], 0
        for size in sizes:
            if pos >= len(raw):
                break
            chunks.append(raw[pos:pos + size])
            pos += size
        batches = list(decode_stream(chunks, 5, batch_size=7, min_parse=16))
        assert sum(len(b) for b in batches) == 50
        assert [r for b in batches for r in b.records()] == records


def test_unicode_ids_come_back_in_python_sorted_order(stores):
    ids = ["b", "B", "a", "ä", "z", "Ω", "é", "e\u0301", "漢", "🚀", "~", " ", "a\u00a0", "A1", "a10", "a9", "ｚ"]
    repo = stores(index="hnsw")
    vec = np.ones(3, np.float32)
    repo.upsert([EmbeddingRecord(id=i, vector=vec) for i in ids])
    assert [r.id for r in repo.iter_records(batch_size=4)] == sorted(ids)
    assert [r.id for b in repo.changes_since(0).upserts for r in b.records()] == sorted(ids)
    # equal distances are ordered by id, the same way
    assert [h.id for h in repo.query(vec, k=len(ids))] == sorted(ids)
    assert [h.id for h in repo.query(vec, k=5)] == sorted(ids)[:5]


def test_postgresql_uri_on_the_embedded_socket_sees_the_same_store(stores, pg_datadir, pg_dsn, table):
    socket_dir = psycopg.conninfo.conninfo_to_dict(pg_dsn)["host"]
    plain = f"postgresql://postgres@/postgres?host={socket_dir}&table={table}"
    embedded = f"postgresql+embedded:{pg_datadir}?table={table}"
    first = stores(plain, metric="inner_product", index="flat")
    first.upsert(build_records(10, dims=4))
    assert first.uri == plain and first.backend == "pgvector"
    second = stores(embedded)
    assert second.settings.metric == "inner_product" and second.dimensions == 4
    assert second.count() == 10
    with pytest.raises(SettingsMismatch):
        open_repository(embedded, metric="cosine")


def test_filtered_query_returns_k_exact_results_on_hnsw(stores):
    repo = stores(index="hnsw", index_params={"m": 4, "ef_construction": 8, "ef_search": 10})
    n = 600
    meta = [{"lang": "de" if i % 40 == 0 else "en", "i": i} for i in range(n)]
    records = build_records(n, dims=16, seed=7, metadata=meta)
    repo.upsert(records)
    query = records[1].vector  # an "en" record: its neighbours are mostly "en"
    hits = repo.query(query, k=12, filters={"lang": "de"})
    german = [r for r in records if r.metadata["lang"] == "de"]
    want = brute_force(german, query, "cosine", 12)[0]
    assert [h.id for h in hits] == [rid for rid, _ in want]
    assert np.allclose([h.score for h in hits], [d for _, d in want], atol=1e-5)
    assert len(repo.query(query, k=50, filters={"lang": {"$in": ["de"]}})) == len(german) == 15


def test_replace_all_killed_midway_leaves_old_content(stores, uri, table, pg_dsn):
    repo = stores(index="hnsw")
    old = build_records(40, dims=6, seed=1)
    repo.upsert(old)
    script = textwrap.dedent(f"""
        import sys, time
        sys.path.insert(0, {str(ROOT / 'tests')!r})
        from engine.records import RecordBatch
        from engine.repository import open_repository
        from reference import build_records
        repo = open_repository({uri!r})
        def batches():
            for i in range(3):
                yield RecordBatch.from_records(build_records(20, dims=6, seed=9, prefix=f"new{{i}}-"))
            print("LOADING", flush=True)
            time.sleep(60)
        repo.replace_all(batches())
    """)
    proc = subprocess.Popen([sys.executable, "-c", script], stdout=subprocess.PIPE, cwd=ROOT)
    try:
        assert proc.stdout.readline().strip() == b"LOADING"
        with psycopg.connect(pg_dsn) as conn:  # the staging table exists, but only inside that transaction
            assert conn.execute("SELECT to_regclass(%s)", (f"{table}__staging",)).fetchone()[0] is None
    finally:
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
    reopened = stores()
    assert [r.id for r in reopened.iter_records()] == [r.id for r in old]
    assert reopened.changes_since(0).deletes == []
    # the killed session's locks are gone: a replace now goes through, and leaves canonical names only
    new = build_records(5, dims=6, seed=2, prefix="n")
    assert reopened.replace_all([RecordBatch.from_records(new)]).written == 5
    assert [r.id for r in reopened.iter_records()] == [r.id for r in new]
    assert len(reopened.changes_since(1).deletes) == 40
    with psycopg.connect(pg_dsn) as conn:
        names = {r[0] for r in conn.execute("SELECT indexname FROM pg_indexes WHERE tablename = %s", (table,))}
    assert names == {f"{table}_pkey", f"{table}_seq_idx", f"{table}_metadata_idx", f"{table}_embedding_idx"}


def test_leftover_staging_table_is_dropped_on_open(stores, uri, table, pg_dsn):
    stores().upsert(build_records(3, dims=2))
    with psycopg.connect(pg_dsn) as conn:
        conn.execute(f"CREATE TABLE {table}__staging (id text)")
    stores()
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT to_regclass(%s)", (f"{table}__staging",)).fetchone()[0] is None


def test_concurrent_writer_waits_for_the_first(stores, uri):
    first, second = stores(index="flat"), stores()
    first.upsert(build_records(1, dims=4, prefix="seed"))
    inside, release = threading.Event(), threading.Event()
    finished: dict[str, float] = {}

    def slow_batches():
        yield RecordBatch.from_records(build_records(10, dims=4, prefix="a"))
        inside.set()
        release.wait(10)

    def load():
        first.bulk_load(slow_batches())
        finished["first"] = time.monotonic()

    loader = threading.Thread(target=load)
    loader.start()
    assert inside.wait(10)
    writer = threading.Thread(target=lambda: (second.upsert(build_records(3, dims=4, prefix="b")),
                                              finished.__setitem__("second", time.monotonic())))
    writer.start()
    time.sleep(0.3)
    assert "second" not in finished  # blocked on the store's state row, not failed, not interleaved
    release.set()
    loader.join(10)
    writer.join(10)
    assert finished["first"] <= finished["second"]
    assert second.sequence() == 3
    after_first = second.changes_since(2)
    assert [r.id for b in after_first.upserts for r in b.records()] == ["b00000", "b00001", "b00002"]


def test_pause_is_seen_by_every_connection(stores):
    a, b = stores(index="flat"), stores()
    a.upsert(build_records(2, dims=3))
    a.pause_ingestion()
    with pytest.raises(IngestionPaused) as err:
        b.upsert(build_records(1, dims=3, prefix="x"))
    assert "procos store resume" in err.value.hint
    with pytest.raises(IngestionPaused):
        b.delete(["r00000"])
    assert b.is_paused() and b.stats()["paused"] and b.count() == 2
    b.resume_ingestion()
    assert a.upsert(build_records(1, dims=3, prefix="x")).written == 1


def test_conflict_rules_and_tombstones(stores):
    repo = stores(index="hnsw")
    repo.upsert(build_records(4, dims=3, version=2))
    older = RecordBatch.from_records(build_records(4, dims=3, seed=5, version=1))
    with pytest.raises(ConflictError):
        repo.write_batch(older, OnConflict.ERROR)
    assert repo.write_batch(older, OnConflict.KEEP).skipped == 4
    assert repo.write_batch(older, OnConflict.VERSION).written == 0
    assert repo.write_batch(older, OnConflict.OVERWRITE).written == 4
    assert repo.delete(["r00001", "missing"]) == 1
    seq = repo.sequence()
    assert repo.changes_since(seq - 1).deletes == [("r00001", 1, seq)]
    repo.upsert(build_records(2, dims=3, version=1))  # re-upsert removes the tombstone
    assert repo.changes_since(0).deletes == []


def test_bulk_load_into_empty_store_builds_index_at_the_end(stores, table, pg_dsn):
    repo = stores(index="hnsw", metric="l2")
    batches = [RecordBatch.from_records(build_records(30, dims=4, seed=s, prefix=f"p{s}-")) for s in range(3)]
    dup = RecordBatch.from_records(build_records(5, dims=4, seed=9, prefix="p0-", version=3))
    result = repo.bulk_load([*batches, dup])
    assert (result.written, result.skipped) == (95, 0)
    assert repo.count() == 90 and repo.fetch(["p0-00000"])[0].version == 3
    with psycopg.connect(pg_dsn) as conn:
        (indexdef,) = conn.execute("SELECT indexdef FROM pg_indexes WHERE indexname = %s",
                                   (f"{table}_embedding_idx",)).fetchone()
    assert "hnsw" in indexdef and "vector_l2_ops" in indexdef
    again = repo.bulk_load(batches[:1])  # non-empty store: plain batched writes, by the version rule
    assert (again.written, again.skipped) == (25, 5)


def test_artifacts_are_scoped_to_their_store(stores, pg_dsn):
    a = stores()
    b = stores(with_options(pg_dsn, table=f"pi_{uuid.uuid4().hex[:12]}"))
    a.artifacts.write("bpmn/export_v1.bpmn", b"<xml/>")
    b.artifacts.replace_all({"prompts/p_v1.yaml": b"a: 1", "domains/domain_profiles.jsonl": b"{}\n"})
    assert [x.path for x in a.artifacts.list()] == ["bpmn/export_v1.bpmn"]
    assert [x.path for x in b.artifacts.list()] == ["domains/domain_profiles.jsonl", "prompts/p_v1.yaml"]
    assert a.artifacts.read("bpmn/export_v1.bpmn") == b"<xml/>"
    assert a.artifacts.delete("bpmn/export_v1.bpmn") and not a.artifacts.delete("bpmn/export_v1.bpmn")


def test_store_stays_usable_while_a_stream_is_open(stores):
    repo = stores(index="flat")
    repo.upsert(build_records(30, dims=3))
    stream = repo.iter_batches(batch_size=10)
    first = next(stream)
    repo.upsert(build_records(5, dims=3, prefix="zz"))
    repo.delete(["r00029"])
    rest = list(stream)
    assert first.ids + [i for b in rest for i in b.ids] == [f"r{i:05d}" for i in range(30)]  # one snapshot
    assert repo.count() == 34


def test_reserved_table_names_and_hnsw_dimension_limit(pg_dsn, stores):
    for name in ("procos_store_state", "knowledge_artifacts", "docs_tombstones", "docs__staging"):
        with pytest.raises(InvalidURI):
            open_repository(with_options(pg_dsn, table=name))
    repo = stores(index="hnsw")
    with pytest.raises(StoreError, match="at most 2000 dimensions"):
        repo.upsert([EmbeddingRecord(id="big", vector=np.ones(2001, np.float32))])
    assert repo.dimensions is None and repo.count() == 0
    assert repo.upsert([EmbeddingRecord(id="ok", vector=np.ones(3, np.float32))]).written == 1


def test_embedded_open_is_quiet_and_forgets_killed_handles(pg_datadir, table, tmp_path):
    from engine.repository.embedded import _forget_dead_handles

    handles = tmp_path / ".handle_pids.json"
    handles.write_text(f"[{os.getpid()}, 999999999]")
    _forget_dead_handles(tmp_path)
    assert handles.read_text() == f"[{os.getpid()}]"
    env = {k: v for k, v in os.environ.items() if k != "XDG_RUNTIME_DIR"}
    code = ("from engine.repository import open_repository as o; "
            f"r = o('postgresql+embedded:{pg_datadir}?table={table}'); print(r.count()); r.close()")
    done = subprocess.run([sys.executable, "-W", "always", "-c", code], capture_output=True, text=True,
                          env=env, cwd=ROOT, timeout=60)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "0" and "XDG_RUNTIME_DIR" not in done.stderr
