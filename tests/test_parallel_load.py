"""An import into pgvector with ``jobs`` > 1 loads streams of shards side by side, one connection each
(engine/repository/pg_parallel.py): the store ends exactly as a one-stream import leaves it, a bad bundle
(row checks, or shards that share ids) leaves no store or an unchanged one, a load in progress keeps its
staging table when another process opens the store, and a crash mid-load leaves the store as it was."""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import textwrap
import threading
import uuid
from pathlib import Path

import psycopg
import pytest
from reference import build_records, with_options
from test_import_row_checks import reseal

from engine import api
from engine.errors import BundleInvalid, InvalidInput, StreamsOverlap
from engine.records import RecordBatch
from engine.repository import open_repository
from engine.snapshot import export_snapshot
from engine.snapshot.importer import import_into
from engine.synthetic import synthetic_batches

DIMS, COUNT, SHARD = 8, 1000, 200
ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(autouse=True)
def dev_env(monkeypatch):
    monkeypatch.setenv("PROCOS_ENV", "dev")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("parallel")
    repo = open_repository(f"faiss:{root / 'src'}?index=flat", dimensions=DIMS)
    repo.bulk_load(synthetic_batches(COUNT, DIMS, seed=3, batch_size=250))
    path = Path(export_snapshot(repo, root / "snaps", shard_rows=SHARD).path)
    repo.close()
    return path


def new_uri(pg_dsn: str, **options) -> str:
    return with_options(pg_dsn, table=f"pl_{uuid.uuid4().hex[:10]}", index="flat", **options)


def table_of(uri: str) -> str:
    return uri.split("table=")[1].split("&")[0]


def rows_of(uri: str) -> list[tuple]:
    repo = open_repository(uri)
    try:
        out = []
        for b in repo.iter_batches(300):
            for i, rid in enumerate(b.ids):
                out.append((rid, b.vectors[i].tobytes(), b.metadata[i], int(b.versions[i]), b.source_hashes[i],
                            int(b.created_us[i]), int(b.updated_us[i])))
        return out
    finally:
        repo.close()


def exists(pg_dsn: str, name: str) -> bool:
    with psycopg.connect(pg_dsn) as conn:
        return conn.execute("SELECT to_regclass(%s)", (name,)).fetchone()[0] is not None


