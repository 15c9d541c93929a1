"""The bundle format (schema_version 2), built straight from RecordBatches: layout, determinism,
checksums compatible with GNU sha256sum, the content hash, the manifest schema, atomic naming."""

from __future__ import annotations

import hashlib
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from snapshot_helpers import artifact_store, build_bundle, synthetic_bundle

from engine.errors import BundleError, UnsupportedSchemaVersion
from engine.records import vector_sha256
from engine.snapshot import SCHEMA_VERSION, inspect_bundle, verify_bundle
from engine.snapshot.checksums import content_hash, parse_lines
from engine.snapshot.manifest import load_schema, schema_problems
from engine.snapshot.parquet_io import rows_per_group
from engine.snapshot.reader import iter_batches, read_manifest
from engine.snapshot.staging import abort_bundle, start_bundle
from engine.snapshot.writer import finish_bundle
from engine.synthetic import synthetic_artifacts, synthetic_batches


def data_files(bundle: Path) -> dict[str, bytes]:
    return {str(p.relative_to(bundle)): p.read_bytes() for p in sorted(bundle.rglob("*"))
            if p.is_file() and p.name != "manifest.json"}


def test_bundle_holds_the_documented_files(tmp_path: Path):
    result = synthetic_bundle(tmp_path / "snaps", tmp_path)
    bundle = Path(result.path)
    assert bundle.parent == (tmp_path / "snaps").resolve()
    assert bundle.name.startswith("knowledge_snapshot_") and len(bundle.name) == len("knowledge_snapshot_20240101_000000")
    names = sorted(str(p.relative_to(bundle)) for p in bundle.rglob("*") if p.is_file())
    artifacts = sorted(synthetic_artifacts(0))
    assert names == sorted(["manifest.json", "checksums.sha256", "embeddings/part-00000.parquet", *artifacts])
    assert result.to_json().keys() == {"path", "snapshot_id", "content_hash", "record_count"}
    assert result.record_count == 300
    assert verify_bundle(bundle).ok


def test_manifest_carries_counts_settings_and_validates_against_the_shipped_schema(tmp_path: Path):
    bundle = Path(synthetic_bundle(tmp_path / "s", tmp_path, metric="l2", index="flat").path)
    doc = read_manifest(bundle)
    assert schema_problems(doc) == []
    assert SCHEMA_VERSION in load_schema()["properties"]["schema_version"]["enum"]
    assert doc["schema_version"] == SCHEMA_VERSION == 2
    assert (doc["record_count"], doc["dimensions"], doc["metric"], doc["index"]["type"]) == (300, 16, "l2", "flat")
    assert (doc["bpmn_count"], doc["prompt_count"], doc["pattern_count"], doc["example_count"],
            doc["domain_count"], doc["log_count"]) == (3, 3, 1, 1, 1, 1)
    assert doc["vector_backend"] == "pgvector" and doc["source_env"] == "test"
    assert doc["hash_algorithm"] == "sha256" and doc["tool"] == "procos-knowledge" and doc["tool_version"]
    assert doc["created_utc"].endswith("Z")


def test_embeddings_parquet_columns_types_order_and_vector_hashes(tmp_path: Path):
    bundle = Path(synthetic_bundle(tmp_path / "s", tmp_path, count=2500, dims=8).path)
    pf = pq.ParquetFile(bundle / "embeddings/part-00000.parquet")
    schema = pf.schema_arrow
    assert schema.names == ["id", "vector", "metadata", "version", "source_hash", "created_ts",
                            "updated_ts", "vector_hash"]
    assert schema.field("vector").type == pa.list_(pa.field("element", pa.float32(), nullable=False), 8)
    assert schema.field("created_ts").type == pa.timestamp("us", tz="UTC")
    assert schema.metadata is None or b"pandas" not in schema.metadata
    assert pf.metadata.row_group(0).column(2).compression == "ZSTD"
    assert pf.metadata.row_group(0).num_rows == min(2500, rows_per_group(8))
    table = pf.read()
    ids = table.column("id").to_pylist()
    assert ids == sorted(ids) and len(set(ids)) == len(ids) == 2500
    original = list(synthetic_batches(2500, 8, seed=1, batch_size=2500))[0]
    back = list(iter_batches(bundle, read_manifest(bundle), batch_size=1000))
    assert [len(b) for b in back] == [1000, 1000, 500]
    assert sum((b.ids for b in back), []) == original.ids
    first = back[0]
    assert (first.vectors == original.vectors[:1000]).all()
    assert first.metadata == original.metadata[:1000]
    assert (first.created_us == original.created_us[:1000]).all()
    assert table.column("vector_hash")[5].as_py() == vector_sha256(original.vectors[5])


