"""The phases of bench/bench_restore.py: each runs in a fresh child process and returns ``{"rows", ...}``.

Baselines (raw COPY out and in, FAISS's own read and add), ours (export, verify, import flat, append
and HNSW, validate, drift) and the peers (pg_dump / pg_restore). See bench_restore.py for what each
measures and how.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

SRC = "bench_src"
COLS = "id, embedding, metadata, metadata_json, version, source_hash, created_ts, updated_ts, seq"
RAW_OUT = ("COPY (SELECT id, embedding, metadata_json, version, source_hash, created_ts, updated_ts "
           "FROM {t} ORDER BY id) TO STDOUT (FORMAT BINARY)")


# --- phases (each in its own child process) ------------------------------------------------------

def phase_raw_copy_out(pg: str) -> dict:
    """The export baseline: the COPY alone is timed (``seconds``), not the row count that checks it."""
    import psycopg

    n = 0
    with psycopg.connect(pg, autocommit=True) as conn:
        t0 = time.perf_counter()
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")
        with conn.cursor() as cur, cur.copy(RAW_OUT.format(t=SRC)) as cp:
            for data in cp:
                n += len(data)
        seconds = time.perf_counter() - t0
        rows = conn.execute(f"SELECT count(*) FROM {SRC}").fetchone()[0]
    return {"rows": rows, "bytes": n, "seconds": seconds}


def phase_dump_copy_file(pg: str, path: str, part: tuple[int, int] | None = None) -> dict:
    """The source table as one binary COPY file; ``part=(k, n)``: only the k-th of n consecutive id ranges."""
    import psycopg

    where = ""
    if part is not None:
        k, n = part
        where = (f" WHERE id IN (SELECT id FROM (SELECT id, ntile({n}) OVER (ORDER BY id) AS t FROM {SRC}) s"
                 f" WHERE t = {k + 1})")
    with psycopg.connect(pg) as conn, conn.cursor() as cur, open(path, "wb") as fh:
        with cur.copy(f"COPY (SELECT {COLS} FROM {SRC}{where} ORDER BY id) TO STDOUT (FORMAT BINARY)") as cp:
            for data in cp:
                fh.write(data)
    return {"rows": 0, "bytes": os.path.getsize(path)}


def phase_raw_copy_in(pg: str, path: str | list[str], dim: int, table: str) -> dict:
    """COPY the file into an empty table shaped and indexed like a store's (what our import builds).

    A list of files (consecutive id ranges) is copied side by side, one connection each, into the
    table created and committed first: what ``import --jobs N`` does, with nothing of ours in the way."""
    import threading

    import psycopg

    from engine.repository import pg_schema
    from engine.repository.base import StoreSettings

    paths = [path] if isinstance(path, str) else path

    def copy(one: str) -> None:
        with psycopg.connect(pg, autocommit=True) as conn, conn.cursor() as cur, \
                cur.copy(f"COPY {table} ({COLS}) FROM STDIN (FORMAT BINARY)") as cp, open(one, "rb") as fh:
            while chunk := fh.read(1 << 20):
                cp.write(chunk)

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"DROP TABLE IF EXISTS {table}")
        t0 = time.perf_counter()  # timed: creating the table and the COPY (committed), as an import does
        with conn.transaction():
            pg_schema.create_records_table(conn, table, dim)
            pg_schema.create_secondary_indexes(conn, table)
            pg_schema.create_ann_index(conn, table, StoreSettings(dim, "cosine", "flat", {}))
        threads = [threading.Thread(target=copy, args=(one,)) for one in paths]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        seconds = time.perf_counter() - t0
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]  # not timed: a check, then cleanup
        conn.execute(f"DROP TABLE {table}")
    return {"rows": rows, "seconds": seconds}


def settle(pg: str) -> None:
    """After the load, before any phase: VACUUM (ANALYZE) the source table (hint bits, visibility map,
    statistics) and CHECKPOINT, so that neither the first reader (baseline or ours) pays for the
    freshly loaded pages nor autovacuum runs in the middle of a measured phase."""
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute(f"VACUUM (ANALYZE) {SRC}")
        conn.execute("CHECKPOINT")


def phase_faiss_read(faiss_dir: str) -> dict:
    import sqlite3

    conn = sqlite3.connect(f"file:{faiss_dir}/store.sqlite?mode=ro", uri=True)
    rows = n = 0
    for rid, vec in conn.execute("SELECT id, vector FROM records ORDER BY id"):
        rows += 1
        n += len(vec) + len(rid)
    return {"rows": rows, "bytes": n}


def phase_faiss_add(faiss_dir: str, dim: int) -> dict:
    """FAISS's own add rate: IndexFlat.add of every stored vector (read first, not timed)."""
    import sqlite3

    import faiss
    import numpy as np

    conn = sqlite3.connect(f"file:{faiss_dir}/store.sqlite?mode=ro", uri=True)
    x = np.frombuffer(b"".join(v for (v,) in conn.execute("SELECT vector FROM records ORDER BY id")),
                      dtype="<f4").reshape(-1, dim)
    t0 = time.perf_counter()
    index = faiss.IndexFlatIP(dim)
    for i in range(0, len(x), 10_000):
        chunk = np.ascontiguousarray(x[i:i + 10_000])
        faiss.normalize_L2(chunk)
        index.add(chunk)
    return {"rows": int(index.ntotal), "inner_seconds": time.perf_counter() - t0}