@pytest.mark.parametrize("jobs", [2, 3, 8])
def test_a_parallel_import_leaves_the_store_a_one_stream_import_leaves(pg_dsn, bundle, jobs, monkeypatch):
    from engine.repository import pg_parallel

    seen: list[int] = []  # the streams each parallel load was given (a spy: the load itself runs as it is)
    real = pg_parallel.load_streams
    monkeypatch.setattr(pg_parallel, "load_streams", lambda *a, **kw: seen.append(len(a[4])) or real(*a, **kw))
    one, many = new_uri(pg_dsn), new_uri(pg_dsn)
    assert import_into(one, bundle, jobs=1)["imported"] == COUNT and seen == []
    result = import_into(many, bundle, jobs=jobs)
    assert (result["imported"], result["skipped"]) == (COUNT, 0)
    assert seen == [min(jobs, COUNT // SHARD)]
    expected = rows_of(one)
    assert len(expected) == COUNT and rows_of(many) == expected
    assert not exists(pg_dsn, f"{table_of(many)}__staging")


def test_the_import_process_step_takes_jobs(pg_dsn, bundle, monkeypatch):
    from engine.repository import pg_parallel

    seen: list[int] = []
    real = pg_parallel.load_streams
    monkeypatch.setattr(pg_parallel, "load_streams", lambda *a, **kw: seen.append(len(a[4])) or real(*a, **kw))
    uri = new_uri(pg_dsn)
    assert api.load_vectors(str(bundle), uri, jobs=2)["imported"] == COUNT and seen == [2]
    for bad in (0, -1, True, "2"):
        with pytest.raises(InvalidInput, match="jobs"):
            api.load_vectors(str(bundle), new_uri(pg_dsn), jobs=bad)
        with pytest.raises(InvalidInput, match="jobs"):
            api.import_snapshot(str(bundle), new_uri(pg_dsn), jobs=bad)
    assert seen == [2]


def test_a_parallel_replace_tombstones_what_the_bundle_lacks(pg_dsn, bundle):
    uri = new_uri(pg_dsn)
    repo = open_repository(uri, dimensions=DIMS)
    repo.upsert(build_records(30, dims=DIMS, prefix="old"))
    repo.close()
    import_into(uri, bundle, "replace", jobs=2)
    stored = rows_of(uri)
    assert len(stored) == COUNT and not any(r[0].startswith("old") for r in stored)
    with psycopg.connect(pg_dsn) as conn:
        tombs = conn.execute(f"SELECT count(*) FROM {table_of(uri)}_tombstones").fetchone()[0]
    assert tombs == 30


def test_a_parallel_append_into_a_store_with_rows_merges_by_the_rule(pg_dsn, bundle):
    uri = new_uri(pg_dsn)
    import_into(uri, bundle, jobs=1)
    again = import_into(uri, bundle, jobs=2)  # the store holds rows: streams merge one after the other
    assert (again["imported"], again["skipped"]) == (0, COUNT)
    assert len(rows_of(uri)) == COUNT


def resealed_copy(bundle: Path, tmp_path: Path, change) -> Path:
    bad = tmp_path / bundle.name
    tmp_path.mkdir(parents=True, exist_ok=True)
    shutil.copytree(bundle, bad)
    for rel in change(bad):
        reseal(bad, rel)
    return bad


def test_a_row_check_failing_in_one_stream_leaves_no_store(pg_dsn, bundle, tmp_path):
    import pyarrow as pa
    import pyarrow.parquet as pq

    def break_first_shard(bad: Path) -> list[str]:
        rel = "embeddings/part-00000.parquet"  # the first stream fails while the others load
        t = pq.read_table(bad / rel)
        hashes = t.column("vector_hash").to_pylist()
        hashes[3] = "0" * 64
        t = t.set_column(t.schema.get_field_index("vector_hash"), "vector_hash", pa.array(hashes, pa.string()))
        pq.write_table(t, bad / rel, compression="zstd")
        return [rel]

    bad = resealed_copy(bundle, tmp_path, break_first_shard)
    uri = new_uri(pg_dsn)
    with pytest.raises(BundleInvalid, match="vector_hash"):
        import_into(uri, bad, jobs=3)
    table = table_of(uri)
    assert not exists(pg_dsn, table) and not exists(pg_dsn, f"{table}__staging")
    existing = new_uri(pg_dsn)
    import_into(existing, bundle, jobs=1)
    before = rows_of(existing)
    with pytest.raises(BundleInvalid):
        import_into(existing, bad, "replace", jobs=3)
    assert rows_of(existing) == before and not exists(pg_dsn, f"{table_of(existing)}__staging")


def test_shards_that_share_ids_are_refused_and_leave_no_store(pg_dsn, bundle, tmp_path):
    """A careful forger copies shard 0 over shard 1 and fixes the manifest to match: every file checks out,
    each shard's ids ascend, but two streams would load the same ids."""

    def duplicate_shard(bad: Path) -> list[str]:
        shutil.copyfile(bad / "embeddings/part-00000.parquet", bad / "embeddings/part-00001.parquet")
        doc = json.loads((bad / "manifest.json").read_text())
        first, second = doc["embeddings"]["shards"][0], doc["embeddings"]["shards"][1]
        for key in ("first_id", "last_id", "rows"):
            second[key] = first[key]
        (bad / "manifest.json").write_text(json.dumps(doc))
        return ["embeddings/part-00001.parquet"]

    bad = resealed_copy(bundle, tmp_path, duplicate_shard)
    for jobs in (2, 5):
        uri = new_uri(pg_dsn)
        with pytest.raises(BundleInvalid) as err:
            import_into(uri, bad, jobs=jobs)
        assert "part-00001" in err.value.message or "more than one shard" in err.value.message
        assert not exists(pg_dsn, table_of(uri)) and not exists(pg_dsn, f"{table_of(uri)}__staging")


def varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def forge_footer_rows(path: Path, real: int, claimed: int) -> None:
    """Rewrite the footer's row count (FileMetaData.num_rows: field 3, i64, thrift compact protocol) from
    ``real`` to ``claimed``, leaving the row groups as they are; the same length, so the file stays valid."""
    data = bytearray(path.read_bytes())
    size = int.from_bytes(data[-8:-4], "little")
    start = len(data) - 8 - size
    old, new = b"\x16" + varint(2 * real), b"\x16" + varint(2 * claimed)
    assert len(old) == len(new)
    at = data.index(old, start)
    data[at:at + len(old)] = new
    path.write_bytes(bytes(data))


def test_a_shard_whose_footer_claims_rows_it_does_not_hold_is_refused(pg_dsn, tmp_path):
    """Parquet readers trust the footer's row count: a forged one would make a short shard look whole
    (and, with --jobs, would let a forged last id pass the check across streams)."""
    import pyarrow.parquet as pq

    from engine.snapshot import verify_bundle

    repo = open_repository(new_uri(pg_dsn), dimensions=DIMS)  # pgvector: a bundle without index.faiss
    repo.bulk_load(synthetic_batches(900, DIMS, seed=6, batch_size=300))
    good = Path(export_snapshot(repo, tmp_path / "snaps", shard_rows=SHARD).path)
    repo.close()

    def short_last_shard(bad: Path) -> list[str]:
        rel = "embeddings/part-00004.parquet"  # 100 rows; its footer and the manifest will say 150
        forge_footer_rows(bad / rel, 100, 150)
        doc = json.loads((bad / "manifest.json").read_text())
        doc["embeddings"]["shards"][4]["rows"] = 150
        doc["record_count"] = 950
        (bad / "manifest.json").write_text(json.dumps(doc))
        return [rel]

    bad = resealed_copy(good, tmp_path / "bad", short_last_shard)
    pf = pq.ParquetFile(bad / "embeddings/part-00004.parquet")
    assert pf.metadata.num_rows == 150  # the forgery took: the footer claims 150 ...
    assert sum(pf.metadata.row_group(i).num_rows for i in range(pf.num_row_groups)) == 100  # ... and holds 100
    report = verify_bundle(bad)
    assert not report.ok and any("row groups hold 100 rows, its footer says 150" in f.problem for f in report.errors)
    for jobs in (1, 3):
        uri = new_uri(pg_dsn)
        with pytest.raises(BundleInvalid, match="footer says 150"):
            import_into(uri, bad, jobs=jobs)
        assert not exists(pg_dsn, table_of(uri))


def test_overlapping_streams_raise_and_write_nothing(pg_dsn):
    uri = new_uri(pg_dsn)
    repo = open_repository(uri, dimensions=DIMS)
    try:
        batches = list(synthetic_batches(400, DIMS, seed=2, batch_size=100))
        with pytest.raises(StreamsOverlap, match="same id"):
            repo.bulk_load_streams([lambda: batches[:3], lambda: batches[2:]])
        assert repo.count() == 0 and not exists(pg_dsn, f"{table_of(uri)}__staging")
        result = repo.bulk_load_streams([lambda: batches[:2], lambda: batches[2:]])
        assert result.written == 400 and repo.count() == 400
    finally:
        repo.close()


def test_a_writer_that_would_not_see_the_streams_commits_loads_them_one_after_the_other(pg_dsn, monkeypatch):
    """Under REPEATABLE READ (a database's default here) the swap could not see the rows the streams
    committed after the writer began: the streams then load one after the other, in its transaction."""
    from engine.repository import pg_parallel

    name = f"iso_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_dsn, autocommit=True) as conn:
        conn.execute(f"CREATE DATABASE {name}")
        conn.execute(f"ALTER DATABASE {name} SET default_transaction_isolation = 'repeatable read'")
    base, _, query = pg_dsn.partition("?")
    dsn = base.rsplit("/", 1)[0] + f"/{name}" + (f"?{query}" if query else "")
    called: list[int] = []
    monkeypatch.setattr(pg_parallel, "load_streams", lambda *a, **kw: called.append(1))
    repo = open_repository(with_options(dsn, table="t", index="flat"), dimensions=DIMS)
    try:
        repo.upsert(build_records(5, dims=DIMS, prefix="old"))
        batches = list(synthetic_batches(300, DIMS, seed=8, batch_size=100))
        result = repo.bulk_load_streams([lambda: batches[:1], lambda: batches[1:]], replace=True)
        assert result.written == 300 and repo.count() == 300 and called == []
    finally:
        repo.close()
        with psycopg.connect(pg_dsn, autocommit=True) as conn:
            conn.execute(f"DROP DATABASE {name} WITH (FORCE)")


def test_an_open_during_a_parallel_load_keeps_its_staging_table(pg_dsn):
    uri = new_uri(pg_dsn)
    repo = open_repository(uri, dimensions=DIMS)
    staging = f"{table_of(uri)}__staging"
    batches = list(synthetic_batches(400, DIMS, seed=4, batch_size=100))
    loading, release = threading.Event(), threading.Event()

    def slow() -> list[RecordBatch]:
        yield batches[2]
        loading.set()
        release.wait(30)
        yield batches[3]

    done: dict[str, object] = {}

    def load() -> None:
        try:
            done["r"] = repo.bulk_load_streams([lambda: batches[:2], slow])
        except Exception as exc:  # noqa: BLE001 - shown by the assertion below
            done["error"] = exc

    worker = threading.Thread(target=load)
    worker.start()
    try:
        assert loading.wait(30)
        other = open_repository(uri)  # its open-time cleanup must leave the load's staging table alone
        other.close()
        assert exists(pg_dsn, staging)
    finally:
        release.set()
        worker.join(60)
    assert "error" not in done, done.get("error")
    assert done["r"].written == 400 and repo.count() == 400 and not exists(pg_dsn, staging)
    repo.close()


CRASH = textwrap.dedent("""
    import os, signal, sys, time
    import psycopg
    sys.path.insert(0, sys.argv[2])
    from engine.repository import open_repository
    from engine.synthetic import synthetic_batches
    batches = list(synthetic_batches(400, 8, seed=4, batch_size=100))
    repo = open_repository(sys.argv[1], dimensions=8)
    def dies():
        yield batches[2]
        with psycopg.connect(repo._dsn, autocommit=True) as watch:  # until the other stream has committed
            for _ in range(600):
                if watch.execute(f"SELECT count(*) FROM {sys.argv[3]}").fetchone()[0] == 200:
                    break
                time.sleep(0.05)
        os.kill(os.getpid(), signal.SIGKILL)
        yield batches[3]
    repo.bulk_load_streams([lambda: batches[:2], dies])
""")


def test_a_crash_mid_load_leaves_the_store_as_it_was(pg_dsn, tmp_path):
    uri = new_uri(pg_dsn)
    seed = open_repository(uri, dimensions=DIMS)  # the store exists, empty
    seed.close()
    script = tmp_path / "crash.py"
    script.write_text(CRASH)
    staging = f"{table_of(uri)}__staging"
    proc = subprocess.run([sys.executable, str(script), uri, str(ROOT), staging], capture_output=True, text=True,
                          timeout=120, env={**os.environ, "PROCOS_ENV": "dev"})
    assert proc.returncode == -signal.SIGKILL, proc.stderr
    with psycopg.connect(pg_dsn, autocommit=True) as conn:  # the killed client's backends end at once
        for _ in range(300):  # its transaction ended (the state row's lock is free) ...
            with conn.transaction():
                if conn.execute("SELECT 1 FROM procos_store_state WHERE table_name = %s FOR UPDATE SKIP LOCKED",
                                (table_of(uri),)).fetchone():
                    break
            conn.execute("SELECT pg_sleep(0.1)")
        else:
            pytest.fail("the killed load's transaction still holds the store's lock after 30 s")
        # ... and the stream that finished first had committed its rows into the staging table
        assert conn.execute(f"SELECT count(*) FROM {staging}").fetchone()[0] == 200
    repo = open_repository(uri)  # the lock is free: the leftover goes
    try:
        assert repo.count() == 0 and not exists(pg_dsn, staging)
        assert repo.bulk_load_streams([lambda: synthetic_batches(200, DIMS, seed=4, batch_size=100)],).written == 200
    finally:
        repo.close()