def test_reexport_is_byte_identical_except_manifest_ids_and_time(tmp_path: Path):
    one = synthetic_bundle(tmp_path / "s", tmp_path / "x", batch_size=64)
    two = synthetic_bundle(tmp_path / "s", tmp_path / "y", batch_size=97)  # other batch boundaries
    assert one.path != two.path
    assert data_files(Path(one.path)).keys() == data_files(Path(two.path)).keys()
    for name, data in data_files(Path(one.path)).items():
        if name != "checksums.sha256":  # it lists manifest.json, whose id and time differ
            assert data == data_files(Path(two.path))[name], name
    assert one.content_hash == two.content_hash and one.snapshot_id != two.snapshot_id
    m1, m2 = read_manifest(Path(one.path)), read_manifest(Path(two.path))
    assert {k for k in m1 if m1[k] != m2[k]} <= {"snapshot_id", "created_utc"}


def test_content_hash_ignores_backend_specific_files_and_matches_grep_sha256sum(tmp_path: Path):
    a = synthetic_bundle(tmp_path / "s", tmp_path / "x", backend="pgvector")
    b = synthetic_bundle(tmp_path / "s", tmp_path / "y", backend="faiss")
    assert (Path(b.path) / "index.faiss").is_file() and not (Path(a.path) / "index.faiss").exists()
    assert (Path(a.path) / "embeddings/part-00000.parquet").read_bytes() == (Path(b.path) / "embeddings/part-00000.parquet").read_bytes()
    assert a.content_hash == b.content_hash
    text = (Path(b.path) / "checksums.sha256").read_text()
    kept = "".join(line + "\n" for line in text.splitlines()
                   if not line.endswith("  manifest.json") and not line.endswith("  index.faiss"))
    assert hashlib.sha256(kept.encode()).hexdigest() == b.content_hash
    assert content_hash(parse_lines(text)[0]) == b.content_hash
    assert verify_bundle(b.path).ok


