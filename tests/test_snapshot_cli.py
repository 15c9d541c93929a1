"""``procos snapshot`` and ``procos validate`` as a user runs them: real subprocesses, real bundles,
a FAISS source, FAISS and embedded-PostgreSQL targets."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from engine import api
from engine.repository import open_repository

COUNT, DIM = 120, 16
EXPORT_KEYS = {"path", "snapshot_id", "content_hash", "record_count"}
IMPORT_KEYS = {"imported", "skipped", "target", "snapshot_id", "content_hash", "artifacts",
               "search_tuning"}
NAME_RE = re.compile(r"^knowledge_snapshot_(\d{8}_\d{6})$")


def procos(*args: str) -> subprocess.CompletedProcess:
    env = {k: v for k, v in os.environ.items() if k != "VECTOR_ENDPOINT"}
    return subprocess.run([sys.executable, "-m", "engine.cli", *args], capture_output=True, text=True,
                          env=env, timeout=180)


def ok_json(*args: str) -> dict:
    proc = procos(*args, "--json")
    assert proc.returncode == 0, proc.stderr
    return json.loads(proc.stdout)


def store_state(uri: str) -> dict:
    repo = open_repository(uri)
    try:
        ids = [i for b in repo.iter_batches(500) for i in b.ids]
        return {"ids": ids, "count": repo.count(), "sequence": repo.sequence(),
                "artifacts": sorted(a.path for a in repo.artifacts.list())}
    finally:
        repo.close()


@pytest.fixture(scope="module")
def root(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("snapshot-cli")


@pytest.fixture(scope="module")
def source(root: Path) -> str:
    uri = f"faiss:{root / 'source'}?index=flat"
    assert api.seed_store(uri, COUNT, DIM, seed=1)["count"] == COUNT
    return uri


@pytest.fixture(scope="module")
def exported(source: str, root: Path) -> dict:
    before = datetime.now(UTC).replace(microsecond=0)
    out = ok_json("snapshot", "export", source, "--out", str(root / "snaps"))
    out["_started"] = before
    return out


@pytest.fixture(scope="module")
def bundle(exported: dict) -> Path:
    return Path(exported["path"])


# --- export and pack ---------------------------------------------------------------------------------

def test_export_prints_the_documented_json_and_names_the_bundle_by_utc_time(exported: dict, root: Path):
    started = exported.pop("_started")
    assert set(exported) == EXPORT_KEYS
    assert exported["record_count"] == COUNT and re.fullmatch(r"[0-9a-f]{64}", exported["content_hash"])
    assert str(uuid.UUID(exported["snapshot_id"])) == exported["snapshot_id"]
    path = Path(exported["path"])
    assert path.parent == (root / "snaps").resolve() and (path / "manifest.json").is_file()
    match = NAME_RE.match(path.name)
    assert match, path.name
    stamp = datetime.strptime(match.group(1), "%Y%m%d_%H%M%S").replace(tzinfo=UTC)
    assert started <= stamp <= started + timedelta(seconds=60)
    names = [p.name for p in path.parent.iterdir()]
    assert [n for n in names if n.startswith("knowledge_snapshot_")] == [path.name]
    assert not [n for n in names if n.startswith(".")]  # no staging folder left


def test_export_takes_the_next_free_name_when_the_second_is_taken(source: str, tmp_path: Path):
    out = tmp_path / "snaps"
    out.mkdir()
    now = datetime.now(UTC)
    for s in range(-2, 120):  # occupy every name the export could pick in the next two minutes
        (out / (now + timedelta(seconds=s)).strftime("knowledge_snapshot_%Y%m%d_%H%M%S")).mkdir()
    path = Path(ok_json("snapshot", "export", source, "--out", str(out))["path"])
    assert re.fullmatch(r"knowledge_snapshot_\d{8}_\d{6}_2", path.name)
    assert (out / path.name[:-2]).is_dir() and not any((out / path.name[:-2]).iterdir())  # untouched


def test_export_pack_writes_the_archive_next_to_the_bundle(source: str, tmp_path: Path):
    out = ok_json("snapshot", "export", source, "--out", str(tmp_path / "snaps"), "--pack")
    assert set(out) == EXPORT_KEYS | {"archive"}
    archive = Path(out["archive"])
    assert archive == Path(out["path"]).parent / f"{Path(out['path']).name}.tar.zst" and archive.is_file()
    assert ok_json("snapshot", "verify", str(archive))["ok"] is True


def test_pack_is_reproducible(bundle: Path):
    archive = Path(ok_json("snapshot", "pack", str(bundle))["archive"])
    assert archive.name == f"{bundle.name}.tar.zst"
    first = archive.read_bytes()
    assert Path(ok_json("snapshot", "pack", str(bundle))["archive"]) == archive
    assert archive.read_bytes() == first


# --- verify and inspect --------------------------------------------------------------------------------

def test_verify_of_a_folder_and_of_its_archive(bundle: Path):
    for target in (bundle, Path(api.pack_snapshot(bundle)["archive"])):
        report = ok_json("snapshot", "verify", str(target))
        assert set(report) == {"ok", "errors", "manifest", "signature"}
        assert report["signature"] == {"status": "missing", "fingerprint": None}
        assert report["ok"] is True and report["errors"] == []
        assert report["manifest"]["record_count"] == COUNT and report["manifest"]["dimensions"] == DIM
    proc = procos("snapshot", "verify", str(bundle))
    assert proc.returncode == 0 and proc.stdout.startswith("OK: ") and str(COUNT) in proc.stdout


def test_verify_of_a_damaged_bundle_exits_3_listing_every_problem(bundle: Path, tmp_path: Path):
    import shutil

    copy = tmp_path / bundle.name
    shutil.copytree(bundle, copy)
    (copy / "notes.txt").write_text("stray")
    target = copy / "prompts" / "extract_steps_v1.yaml"
    target.write_bytes(target.read_bytes() + b"# edited\n")
    proc = procos("snapshot", "verify", str(copy), "--json")
    assert proc.returncode == 3, proc.stderr
    report = json.loads(proc.stdout)
    assert report["ok"] is False and {"notes.txt", "prompts/extract_steps_v1.yaml"} <= {
        e["path"] for e in report["errors"]}
    proc = procos("snapshot", "verify", str(copy))
    assert proc.returncode == 3 and proc.stdout.startswith("FAILED: ") and "notes.txt" in proc.stdout


def test_inspect_prints_a_summary(bundle: Path, exported: dict):
    proc = procos("snapshot", "inspect", str(bundle))
    assert proc.returncode == 0, proc.stderr
    text = proc.stdout
    assert exported["snapshot_id"] in text and exported["content_hash"] in text
    assert f"{COUNT} x {DIM} dimensions" in text and "metric cosine" in text and "faiss" in text


# --- import ---------------------------------------------------------------------------------------------

def test_import_prints_the_documented_json(bundle: Path, exported: dict, tmp_path: Path):
    uri = f"faiss:{tmp_path / 'target'}"
    out = ok_json("snapshot", "import", str(bundle), uri)
    assert set(out) == IMPORT_KEYS
    assert out["imported"] == COUNT and out["skipped"] == 0 and out["target"].startswith("faiss:")
    assert (out["snapshot_id"], out["content_hash"]) == (exported["snapshot_id"], exported["content_hash"])
    assert store_state(uri)["count"] == COUNT


def test_dry_run_writes_nothing(bundle: Path, tmp_path: Path):
    uri = f"faiss:{tmp_path / 'target'}"
    api.seed_store(uri, 30, DIM, seed=7, artifacts=False)
    before = store_state(uri)
    plan = ok_json("snapshot", "import", str(bundle), uri, "--dry-run", "--mode", "replace")
    assert plan["records"] == COUNT and plan["mode"] == "replace" and plan["target_count"] == 30
    assert store_state(uri) == before


def test_dry_run_into_a_new_store_creates_nothing(bundle: Path, tmp_path: Path, pg_dsn: str, pg_datadir: Path):
    import psycopg

    folder = tmp_path / "new-target"
    plan = ok_json("snapshot", "import", str(bundle), f"faiss:{folder}", "--dry-run")
    assert plan["records"] == COUNT and plan["target_count"] == 0 and plan["settings_problem"] is None
    assert not folder.exists()
    table = f"t_{uuid.uuid4().hex[:12]}"
    plan = ok_json("snapshot", "import", str(bundle), f"postgresql+embedded:{pg_datadir}?table={table}",
                   "--dry-run")
    assert plan["records"] == COUNT and plan["target_count"] == 0
    with psycopg.connect(pg_dsn) as conn:
        assert conn.execute("SELECT count(*) FROM pg_tables WHERE tablename LIKE %s",
                            (f"{table}%",)).fetchone()[0] == 0


def test_replace_makes_the_target_exactly_the_bundle(bundle: Path, source: str, tmp_path: Path):
    uri = f"faiss:{tmp_path / 'target'}"
    api.seed_store(uri, 300, DIM, seed=7, artifacts=False)  # more ids than the bundle has
    out = ok_json("snapshot", "import", str(bundle), uri, "--mode", "replace")
    assert out["imported"] == COUNT
    after, want = store_state(uri), store_state(source)
    assert after["ids"] == want["ids"] and after["artifacts"] == want["artifacts"]


def test_on_conflict_error_refuses_a_collision_in_one_line(bundle: Path, tmp_path: Path):
    uri = f"faiss:{tmp_path / 'target'}"
    api.seed_store(uri, 5, DIM, seed=7, artifacts=False)  # ids rec-0000001.. collide with the bundle's
    before = store_state(uri)
    proc = procos("snapshot", "import", str(bundle), uri, "--on-conflict", "error")
    assert proc.returncode != 0 and proc.stdout == ""
    lines = proc.stderr.strip().splitlines()
    assert lines[0].startswith("Error: ") and "rec-0000001" in lines[0] and "Traceback" not in proc.stderr
    assert all(line.startswith("Try: ") for line in lines[1:]), proc.stderr
    assert store_state(uri) == before


def test_import_into_embedded_postgresql_then_validate(bundle: Path, source: str, tmp_path: Path,
                                                       pg_datadir: Path):
    uri = f"postgresql+embedded:{pg_datadir}?table=t_{uuid.uuid4().hex[:12]}"
    out = ok_json("snapshot", "import", str(bundle), uri)
    assert out["imported"] == COUNT and out["target"].startswith("postgresql+embedded:")
    assert store_state(uri)["ids"] == store_state(source)["ids"]
    report = tmp_path / "validation.md"
    result = ok_json("validate", source, uri, "--report", str(report), "--queries", "10")
    assert result["passed"] is True and result["failures"] == []
    text = report.read_text()
    assert text.startswith("#") and "PASS" in text.upper()


# --- the Parquet file, read without DuckDB ----------------------------------------------------------------

def test_embeddings_parquet_has_the_documented_columns(bundle: Path):
    pf = pq.ParquetFile(bundle / "embeddings/part-00000.parquet")
    schema = pf.schema_arrow
    utc_us = pa.timestamp("us", tz="UTC")
    assert [(f.name, f.type) for f in schema] == [
        ("id", pa.string()), ("vector", pa.list_(pa.field("element", pa.float32(), nullable=False), DIM)),
        ("metadata", pa.string()), ("version", pa.int64()), ("source_hash", pa.string()),
        ("created_ts", utc_us), ("updated_ts", utc_us), ("vector_hash", pa.string())]
    assert all(not f.nullable for f in schema)
    table = pf.read()
    ids = table.column("id").to_pylist()
    assert len(ids) == COUNT and ids == sorted(ids) and len(set(ids)) == COUNT
    assert all(isinstance(json.loads(m), dict) for m in table.column("metadata").to_pylist())
