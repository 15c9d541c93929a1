"""An import into pgvector checks every row in the pass that loads it: a bundle whose files all match
their checksums (resealed after a row was changed) is still refused, the load is rolled back, an
existing target is left exactly as it was and a target the import created is removed again."""

from __future__ import annotations

import hashlib
import json
import shutil
import uuid
from pathlib import Path

import psycopg
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from reference import with_options

from engine import api
from engine.errors import BundleInvalid
from engine.repository import open_repository
from engine.snapshot import export_snapshot, verify_bundle
from engine.snapshot.checksums import content_hash, format_lines, parse_lines
from engine.snapshot.manifest import dumps
from engine.synthetic import synthetic_batches

DIMS, COUNT = 8, 900


def pg_uri(pg_server) -> str:
    table = f"rc_{uuid.uuid4().hex[:10]}"
    return (with_options(pg_server.dsn, table=table, index="flat") if pg_server.datadir is None
            else f"postgresql+embedded:{pg_server.datadir}?table={table}&index=flat")


def reseal(bundle: Path, rel: str) -> None:
    """Rewrite checksums.sha256, content_hash and the manifest to match the files as they are now."""
    entries, _ = parse_lines((bundle / "checksums.sha256").read_text())
    entries[rel] = hashlib.sha256((bundle / rel).read_bytes()).hexdigest()
    doc = json.loads((bundle / "manifest.json").read_text())
    doc["content_hash"] = content_hash(entries)
    data = dumps(doc)
    (bundle / "manifest.json").write_bytes(data)
    entries["manifest.json"] = hashlib.sha256(data).hexdigest()
    (bundle / "checksums.sha256").write_text(format_lines(entries))


@pytest.fixture(scope="module")
def resealed(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("rowcheck")
    repo = open_repository(f"faiss:{root / 'src'}?index=flat", dimensions=DIMS)
    repo.bulk_load(synthetic_batches(COUNT, DIMS, seed=5, batch_size=300))
    good = Path(export_snapshot(repo, root / "snaps", shard_rows=400).path)
    repo.close()
    bad = root / "resealed" / good.name
    shutil.copytree(good, bad)
    rel = "embeddings/part-00002.parquet"  # the last shard: the rows before it are loaded already
    table = pq.read_table(bad / rel)
    hashes = table.column("vector_hash").to_pylist()
    hashes[-1] = "0" * 64
    table = table.set_column(table.schema.get_field_index("vector_hash"), "vector_hash", pa.array(hashes, pa.string()))
    pq.write_table(table, bad / rel, compression="zstd")
    reseal(bad, rel)
    return bad


def test_a_resealed_bundle_passes_the_file_checks_but_not_the_row_checks(resealed):
    report = verify_bundle(resealed)
    assert not report.ok
    assert all(f.path == "embeddings/part-00002.parquet" for f in report.errors)
    assert any("vector_hash" in f.problem for f in report.errors)


def test_import_into_a_new_pgvector_store_leaves_no_store(pg_server, resealed):
    uri = pg_uri(pg_server)
    with pytest.raises(BundleInvalid) as err:
        api.import_snapshot(str(resealed), uri)
    assert "rolled back" in err.value.message and "vector_hash" in err.value.message
    table = uri.split("table=")[1].split("&")[0]
    repo_dsn = open_repository(pg_uri(pg_server), dimensions=DIMS)
    try:
        with psycopg.connect(repo_dsn._dsn) as conn:
            assert conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is None
            assert conn.execute("SELECT count(*) FROM procos_store_state WHERE table_name = %s",
                                (table,)).fetchone()[0] == 0
    finally:
        repo_dsn.close()


def test_import_into_an_existing_pgvector_store_changes_nothing(pg_server, resealed):
    uri = pg_uri(pg_server)
    repo = open_repository(uri, dimensions=DIMS)
    repo.bulk_load(synthetic_batches(50, DIMS, seed=9))
    before = ([b.ids for b in repo.iter_batches()], repo.sequence())
    for mode in ("append", "replace"):
        with pytest.raises(BundleInvalid):
            api.import_snapshot(str(resealed), uri, mode=mode)
        assert ([b.ids for b in repo.iter_batches()], repo.sequence()) == before
    repo.close()
