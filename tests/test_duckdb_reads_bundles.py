"""A user with DuckDB (a tool nobody here wrote) can read a bundle's shards and check them."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import duckdb
import numpy as np

from engine import api


def test_duckdb_reads_every_shard_with_the_documented_columns(tmp_path: Path):
    uri = f"faiss:{tmp_path / 'store'}?index=flat"
    api.seed_store(uri, 250, 12)
    bundle = Path(api.export_snapshot(uri, tmp_path / "snaps", shard_rows=100)["path"])
    shards = sorted((bundle / "embeddings").glob("part-*.parquet"))
    assert [p.name for p in shards] == ["part-00000.parquet", "part-00001.parquet", "part-00002.parquet"]
    con = duckdb.connect()
    glob = str(bundle / "embeddings" / "part-*.parquet")
    columns = {r[0]: r[1] for r in con.execute(f"DESCRIBE SELECT * FROM read_parquet('{glob}')").fetchall()}
    assert list(columns) == ["id", "vector", "metadata", "version", "source_hash", "created_ts", "updated_ts",
                             "vector_hash"]
    # Parquet stores the fixed-size list as a list (the fixed size lives in the Arrow schema)
    assert columns["vector"] in ("FLOAT[]", "FLOAT[12]") and columns["created_ts"].startswith("TIMESTAMP WITH TIME ZONE")
    assert con.execute(f"SELECT min(len(vector)), max(len(vector)) FROM read_parquet('{glob}')").fetchone() == (12, 12)
    rows = con.execute(f"SELECT id, vector, metadata, vector_hash FROM read_parquet('{glob}') "
                       "ORDER BY filename, file_row_number").fetchall()
    assert len(rows) == 250
    ids = [r[0] for r in rows]
    assert ids == sorted(ids) and len(set(ids)) == 250  # ascending id across the shards
    for rid, vector, metadata, vhash in rows:
        assert hashlib.sha256(np.asarray(vector, dtype="<f4").tobytes()).hexdigest() == vhash, rid
        assert isinstance(json.loads(metadata), dict)
    manifest = json.loads((bundle / "manifest.json").read_text())
    assert manifest["record_count"] == 250
