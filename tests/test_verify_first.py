"""Verify before anything exists: a damaged bundle imported into a target that does not exist yet leaves
no store behind (no FAISS folder, no table, no embedded server folder), through the API, the CLI and
the import process."""

from __future__ import annotations

import shutil
import subprocess
import tempfile
import uuid
from pathlib import Path

import pytest

from engine import api
from engine.errors import BundleInvalid
from tests.test_processes_e2e import ROOT, Procos


@pytest.fixture(scope="module")
def damaged(tmp_path_factory) -> Path:
    root = tmp_path_factory.mktemp("damaged")
    uri = f"faiss:{root / 'source'}?index=flat"
    api.seed_store(uri, 80, 8)
    bundle = Path(api.export_snapshot(uri, root / "snaps")["path"])
    shard = next((bundle / "embeddings").glob("part-*.parquet"))
    data = bytearray(shard.read_bytes())
    data[len(data) // 2] ^= 0xFF
    shard.write_bytes(bytes(data))
    return bundle


def table_exists(dsn: str, table: str) -> bool:
    import psycopg

    with psycopg.connect(dsn) as conn:
        return conn.execute("SELECT to_regclass(%s)", (table,)).fetchone()[0] is not None


def targets(tmp_path: Path, pg_dsn: str) -> dict[str, tuple[str, object]]:
    """name -> (URI of a store that does not exist, a check that it still does not)."""
    from tests.reference import with_options

    table = f"t_{uuid.uuid4().hex[:10]}"
    embedded = Path(tempfile.mkdtemp(prefix="procos-vf-")) / "pg"
    return {
        "faiss": (f"faiss:{tmp_path / 'new_faiss'}", lambda: not (tmp_path / "new_faiss").exists()),
        "pgvector-table": (with_options(pg_dsn, table=table), lambda: not table_exists(pg_dsn, table)),
        "embedded": (f"postgresql+embedded:{embedded}", lambda: not embedded.exists()),
    }


def test_api_import_of_a_damaged_bundle_creates_no_store(damaged: Path, tmp_path: Path, pg_dsn: str):
    for name, (uri, absent) in targets(tmp_path, pg_dsn).items():
        for call in (lambda u: api.import_snapshot(damaged, u), lambda u: api.load_vectors(damaged, u),
                     lambda u: api.import_chain([damaged], u), lambda u: api.import_snapshot(damaged, u, dry_run=True)):
            with pytest.raises(BundleInvalid):
                call(uri)
            assert absent(), f"{name}: a store was created"


def test_cli_and_process_import_of_a_damaged_bundle_create_no_store(damaged: Path, tmp_path: Path, pg_dsn: str):
    procos = Procos(tmp_path / "home")
    for name, (uri, absent) in targets(tmp_path, pg_dsn).items():
        done = subprocess.run(procos.argv("snapshot", "import", str(damaged), uri, "--json"), env=procos.env,
                              cwd=ROOT, capture_output=True, text=True, timeout=120)
        assert done.returncode == 3, done.stderr
        assert "failed verification" in done.stderr and "Traceback" not in done.stderr
        assert absent(), f"{name}: the CLI created a store"
        failed = procos.start("import_snapshot", "alice", code=3, bundle=damaged, target=uri)
        assert failed["state"] == "error"
        assert absent(), f"{name}: the import process created a store"
    shutil.rmtree(tmp_path / "home")