def test_sha256sum_check_passes_inside_the_bundle(tmp_path: Path):
    bundle = Path(synthetic_bundle(tmp_path / "s", tmp_path, backend="faiss").path)
    lines = (bundle / "checksums.sha256").read_text().splitlines()
    paths = [line.split("  ", 1)[1] for line in lines]
    assert paths == sorted(paths) and "checksums.sha256" not in paths and "manifest.json" in paths
    done = subprocess.run(["sha256sum", "-c", "--strict", "checksums.sha256"], cwd=bundle,
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stdout + done.stderr


def test_faiss_index_matches_rows(tmp_path: Path):
    faiss = pytest.importorskip("faiss")
    bundle = Path(synthetic_bundle(tmp_path / "s", tmp_path, backend="faiss", metric="l2", index="flat").path)
    index = faiss.read_index(str(bundle / "index.faiss"))
    assert (index.ntotal, index.d) == (300, 16)
    rows = next(iter_batches(bundle, read_manifest(bundle), 300))
    assert (index.reconstruct(7) == rows.vectors[7]).all()


def test_same_second_exports_get_suffixed_names_and_never_overwrite(tmp_path: Path):
    from datetime import UTC, datetime

    when = datetime(2024, 1, 2, 3, 4, 5, tzinfo=UTC)
    store = artifact_store(tmp_path / "a", {})
    out = tmp_path / "snaps"
    (out / "knowledge_snapshot_20240102_030405").mkdir(parents=True)  # taken (even empty)
    names = []
    for _ in range(2):
        staging = start_bundle(out, now=when)
        assert staging.name.startswith(".knowledge_snapshot_20240102_030405_tmp-")
        from engine.repository import StoreSettings
        from engine.snapshot.writer import write_artifacts, write_embeddings
        write_embeddings(staging, synthetic_batches(5, 4), settings=StoreSettings(4), backend="pgvector", uri="x")
        write_artifacts(staging, [store])
        names.append(Path(finish_bundle(staging).path).name)
    assert names == ["knowledge_snapshot_20240102_030405_2", "knowledge_snapshot_20240102_030405_3"]
    assert not any(p.name.startswith(".") for p in out.iterdir())


def test_failed_export_leaves_nothing_that_looks_like_a_bundle(tmp_path: Path):
    out = tmp_path / "snaps"

    def broken():
        yield from synthetic_batches(100, 4, batch_size=10)
        raise RuntimeError("store went away")

    with pytest.raises(RuntimeError):
        build_bundle(out, broken(), artifact_store(tmp_path / "a", {}), dims=4)
    leftovers = list(out.iterdir())
    assert all(p.name.startswith(".") and not (p / "manifest.json").exists() for p in leftovers)
    for p in leftovers:
        abort_bundle(p)
    assert list(out.iterdir()) == []


def test_finish_refuses_when_a_step_has_not_run(tmp_path: Path):
    staging = start_bundle(tmp_path / "s")
    with pytest.raises(BundleError, match="dump_embeddings"):
        finish_bundle(staging)


def test_steps_run_from_separate_state_on_disk(tmp_path: Path):
    """Each step reads only the staging folder, as separate processes would."""
    code = """
import sys
from pathlib import Path
sys.path.insert(0, {tests!r})
from snapshot_helpers import artifact_store
from engine.repository import StoreSettings
from engine.snapshot.writer import write_artifacts, write_embeddings
from engine.synthetic import synthetic_artifacts, synthetic_batches
staging = Path(sys.argv[1])
write_embeddings(staging, synthetic_batches(50, 4), settings=StoreSettings(4), backend="pgvector", uri="x")
write_artifacts(staging, [artifact_store(Path(sys.argv[2]))])
"""
    staging = start_bundle(tmp_path / "s")
    tests = str(Path(__file__).parent)
    subprocess.run([sys.executable, "-c", code.format(tests=tests), str(staging), str(tmp_path / "a")],
                   check=True)
    result = finish_bundle(staging)
    assert result.record_count == 50 and verify_bundle(result.path).ok


def test_newer_schema_version_is_refused_clearly(tmp_path: Path):
    bundle = Path(synthetic_bundle(tmp_path / "s", tmp_path).path)
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["schema_version"] = SCHEMA_VERSION + 1
    (bundle / "manifest.json").write_text(json.dumps(doc))
    report = verify_bundle(bundle)
    assert not report.ok and report.unsupported_version
    assert report.to_json()["errors"][0]["path"] == "manifest.json"
    assert "newer" in report.to_json()["errors"][0]["problem"]
    with pytest.raises(UnsupportedSchemaVersion):
        read_manifest(bundle)


def test_empty_store_exports_a_valid_bundle(tmp_path: Path):
    result = build_bundle(tmp_path / "s", [], artifact_store(tmp_path / "a", {}), dims=0)
    report = verify_bundle(result.path)
    assert report.ok, report.summary()
    assert result.record_count == 0


def test_inspect_summarizes_folder_and_archive(tmp_path: Path):
    from engine.snapshot import pack_bundle

    result = synthetic_bundle(tmp_path / "s", tmp_path)
    text = inspect_bundle(result.path)
    assert result.snapshot_id in text and "300 x 16" in text and "bpmn 3" in text
    archive = pack_bundle(result.path)
    assert result.content_hash in inspect_bundle(archive)
    shutil.rmtree(result.path)
    assert verify_bundle(archive).ok


def test_out_of_order_stream_is_refused_and_the_source_stream_closed(tmp_path: Path):
    closed = []

    def unordered():
        try:
            batches = list(synthetic_batches(40, 4, batch_size=10))
            yield from (batches[0], batches[2], batches[1], batches[3])
        finally:
            closed.append(True)

    with pytest.raises(BundleError, match="strictly ascending"):
        build_bundle(tmp_path / "s", unordered(), artifact_store(tmp_path / "a", {}), dims=4)
    assert closed == [True]
    assert [p for p in (tmp_path / "s").iterdir() if not p.name.startswith(".")] == []
