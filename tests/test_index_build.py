"""An import into an HNSW pgvector store answers queries (exactly, by a scan) as soon as its rows are
committed; the HNSW index is then built with CREATE INDEX CONCURRENTLY while queries keep working;
``store stats`` shows the build (``index_build``), ``store wait-index`` blocks until it is ready, and a
build that died (an INVALID index) is rebuilt.

The build is held deterministically half-way: CREATE INDEX CONCURRENTLY waits for every transaction
holding an older snapshot, so a test keeps one open (a REPEATABLE READ transaction on another
connection) until it has seen the build in progress and queried the store meanwhile.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import time
import uuid

import numpy as np
import psycopg
import pytest
from reference import with_options

from engine import api
from engine.repository import open_repository
from engine.snapshot import export_snapshot
from engine.synthetic import synthetic_batches

DIMS = 16


def hnsw_uri(pg_server) -> str:
    table = f"ib_{uuid.uuid4().hex[:10]}"
    return (with_options(pg_server.dsn, table=table, index="hnsw") if pg_server.datadir is None
            else f"postgresql+embedded:{pg_server.datadir}?table={table}&index=hnsw")


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("ib")
    repo = open_repository(f"faiss:{root / 'src'}?index=flat", dimensions=DIMS)
    repo.bulk_load(synthetic_batches(3_000, DIMS, batch_size=1_000))
    out = export_snapshot(repo, root / "snaps")
    repo.close()
    return out.path


def dsn_of(repo) -> str:
    return repo._dsn


def wait_for(predicate, timeout: float = 60.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.1)
    raise AssertionError("timed out")


def old_snapshot(dsn: str) -> psycopg.Connection:
    blocker = psycopg.connect(dsn)
    blocker.execute("BEGIN ISOLATION LEVEL REPEATABLE READ")
    blocker.execute("SELECT 1").fetchone()  # takes the snapshot the index build must wait for
    return blocker


def uses_index(dsn: str, table: str, vector: np.ndarray) -> bool:
    text = "[" + ",".join(f"{x:.6f}" for x in vector) + "]"
    with psycopg.connect(dsn) as conn:
        conn.execute("SET enable_seqscan = off")  # the planner would take the index whenever it can
        plan = conn.execute(f"EXPLAIN SELECT id FROM {table} ORDER BY embedding <=> %s::vector LIMIT 10",
                            (text,)).fetchall()
    return any("_embedding_idx" in row[0] for row in plan)


def test_queries_answer_exactly_while_the_hnsw_index_is_built_concurrently(pg_server, bundle):
    uri = hnsw_uri(pg_server)
    target = open_repository(uri, dimensions=DIMS, metric="cosine", index="hnsw")  # an empty HNSW store
    blocker = old_snapshot(dsn_of(target))
    result: dict = {}
    importer = threading.Thread(target=lambda: result.update(api.import_snapshot(bundle, uri)))
    importer.start()
    try:
        state = wait_for(lambda: (s := api.store_stats(uri)["index_build"])["state"] == "building" and s)
        assert {"state", "percent", "eta_seconds"} <= set(state)
        assert target.count() == 3_000  # the rows are committed and visible while the index is not ready
        q = target.fetch(["rec-0000042"])[0].vector
        served, exact = target.query(q, 10), target.query(q, 10, exact=True)
        assert [h.id for h in served] == [h.id for h in exact] and served[0].id == "rec-0000042"
        assert not uses_index(dsn_of(target), target.table, q)
        waited = api.wait_index(uri, timeout=0.5)
        assert waited["index_build"]["state"] == "building" and not waited["built"]
        assert importer.is_alive()  # the import waits for the index before it tunes the search
    finally:
        blocker.rollback()
        blocker.close()
    importer.join(120)
    assert not importer.is_alive()
    assert api.wait_index(uri)["index_build"]["state"] == "ready"
    assert api.store_stats(uri)["index_build"] == {"state": "ready", "percent": 100.0, "eta_seconds": 0.0,
                                                   "phase": None}
    assert uses_index(dsn_of(target), target.table, q)
    assert result["search_tuning"]["index"] == "hnsw" and result["search_tuning"]["recall"] is not None
    target.close()


def test_wait_index_rebuilds_an_index_left_invalid_by_a_failed_build(pg_server, bundle):
    uri = hnsw_uri(pg_server)
    api.import_snapshot(bundle, uri)
    repo = open_repository(uri)
    try:
        with psycopg.connect(dsn_of(repo), autocommit=True) as conn:
            conn.execute(f"UPDATE pg_index SET indisvalid = false WHERE indexrelid = '{repo.table}_embedding_idx'::regclass")
        assert api.store_stats(uri)["index_build"]["state"] == "invalid"
        done = api.wait_index(uri)
        assert done["built"] and done["index_build"]["state"] == "ready"
    finally:
        repo.close()


def test_store_wait_index_cli_exits_75_while_building_and_0_when_ready(pg_server, bundle):
    uri = hnsw_uri(pg_server)
    target = open_repository(uri, dimensions=DIMS, metric="cosine", index="hnsw")
    blocker = old_snapshot(dsn_of(target))
    importer = threading.Thread(target=lambda: api.import_snapshot(bundle, uri))
    importer.start()
    try:
        wait_for(lambda: api.store_stats(uri)["index_build"]["state"] == "building")
        busy = subprocess.run([sys.executable, "-m", "engine.cli", "store", "wait-index", uri, "--timeout", "0.3",
                               "--json"], capture_output=True, text=True, timeout=60)
        assert busy.returncode == 75, busy.stderr
    finally:
        blocker.rollback()
        blocker.close()
        importer.join(120)
        target.close()
    ready = subprocess.run([sys.executable, "-m", "engine.cli", "store", "wait-index", uri], capture_output=True,
                           text=True, timeout=120)
    assert ready.returncode == 0, ready.stderr
    assert "index ready" in ready.stdout