def phase_export(uri: str, out: str, jobs: int, level: int | None, encoding: str | None) -> dict:
    """``export_snapshot`` with the product's defaults unless a level or encoding is given (the sweep)."""
    from engine.repository import open_repository
    from engine.snapshot import export_snapshot

    repo = open_repository(uri)
    options = {k: v for k, v in (("compression_level", level), ("vector_encoding", encoding)) if v is not None}
    try:
        r = export_snapshot(repo, out, jobs=jobs, **options)
    finally:
        repo.close()
    size = sum(p.stat().st_size for p in Path(r.path).rglob("*") if p.is_file())
    return {"rows": r.record_count, "bytes": size, "path": r.path}


def phase_verify(bundle: str, jobs: int | None) -> dict:
    from engine.snapshot import verify_bundle

    report = verify_bundle(bundle, max_workers=jobs)
    assert report.ok, report.summary()
    return {"rows": report.stats.get("rows_checked", 0)}


def phase_import(bundle: str, uri: str, jobs: int | None, mode: str = "append") -> dict:
    os.environ["PROCOS_ENV"] = "dev"
    from engine.snapshot.importer import import_into

    r = import_into(uri, bundle, mode, jobs=jobs)
    return {"rows": r["imported"] + r["skipped"], "imported": r["imported"], "skipped": r["skipped"]}


def phase_import_hnsw(bundle: str, uri: str, dim: int) -> dict:
    """Import into a new HNSW store while a second process polls it: first answer, then ANN-ready."""
    os.environ["PROCOS_ENV"] = "dev"
    from engine.snapshot.importer import import_into

    t0 = time.perf_counter()
    poller = subprocess.Popen([sys.executable, str(Path(__file__).with_name("bench_restore.py")), "--poll", uri, "--dim", str(dim)], stdout=subprocess.PIPE,
                              text=True)
    r = import_into(uri, bundle, "append")
    loaded = time.perf_counter() - t0
    out, _ = poller.communicate(timeout=3600)
    seen = json.loads(out.strip().splitlines()[-1])
    return {"rows": r["imported"], "import_returned_s": loaded, "first_query_s": seen["first_query_s"],
            "ann_ready_s": seen["ann_ready_s"], "building_seen": seen["building_seen"]}


def poll(uri: str, dim: int) -> None:
    """The second process of phase_import_hnsw: query every 0.2 s until answered, then until ANN-ready."""
    import numpy as np

    from engine.errors import ProcosError
    from engine.repository import open_repository

    t0 = time.perf_counter()
    q = np.ones(dim, dtype=np.float32)
    first = ready = None
    building = False
    repo = None
    while ready is None and time.perf_counter() - t0 < 3600:
        try:
            if repo is None:
                repo = open_repository(uri, create=False)
            if first is None and repo.dimensions and len(repo.query(q, 10)) == 10:
                first = time.perf_counter() - t0
            if first is not None:
                state = repo.stats()["index_build"]["state"]
                building = building or state == "building"
                if state == "ready":
                    ready = time.perf_counter() - t0
        except ProcosError:
            repo = None
        time.sleep(0.2)
    print(json.dumps({"first_query_s": first, "ann_ready_s": ready, "building_seen": building}))


def phase_validate(source: str, target: str) -> dict:
    from engine.validation import validate

    r = validate(source, target, queries=20)
    return {"rows": r.to_json()["checks"]["records"]["source"], "passed": r.passed}


def phase_drift(uri: str, bundle: str) -> dict:
    from engine.drift import check_drift
    from engine.repository import open_repository

    repo = open_repository(uri)
    try:
        r = check_drift(repo, bundle)
    finally:
        repo.close()
    return {"rows": r.checked, "drift": r.drift}


def phase_peer(args: list[str], env: dict) -> dict:
    subprocess.run(args, check=True, env={**os.environ, **env}, stdout=subprocess.DEVNULL)
    return {"rows": 0}
