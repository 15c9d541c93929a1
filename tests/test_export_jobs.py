"""``--jobs N`` exports: shards written in parallel (pgvector read by N connections sharing one exported
snapshot) give a bundle byte-identical to one job; the shared snapshot ignores writes committed after
it; the vector column's encoding is recorded and every choice verifies and imports."""

from __future__ import annotations

import hashlib
import uuid
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from reference import with_options

from engine.repository import open_repository
from engine.snapshot import export_snapshot, import_snapshot, verify_bundle
from engine.snapshot.reader import manifest_of
from engine.synthetic import record_id, synthetic_batches

COUNT, DIMS, SHARD_ROWS = 2_500, 8, 700


def pg_uri(pg_server, index: str = "flat") -> str:
    table = f"j_{uuid.uuid4().hex[:10]}"
    return (with_options(pg_server.dsn, table=table, index=index) if pg_server.datadir is None
            else f"postgresql+embedded:{pg_server.datadir}?table={table}&index={index}")


def bundle_bytes(bundle: str) -> dict[str, str]:
    """sha256 of every file but the two that name the (random) snapshot id."""
    root = Path(bundle)
    return {p.relative_to(root).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(root.rglob("*")) if p.is_file() and p.name not in ("manifest.json", "checksums.sha256")}


@pytest.fixture(params=["pgvector", "faiss"])
def source(request, tmp_path):
    uri = pg_uri(request.getfixturevalue("pg_server")) if request.param == "pgvector" else f"faiss:{tmp_path / 'src'}?index=flat"
    repo = open_repository(uri, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(COUNT, DIMS, batch_size=333))
    yield repo
    repo.close()


def test_export_with_jobs_is_byte_identical_to_one_job(source, tmp_path):
    one = export_snapshot(source, tmp_path / "one", shard_rows=SHARD_ROWS, batch_size=250)
    many = [export_snapshot(source, tmp_path / f"j{j}", shard_rows=SHARD_ROWS, batch_size=250, jobs=j) for j in (2, 4)]
    expected = bundle_bytes(one.path)
    assert len([p for p in expected if p.startswith("embeddings/")]) == 4
    for result in many:
        assert bundle_bytes(result.path) == expected
        assert result.content_hash == one.content_hash
        assert manifest_of(result.path)["embeddings"]["shards"] == manifest_of(one.path)["embeddings"]["shards"]
        assert verify_bundle(result.path).ok
    if source.backend == "faiss":
        assert "index.faiss" in expected  # written in row order while the shards go to the workers


def test_jobs_export_of_an_empty_pgvector_store_has_one_empty_shard(pg_server, tmp_path):
    repo = open_repository(pg_uri(pg_server), dimensions=DIMS)
    try:
        result = export_snapshot(repo, tmp_path / "out", jobs=3)
    finally:
        repo.close()
    doc = manifest_of(result.path)
    assert [s["file"] for s in doc["embeddings"]["shards"]] == ["embeddings/part-00000.parquet"]
    assert doc["record_count"] == 0 and verify_bundle(result.path).ok


def test_shared_snapshot_readers_do_not_see_writes_committed_after_it(pg_server):
    repo = open_repository(pg_uri(pg_server), dimensions=DIMS)
    try:
        repo.bulk_load(synthetic_batches(1_000, DIMS, batch_size=500))
        with repo.shared_snapshot() as snap:
            streams = snap.ranges(300, 128)
            late = next(iter(synthetic_batches(1_200, DIMS, batch_size=1_200)))
            repo.write_batch(late.take(list(range(1_000, 1_200))))  # 200 new ids, committed after the snapshot
            assert repo.count() == 1_200
            ids = [rid for stream in streams for batch in stream() for rid in batch.ids]
        assert snap.count == 1_000 and len(streams) == 4
        assert ids == [record_id(i) for i in range(1_000)]
    finally:
        repo.close()


@pytest.mark.parametrize("encoding", ["byte_stream_split", "plain"])
def test_vector_encoding_is_recorded_and_both_verify_and_import(encoding, tmp_path):
    repo = open_repository(f"faiss:{tmp_path / 'src'}?index=flat", dimensions=DIMS)
    repo.bulk_load(synthetic_batches(500, DIMS))
    result = export_snapshot(repo, tmp_path / "out", vector_encoding=encoding, compression_level=3)
    repo.close()
    doc = manifest_of(result.path)
    assert doc["embeddings"].get("vector_encoding", "plain") == encoding
    encodings = pq.ParquetFile(Path(result.path) / "embeddings/part-00000.parquet").metadata.row_group(0).column(1).encodings
    assert ("BYTE_STREAM_SPLIT" in encodings) == (encoding == "byte_stream_split")
    assert verify_bundle(result.path).ok
    target = open_repository(f"faiss:{tmp_path / 'dst'}")
    try:
        assert import_snapshot(target, result.path)["imported"] == 500
    finally:
        target.close()
