"""FAISS backend internals: checkpoint files, folding, cross-process visibility, locking, crash safety.

The behaviour every backend shares is in test_conformance.py; these tests look at what only the
FAISS store has: ``store.sqlite`` + ``index.<seq>.faiss`` + ``write.lock`` in one directory.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import faiss
import numpy as np
import pytest
from reference import brute_force, build_records

from engine.errors import IngestionPaused, StoreError, StoreLocked
from engine.records import EmbeddingRecord, RecordBatch
from engine.repository import open_repository
from engine.repository.faiss import FaissRepository
from engine.repository.faiss_index import write_checkpoint

ROOT = Path(__file__).resolve().parents[1]


def checkpoints(path: Path) -> list[str]:
    return sorted(p.name for p in path.iterdir() if p.name.startswith("index."))


def ids(hits) -> list[str]:
    return [h.id for h in hits]


def run_python(code: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-c", textwrap.dedent(code), *args], cwd=ROOT, timeout=timeout,
                          capture_output=True, text=True, check=True)


@pytest.fixture
def store(tmp_path: Path):
    repo = open_repository(f"faiss:{tmp_path / 's'}?index=flat&metric=l2")
    yield repo
    repo.close()


def test_small_upsert_leaves_the_checkpoint_file_untouched(store: FaissRepository):
    records = build_records(500, 8)
    store.bulk_load([RecordBatch.from_records(records)])
    (name,) = checkpoints(store.path)
    before = (store.path / name).stat()

    store.upsert(build_records(10, 8, seed=7, prefix="new"))
    store.delete(["r00003"])

    assert checkpoints(store.path) == [name]
    after = (store.path / name).stat()
    assert (after.st_ino, after.st_mtime_ns, after.st_size) == (before.st_ino, before.st_mtime_ns, before.st_size)
    q = build_records(1, 8, seed=7, prefix="new")[0].vector
    assert store.query(q, 1)[0].id == "new00000"
    assert "r00003" not in ids(store.query(records[3].vector, 5))


def test_fold_writes_a_new_checkpoint_past_the_threshold(store: FaissRepository):
    store.fold_min = 40
    store.bulk_load([RecordBatch.from_records(build_records(100, 8))])
    assert checkpoints(store.path) == ["index.1.faiss"]
    for i in range(4):  # 4 x 10 new labels: the log reaches 40, not past it
        store.upsert(build_records(10, 8, seed=i, prefix=f"b{i}-"))
    assert checkpoints(store.path) == ["index.1.faiss"]
    store.upsert(build_records(10, 8, seed=9, prefix="b9-"))  # 50 > max(40, 25% of 150)
    assert checkpoints(store.path) == ["index.6.faiss"]
    assert faiss.read_index(str(store.path / "index.6.faiss")).ntotal == 150


def test_another_object_sees_committed_writes_folds_and_replacements(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=flat&metric=l2"
    reader, writer = open_repository(uri), open_repository(uri)
    writer.fold_min = 30
    records = build_records(50, 8)
    writer.upsert(records)
    assert reader.query(records[7].vector, 1)[0].id == "r00007"  # the reader's index is now loaded

    writer.delete(["r00007"])
    writer.upsert(build_records(40, 8, seed=3, prefix="x"))  # past the threshold: the writer folds
    assert ids(reader.query(records[7].vector, 90)).count("r00007") == 0
    assert reader.query(build_records(40, 8, seed=3, prefix="x")[5].vector, 1)[0].id == "x00005"
    assert len(reader.query(records[0].vector, 200)) == 89

    writer.replace_all([RecordBatch.from_records(records[:5])])
    assert sorted(ids(reader.query(records[0].vector, 100))) == [r.id for r in records[:5]]
    reader.close()
    writer.close()


def test_a_subprocess_sees_our_writes_and_we_see_its_writes(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=hnsw&metric=cosine"
    repo = open_repository(uri)
    mine = build_records(30, 8)
    repo.upsert(mine)
    assert repo.query(mine[0].vector, 1)[0].id == "r00000"
    run_python("""
        import sys
        sys.path.insert(0, "tests")
        from engine.repository import open_repository
        from reference import build_records
        repo = open_repository(sys.argv[1])
        assert repo.query(build_records(30, 8)[4].vector, 1)[0].id == "r00004"
        repo.upsert(build_records(5, 8, seed=11, prefix="child"))
        repo.delete(["r00004"])
        repo.close()
    """, uri)
    theirs = build_records(5, 8, seed=11, prefix="child")
    assert repo.query(theirs[2].vector, 1)[0].id == "child00002"
    assert "r00004" not in ids(repo.query(mine[4].vector, 40))
    assert repo.sequence() == 3
    repo.close()


def test_orphan_checkpoint_and_temp_files_are_ignored_then_cleaned(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=flat&metric=l2"
    repo = open_repository(uri)
    records = build_records(60, 8)
    repo.bulk_load([RecordBatch.from_records(records)])
    # what a fold killed after its rename (or during its write) leaves behind
    junk = faiss.IndexIDMap2(faiss.IndexFlatL2(8))
    junk.add_with_ids(np.ones((3, 8), np.float32), np.array([900, 901, 902], np.int64))
    write_checkpoint(junk, repo.path, 99)
    (repo.path / "index.98.faiss.tmp").write_bytes(b"half written")
    repo.close()

    repo = open_repository(uri)
    hits = repo.query(records[1].vector, 60)
    assert ids(hits)[0] == "r00001" and len(hits) == 60
    repo.compact()
    assert checkpoints(repo.path) == ["index.1.faiss"]
    repo.close()


def test_a_fold_killed_before_its_sqlite_commit_leaves_the_store_consistent(store, monkeypatch):
    store.fold_min = 20
    records = build_records(40, 8)
    store.upsert(records[:10])
    store.compact()
    assert checkpoints(store.path) == ["index.1.faiss"]

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    store.upsert(records[10:15])
    monkeypatch.setattr(store._meta, "update_state", crash)
    with pytest.raises(KeyboardInterrupt):
        store.compact()  # the new file is renamed into place, then the "process dies"
    monkeypatch.undo()
    assert checkpoints(store.path) == ["index.1.faiss", "index.2.faiss"]

    other = open_repository(store.uri)
    other.fold_min = 20
    assert other._meta.state().checkpoint_file == "index.1.faiss"
    assert len(other.query(records[0].vector, 50)) == 15
    other.upsert(records[15:40])  # past the threshold: folds over the orphan and cleans it
    assert checkpoints(store.path) == ["index.3.faiss"]
    assert len(other.query(records[0].vector, 50)) == 40
    other.close()


def test_a_missing_checkpoint_is_rebuilt_from_sqlite(store):
    records = build_records(80, 8)
    store.bulk_load([RecordBatch.from_records(records)])
    store.delete(["r00000"])
    for name in checkpoints(store.path):
        (store.path / name).unlink()
    fresh = open_repository(store.uri)
    q = records[0].vector
    expected, _ = brute_force(records[1:], q, "l2", 5)
    assert ids(fresh.query(q, 5)) == [i for i, _ in expected]
    fresh.close()


def test_a_writer_in_another_process_makes_writes_fail_with_store_locked(store):
    store.upsert(build_records(5, 8))
    holder = subprocess.Popen([sys.executable, "-c", textwrap.dedent("""
        import sys, time
        from engine.repository import open_repository
        repo = open_repository(sys.argv[1])
        with repo._writing():
            print("locked", flush=True)
            time.sleep(30)
    """), store.uri], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        with pytest.raises(StoreLocked, match="is locked: another process is writing to it") as err:
            store.upsert(build_records(1, 8, seed=5, prefix="late"))
        assert err.value.hint and "retry" in err.value.hint
        with pytest.raises(StoreLocked):
            store.delete(["r00000"])
        assert store.count() == 5  # readers never wait for the lock
        assert len(store.query(np.zeros(8), 3)) == 3
    finally:
        holder.kill()
        holder.wait()
    assert store.upsert(build_records(1, 8, seed=5, prefix="late")).written == 1


def test_paused_flag_set_by_another_object_refuses_every_write(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=flat"
    a, b = open_repository(uri), open_repository(uri)
    a.upsert(build_records(3, 8))
    b.pause_ingestion()
    for write in (lambda: a.upsert(build_records(1, 8)), lambda: a.delete(["r00000"]),
                  lambda: a.bulk_load([RecordBatch.from_records(build_records(2, 8))]),
                  lambda: a.replace_all([])):
        with pytest.raises(IngestionPaused, match="procos store resume|paused") as err:
            write()
        assert "resume" in (err.value.hint or "")
    assert a.count() == 3 and a.sequence() == 1
    b.resume_ingestion()
    assert a.delete(["r00000"]) == 1
    a.close()
    b.close()


@pytest.mark.parametrize("reopen", [False, True])
def test_hnsw_never_returns_deleted_or_replaced_labels(tmp_path: Path, reopen: bool):
    uri = f"faiss:{tmp_path / 's'}?index=hnsw&metric=l2"
    repo = open_repository(uri)
    repo.fold_min = 10**9  # keep dead labels in the graph: nothing folds unless asked
    records = build_records(300, 8)
    repo.bulk_load([RecordBatch.from_records(records)])
    repo.delete([r.id for r in records[:100]])
    repo.upsert([EmbeddingRecord(id=records[100 + i].id, vector=np.full(8, 50.0 + i, np.float32), version=2)
                 for i in range(50)])  # replaced: their old labels are dead too
    if reopen:
        repo.close()
        repo = open_repository(uri)
        repo.fold_min = 10**9
    live = {r.id for r in records[100:]}
    for r in records[:120:6]:
        got = ids(repo.query(r.vector, 250))
        assert len(got) == len(set(got)) == 200
        assert set(got) == live
    far = repo.query(np.full(8, 50.0, np.float32), 1)[0]
    assert far.id == records[100].id and far.score == pytest.approx(0.0, abs=1e-4)
    assert repo._live.dead  # still in the graph, never returned
    repo.compact()  # more than 25% dead: rebuilt from live vectors
    (name,) = checkpoints(repo.path)
    assert faiss.read_index(str(repo.path / name)).ntotal == 200
    assert set(ids(repo.query(records[0].vector, 250))) == live
    repo.close()


def test_changes_since_reads_through_the_seq_indexes(store):
    store.upsert(build_records(20, 8))
    store.delete(["r00001"])
    plan = " ".join(str(row) for row in store._meta.conn.execute(
        "EXPLAIN QUERY PLAN SELECT id FROM records INDEXED BY records_seq WHERE seq > 1 ORDER BY id"))
    assert "records_seq" in plan
    changes = store.changes_since(1)
    assert (changes.since, changes.until, changes.upserts, changes.deletes) == (1, 2, [], [("r00001", 1, 2)])


def test_replace_all_killed_before_commit_keeps_the_old_content(store, monkeypatch):
    old = build_records(30, 8)
    store.bulk_load([RecordBatch.from_records(old)])
    import engine.repository.faiss_writes as backend  # where replace_all writes its checkpoint

    def crash(*args, **kwargs):
        raise KeyboardInterrupt("killed")

    monkeypatch.setattr(backend, "write_checkpoint", crash)
    with pytest.raises(KeyboardInterrupt):
        store.replace_all([RecordBatch.from_records(build_records(5, 8, seed=3, prefix="new"))])
    monkeypatch.undo()
    assert store.count() == 30 and store.sequence() == 1
    assert sorted(ids(store.query(old[0].vector, 100))) == [r.id for r in old]
    assert store.changes_since(0).deletes == []


def test_hnsw_falls_back_to_exact_search_rather_than_return_fewer_than_k(tmp_path: Path, monkeypatch):
    repo = open_repository(f"faiss:{tmp_path / 's'}?index=hnsw&metric=cosine")
    records = build_records(40, 8)
    repo.upsert(records)
    monkeypatch.setattr(type(repo._live), "nearest", lambda self, q, k, ef: None)  # "the graph came back short"
    q = records[9].vector
    expected, _ = brute_force(records, q, "cosine", 7)
    assert ids(repo.query(q, 7)) == [i for i, _ in expected]
    repo.close()


def test_a_path_that_is_a_file_is_a_clear_store_error(tmp_path: Path):
    (tmp_path / "file").write_text("not a directory")
    with pytest.raises(StoreError, match="cannot create the store directory"):
        open_repository(f"faiss:{tmp_path / 'file'}")


def test_hnsw_dead_set_after_rebuild_then_more_deletes_survives_a_reopen(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=hnsw&metric=l2"
    repo = open_repository(uri)
    records = build_records(120, 8)
    repo.bulk_load([RecordBatch.from_records(records)])
    repo.delete([r.id for r in records[:60]])
    repo.compact()  # rebuilt: the graph holds the 60 live vectors only
    repo.delete([r.id for r in records[60:70]])
    repo.upsert(build_records(5, 8, seed=4, prefix="n"))
    repo.rebuild_fraction = 1.0  # this fold keeps the 10 dead vectors in the graph
    repo._fold()
    repo.close()
    repo = open_repository(uri)
    hits = repo.query(records[0].vector, 100)
    assert len(hits) == repo.count() == 55
    assert repo._live.live_count == 55 and len(repo._live.dead) == 10
    repo.close()
