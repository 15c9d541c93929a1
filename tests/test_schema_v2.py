"""Schema_version 2 (embeddings in shards) and the road from version 1: the golden v1 fixture verifies,
migrates (script, CLI, API) and imports into FAISS and pgvector with its exact records, also through
the import_snapshot BPMN process; shards are deterministic and every kind of shard damage is found;
a version newer than the tool is refused clearly."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

import numpy as np
import pyarrow.parquet as pq
import pytest
from click.testing import CliRunner
from reference import with_options

from engine import api
from engine.errors import BundleInvalid, InvalidInput, UnsupportedSchemaVersion
from engine.repository import open_repository
from engine.snapshot import SCHEMA_VERSION, export_snapshot, layout, verify_bundle
from engine.snapshot.checksums import content_hash, format_lines, sha256_file
from engine.snapshot.manifest import dumps, schema_problems
from engine.snapshot.reader import iter_batches, read_manifest
from engine.synthetic import synthetic_artifacts, synthetic_batches

ROOT = Path(__file__).resolve().parents[1]
FIXTURE = ROOT / "tests" / "fixtures" / "bundles" / "v1_knowledge_snapshot"
SCRIPT = ROOT / "scripts" / "migrations" / "migrate_snapshot_v1_to_v2.py"
COUNT, DIMS, SHARD = 100, 8, 25


def tree_digest(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def fixture_rows() -> dict[str, list]:
    """The v1 fixture's records read straight with pyarrow (independent of the engine's reader)."""
    table = pq.read_table(FIXTURE / "embeddings.parquet")
    return {"ids": table.column("id").to_pylist(),
            "vectors": np.asarray(table.column("vector").combine_chunks().flatten(), dtype="<f4").tobytes(),
            "metadata": [json.loads(m) for m in table.column("metadata").to_pylist()],
            "versions": table.column("version").to_pylist(),
            "source_hashes": table.column("source_hash").to_pylist(),
            "created": [int(v) for v in table.column("created_ts").cast("int64").to_pylist()],
            "updated": [int(v) for v in table.column("updated_ts").cast("int64").to_pylist()]}


def rows_of(batches) -> dict[str, list]:
    batches = list(batches)
    return {"ids": [i for b in batches for i in b.ids],
            "vectors": b"".join(np.asarray(b.vectors, dtype="<f4").tobytes() for b in batches),
            "metadata": [json.loads(m) if isinstance(m, str) else m for b in batches for m in b.metadata],
            "versions": [int(v) for b in batches for v in b.versions],
            "source_hashes": [h for b in batches for h in b.source_hashes],
            "created": [int(v) for b in batches for v in b.created_us],
            "updated": [int(v) for b in batches for v in b.updated_us]}


def store_rows(uri: str) -> dict[str, list]:
    repo = open_repository(uri)
    try:
        return rows_of(repo.iter_batches(7))
    finally:
        repo.close()


def reseal(bundle: Path, edit=None) -> None:
    """Rewrite checksums.sha256 for the files now present (and the content hash), as a careful forger would."""
    files, _ = layout.relative_files(bundle)
    entries = {f: sha256_file(bundle / f)[0] for f in files if f not in ("checksums.sha256", "manifest.json")}
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["content_hash"] = content_hash(entries)
    if edit:
        edit(doc)
    data = dumps(doc)
    (bundle / "manifest.json").write_bytes(data)
    entries["manifest.json"] = hashlib.sha256(data).hexdigest()
    (bundle / "checksums.sha256").write_text(format_lines(entries))


def errors_of(bundle: Path) -> list[tuple[str, str]]:
    return [(f.path, f.problem) for f in verify_bundle(bundle).errors]


@pytest.fixture(scope="module")
def source(tmp_path_factory) -> str:
    tmp = tmp_path_factory.mktemp("v2-source")
    uri = f"faiss:{tmp / 'store'}?index=flat"
    repo = open_repository(uri, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(COUNT, DIMS, seed=5, batch_size=30))
    for path, data in synthetic_artifacts(1).items():
        repo.artifacts.write(path, data)
    repo.close()
    return uri


@pytest.fixture(scope="module")
def sharded(source: str, tmp_path_factory) -> Path:
    return Path(api.export_snapshot(source, tmp_path_factory.mktemp("v2") / "snaps", shard_rows=SHARD)["path"])


@pytest.fixture
def bundle(sharded: Path, tmp_path: Path) -> Path:
    copy = tmp_path / sharded.name
    shutil.copytree(sharded, copy)
    return copy


@pytest.fixture
def v1_copy(tmp_path: Path) -> Path:
    copy = tmp_path / "v1" / FIXTURE.name
    shutil.copytree(FIXTURE, copy)
    return copy


def pg_uri(request, tmp_path: Path) -> str:
    pg = request.getfixturevalue("pg_server")
    table = f"t_{uuid.uuid4().hex[:12]}"
    return (with_options(pg.dsn, table=table, index="flat") if pg.datadir is None
            else f"postgresql+embedded:{pg.datadir}?table={table}&index=flat")


# --- version 2 bundles ------------------------------------------------------------------------------


def test_export_splits_rows_into_full_shards_in_ascending_id_order(sharded: Path):
    doc = read_manifest(sharded)
    assert doc["schema_version"] == SCHEMA_VERSION == 2 and schema_problems(doc) == []
    shards = doc["embeddings"]["shards"]
    assert [s["file"] for s in shards] == [f"embeddings/part-{i:05d}.parquet" for i in range(4)]
    assert [s["rows"] for s in shards] == [SHARD] * 4 and doc["embeddings"]["shard_rows"] == SHARD
    assert "file" not in doc["embeddings"] and not (sharded / "embeddings.parquet").exists()
    all_ids = []
    for entry in shards:
        pf = pq.ParquetFile(sharded / entry["file"])
        ids = pf.read(columns=["id"]).column("id").to_pylist()
        assert (ids[0], ids[-1], len(ids)) == (entry["first_id"], entry["last_id"], entry["rows"])
        assert pf.metadata.row_group(0).column(0).compression == "ZSTD"
        all_ids += ids
    assert all_ids == sorted(all_ids) and len(set(all_ids)) == COUNT
    for before, after in zip(shards, shards[1:], strict=False):
        assert before["last_id"] < after["first_id"]
    assert rows_of(iter_batches(sharded, doc, 10))["ids"] == all_ids
    report = verify_bundle(sharded)
    assert report.ok, report.summary()
    assert report.stats["rows_checked"] == COUNT


def test_same_store_gives_byte_identical_shards_and_sha256sum_checks_them(source: str, sharded: Path, tmp_path):
    repo = open_repository(source)
    try:
        again = export_snapshot(repo, tmp_path / "again", shard_rows=SHARD, batch_size=7)  # other batch edges
    finally:
        repo.close()
    for i in range(4):
        rel = layout.shard_name(i)
        assert (Path(again.path) / rel).read_bytes() == (sharded / rel).read_bytes(), rel
    assert again.content_hash == read_manifest(sharded)["content_hash"]
    done = subprocess.run(["sha256sum", "-c", "--strict", "checksums.sha256"], cwd=sharded, capture_output=True,
                          text=True)
    assert done.returncode == 0 and "embeddings/part-00003.parquet: OK" in done.stdout


def test_a_short_last_shard_and_an_empty_store(tmp_path: Path):
    uri = f"faiss:{tmp_path / 's'}?index=flat"
    repo = open_repository(uri, dimensions=4)
    empty = export_snapshot(repo, tmp_path / "empty", shard_rows=10)
    doc = read_manifest(Path(empty.path))
    assert doc["embeddings"]["shards"] == [{"file": "embeddings/part-00000.parquet", "rows": 0,
                                            "first_id": None, "last_id": None}]
    assert verify_bundle(empty.path).ok
    repo.bulk_load(synthetic_batches(21, 4, seed=2))
    doc = read_manifest(Path(export_snapshot(repo, tmp_path / "odd", shard_rows=10).path))
    repo.close()
    assert [s["rows"] for s in doc["embeddings"]["shards"]] == [10, 10, 1]


def test_a_flipped_byte_in_a_middle_shard_is_found(bundle: Path):
    rel = layout.shard_name(1)
    data = bytearray((bundle / rel).read_bytes())
    data[len(data) // 2] ^= 0x01
    (bundle / rel).write_bytes(bytes(data))
    errors = errors_of(bundle)
    assert any(p == rel and "sha256 mismatch" in m for p, m in errors), errors
    assert {p for p, _ in errors} <= {rel, "manifest.json"}  # and the content_hash no longer matches


def test_a_missing_shard_is_found(bundle: Path):
    (bundle / layout.shard_name(2)).unlink()
    errors = errors_of(bundle)
    assert any(p == layout.shard_name(2) and "missing" in m for p, m in errors), errors


def test_a_missing_shard_is_found_even_when_the_forger_rewrites_checksums(bundle: Path):
    (bundle / layout.shard_name(3)).unlink()
    reseal(bundle)
    text = " | ".join(f"{p}: {m}" for p, m in errors_of(bundle))
    assert "embeddings/part-00003.parquet: not listed in checksums.sha256" in text
    assert "embeddings/part-00003.parquet: listed in the manifest's embeddings.shards but missing" in text


def test_an_added_shard_is_found(bundle: Path):
    shutil.copy(bundle / layout.shard_name(3), bundle / "embeddings/part-00004.parquet")
    reseal(bundle)
    errors = errors_of(bundle)
    assert ("embeddings/part-00004.parquet",
            "is in the embeddings folder but not in the manifest's embeddings.shards") in errors


def test_reordered_shards_are_found_by_their_first_and_last_ids(bundle: Path):
    a, b = bundle / layout.shard_name(1), bundle / layout.shard_name(2)
    tmp = bundle / "swap"
    a.rename(tmp)
    b.rename(a)
    tmp.rename(b)
    reseal(bundle)
    text = " | ".join(f"{p}: {m}" for p, m in errors_of(bundle))
    assert "embeddings/part-00001.parquet: its first id is" in text and "the manifest says first_id=" in text
    assert "ids must ascend across shards" in text


def test_manifest_shard_entries_that_lie_are_found(bundle: Path):
    def lie(doc):
        doc["embeddings"]["shards"][0]["rows"] = 24
        doc["embeddings"]["shards"][2]["last_id"] = "zzz"

    reseal(bundle, lie)
    text = " | ".join(f"{p}: {m}" for p, m in errors_of(bundle))
    assert "embeddings/part-00000.parquet: holds 25 rows, the manifest says embeddings.shards[0].rows=24" in text
    assert "the manifest says last_id='zzz'" in text and "shard_rows=25" in text


def test_cli_exports_with_shard_rows(source: str, tmp_path: Path):
    from engine.cli import cli

    result = CliRunner().invoke(cli, ["snapshot", "export", source, "--out", str(tmp_path), "--shard-rows", "40",
                                      "--json"])
    assert result.exit_code == 0, result.output
    doc = read_manifest(Path(json.loads(result.output)["path"]))
    assert [s["rows"] for s in doc["embeddings"]["shards"]] == [40, 40, 20]


# --- the golden version 1 bundle ----------------------------------------------------------------------


def test_the_v1_fixture_verifies_as_version_1():
    report = verify_bundle(FIXTURE)
    assert report.ok, report.summary()
    assert report.manifest["schema_version"] == 1 and report.manifest["record_count"] == 40
    assert schema_problems(report.manifest) == []
    assert api.check_package(FIXTURE)["needs_migration"] is True


@pytest.mark.parametrize("backend", ["faiss", "pgvector"])
def test_the_v1_fixture_imports_with_its_exact_records(backend: str, v1_copy: Path, tmp_path: Path, request):
    before = tree_digest(v1_copy)
    uri = f"faiss:{tmp_path / 'target'}?index=flat" if backend == "faiss" else pg_uri(request, tmp_path)
    plan = api.import_snapshot(v1_copy, uri, mode="replace", dry_run=True)
    assert plan["schema_version"] == 1 and plan["migrate"] is True
    out = api.import_snapshot(v1_copy, uri, mode="replace")
    assert out["imported"] == 40 and out["migrated_from"] == 1
    assert out["snapshot_id"] == "b6e2b421-154a-4017-bf49-78fe31eb10b4"
    assert store_rows(uri) == fixture_rows()
    repo = open_repository(uri)
    try:
        stored = {a.path: repo.artifacts.read(a.path) for a in repo.artifacts.list()}
    finally:
        repo.close()
    assert stored == {p: (FIXTURE / p).read_bytes() for p in read_manifest(FIXTURE)["artifacts_state"]}
    assert tree_digest(v1_copy) == before  # the input is never modified
    assert not [p for p in v1_copy.parent.iterdir() if p != v1_copy]  # nothing written next to it


def test_the_v1_fixture_imports_as_a_one_bundle_chain_and_from_an_archive(v1_copy: Path, tmp_path: Path):
    named = v1_copy.parent / "knowledge_snapshot_20261124_214624"
    v1_copy.rename(named)
    archive = api.pack_snapshot(named)["archive"]
    out = api.import_snapshot(archive, f"faiss:{tmp_path / 'a'}?index=flat", mode="replace")
    assert (out["imported"], out["migrated_from"]) == (40, 1)
    chain = api.import_chain([named], f"faiss:{tmp_path / 'c'}?index=flat", mode="replace")
    assert chain["imported"] == 40 and store_rows(f"faiss:{tmp_path / 'c'}") == fixture_rows()


def test_migration_script_writes_a_verified_v2_bundle_with_the_same_records(v1_copy: Path, tmp_path: Path):
    before = tree_digest(v1_copy)
    out = tmp_path / "migrated"
    done = subprocess.run([sys.executable, str(SCRIPT), str(v1_copy), "--out", str(out), "--shard-rows", "16",
                           "--json"], capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 0, done.stderr
    result = json.loads(done.stdout)
    bundle = Path(result["path"])
    assert bundle.parent == out and bundle.name == "knowledge_snapshot_20261124_214624"
    report = verify_bundle(bundle)
    assert report.ok, report.summary()
    old, new = read_manifest(FIXTURE), report.manifest
    assert new["schema_version"] == 2 and [s["rows"] for s in new["embeddings"]["shards"]] == [16, 16, 8]
    assert new["migrated_from"] == {"schema_version": 1, "snapshot_id": old["snapshot_id"],
                                    "content_hash": old["content_hash"]}
    kept = {k: v for k, v in old.items() if k not in ("schema_version", "embeddings", "content_hash")}
    assert {k: new[k] for k in kept} == kept  # id, time, source, counts, sequence, artifacts_state...
    assert rows_of(iter_batches(bundle, new, 9)) == fixture_rows()
    for rel in [*old["artifacts_state"], "index.faiss"]:
        assert (bundle / rel).read_bytes() == (FIXTURE / rel).read_bytes()
    assert tree_digest(v1_copy) == before


def test_migration_cli_and_refusals(v1_copy: Path, tmp_path: Path):
    from engine.cli import cli

    result = CliRunner().invoke(cli, ["snapshot", "migrate", str(v1_copy), "--out", str(tmp_path / "m"), "--json"])
    assert result.exit_code == 0, result.output
    migrated = json.loads(result.output)
    assert migrated["shards"] == 1 and migrated["migrated_from"]["schema_version"] == 1
    with pytest.raises(InvalidInput, match="not 1; nothing to migrate"):
        api.migrate_snapshot(migrated["path"], tmp_path / "again")
    target = v1_copy / "embeddings.parquet"
    data = bytearray(target.read_bytes())
    data[200] ^= 0x01
    target.write_bytes(bytes(data))
    done = subprocess.run([sys.executable, str(SCRIPT), str(v1_copy), "--out", str(tmp_path / "bad")],
                          capture_output=True, text=True, cwd=ROOT, timeout=120)
    assert done.returncode == 1 and "failed verification" in done.stderr and "Try:" in done.stderr
    assert not (tmp_path / "bad").exists() or not any((tmp_path / "bad").iterdir())
    with pytest.raises(BundleInvalid):
        api.import_snapshot(v1_copy, f"faiss:{tmp_path / 't'}?index=flat")


def test_a_newer_schema_version_is_refused_with_a_clear_message(bundle: Path, tmp_path: Path):
    reseal(bundle, lambda doc: doc.update(schema_version=3))
    report = verify_bundle(bundle)
    [finding] = report.errors
    assert finding.path == "manifest.json" and finding.code == "unsupported_version"
    assert "schema_version 3 is newer than this tool supports (2)" in finding.problem
    with pytest.raises(UnsupportedSchemaVersion, match="newer") as info:
        api.import_snapshot(bundle, f"faiss:{tmp_path / 't'}?index=flat")
    assert "upgrade" in (info.value.hint or "")
    with pytest.raises(UnsupportedSchemaVersion):
        api.check_package(bundle)
    assert not (tmp_path / "t").exists()


def test_the_import_process_migrates_and_loads_the_v1_fixture(v1_copy: Path, tmp_path: Path):
    from workflow_support import seed_users

    home = tmp_path / "home"
    home.mkdir()
    env = {k: v for k, v in os.environ.items()
           if k not in ("PROCOS_PROCESSES", "PROCOS_STATE_DSN", "PROCOS_WEBHOOK_URL", "VECTOR_ENDPOINT")}
    env["PROCOS_HOME"] = str(home)
    env["PROCOS_TOKEN"] = seed_users({"u": ["Owner", "Approver"]}, home=home)["u"]
    target = f"faiss:{tmp_path / 'target'}?index=flat"
    done = subprocess.run([sys.executable, "-m", "engine.cli", "process", "start", "import_snapshot",
                           "--var", f"bundle={v1_copy}", "--var", f"target={target}", "--var", "environment=dev",
                           "--as", "u", "--json"], env=env, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    result = json.loads(done.stdout)
    assert result["state"] == "completed", result
    assert result["data"]["imported"] == 40 and result["data"]["package"]["schema_version"] == 1
    assert store_rows(target) == fixture_rows()


def test_drift_and_validation_read_v1_and_sharded_v2_bundles(v1_copy: Path, tmp_path: Path, monkeypatch):
    monkeypatch.setenv("PROCOS_HOME", str(tmp_path / "home"))
    uri = f"faiss:{tmp_path / 'target'}?index=flat"
    api.import_snapshot(v1_copy, uri, mode="replace")
    migrated = api.migrate_snapshot(v1_copy, tmp_path / "m", shard_rows=15)["path"]
    for bundle in (v1_copy, migrated):
        drift = api.drift_check(uri, bundle, emit=False)
        assert (drift["drift"], drift["checked"]) == (False, 40), bundle
        assert api.drift_check(uri, bundle, sample=7, emit=False)["checked"] == 7
        result = api.validate(str(bundle), uri, queries=5, k=5)
        assert result["passed"], result


def test_chain_lineage_accepts_a_parent_by_its_pre_migration_content_hash(v1_copy: Path, tmp_path: Path):
    from engine.errors import LineageError
    from engine.snapshot.delta_import import check_chain

    v1 = read_manifest(FIXTURE)
    full = read_manifest(Path(api.migrate_snapshot(v1_copy, tmp_path / "m")["path"]))
    assert full["content_hash"] != v1["content_hash"]
    delta = {"kind": "delta", "snapshot_id": str(uuid.uuid4()), "base_sequence": v1["sequence"],
             "parent": {"snapshot_id": v1["snapshot_id"], "content_hash": v1["content_hash"]},
             "metric": v1["metric"], "vector_backend": v1["vector_backend"], "dimensions": v1["dimensions"],
             "content_hash": "1" * 64}
    check_chain([("full", full), ("delta", delta)])  # built on the v1 bundle, applied after its migrated copy
    delta["parent"]["content_hash"] = "2" * 64
    with pytest.raises(LineageError, match="content_hash"):
        check_chain([("full", full), ("delta", delta)])
