"""Restore benchmark: our export and import next to raw COPY and pg_dump/pg_restore, in one run.

    python bench/bench_restore.py --count 100000 --dim 768 [--jobs 1,2,4] [--sweep] [--skip-peers]
                                  [--repeat N] [--out bench/results/restore_100000x768.json]
    python bench/bench_restore.py --count 1000000 --dim 768 --hnsw-only --out bench/results/restore_1000000x768.json

One embedded PostgreSQL (pgserver) and one FAISS store hold the same N x D synthetic records. Every
phase runs in a fresh spawned child process (peak RSS = that phase's VmHWM; the parent samples every
child's RSS every 0.2 s, so the JSON also holds RSS over time), and the CPU seconds it and the server
spent (``client_cpu_s``, ``server_cpu_s``; see cpu_account.py). Phases, side by side:

- ``raw-copy-out``: ``COPY (SELECT ... ORDER BY id) TO STDOUT (FORMAT BINARY)`` of the store's table,
  read and discarded: the export baseline (pgvector); the COPY alone is timed, not the count that checks it;
- ``faiss-read``: ``SELECT id, vector FROM records ORDER BY id`` from the FAISS store's SQLite file
  (warm page cache), every id and vector read and discarded: the export baseline for FAISS (the
  store's vectors and ids read at memory speed);
- ``export`` (pgvector, ``--jobs`` each; FAISS): ``engine.snapshot.export_snapshot`` end to end;
- ``--sweep``: the export at zstd levels 1/3/6 with and without BYTE_STREAM_SPLIT (sizes and times);
- ``verify``: ``verify_bundle`` of the pgvector bundle;
- ``raw-copy-in``: ``COPY ... FROM STDIN (FORMAT BINARY)`` of the same rows (pre-encoded to a file)
  into an empty copy of the product's own table with the same indexes (primary key, seq, GIN): the
  import baseline; creating the table and the COPY are timed, not the count and the DROP after it;
- ``import-flat`` (new store), ``import-append`` (into a store already holding every id: the
  conflict rule decides each row), ``import-hnsw`` (new HNSW store: time to first query, answered
  by a second process polling, and time to ANN-ready, from ``store stats``' ``index_build``);
- ``import-faiss`` next to ``faiss-add`` (FAISS's own ``IndexFlat.add`` of the same vectors);
- ``validate`` and ``drift`` (peak RSS);
- peers: ``pg_dump -Fc``, ``pg_dump -Fd -j 2`` and ``pg_restore -j 2`` of the same table.

The load average is printed with the figures (the machine is shared: compare ratios of one run).
``--hnsw-only`` loads, exports and runs only the HNSW import (half an hour at 1M x 768 on 2 cores),
then adds that phase to the ``--out`` file, marked with its own commit, date and load.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import peak_rss, phase_load  # noqa: E402
from cpu_account import PGDATA_ENV, own_cpu, server_cpu  # noqa: E402
from restore_phases import (  # noqa: E402
    SRC,
    phase_drift,
    phase_dump_copy_file,
    phase_export,
    phase_faiss_add,
    phase_faiss_read,
    phase_import,
    phase_import_hnsw,
    phase_peer,
    phase_raw_copy_in,
    phase_raw_copy_out,
    phase_validate,
    phase_verify,
    poll,
    settle,
)
from restore_report import commit, report  # noqa: E402

WARM = ("numpy", "pyarrow.parquet", "psycopg", "faiss", "zstandard", "engine.snapshot", "engine.snapshot.writer",
        "engine.snapshot.importer", "engine.repository.pgvector", "engine.repository.faiss", "engine.validation",
        "engine.drift")


def measured(fn, args: tuple) -> dict:
    """Run one phase in this fresh process after importing the libraries (not timed)."""
    import importlib

    import psutil

    for module in WARM:
        importlib.import_module(module)
    rss0 = psutil.Process().memory_info().rss
    server0, cpu0 = server_cpu(), own_cpu()
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = out.pop("seconds", None) or time.perf_counter() - t0  # a baseline may time its core part itself
    cpu = own_cpu() - cpu0
    time.sleep(0.5)  # the phase's backends have exited: let the postmaster reap them (their CPU joins its total)
    server1 = server_cpu()
    spent = {"client_cpu_s": round(cpu, 2)}
    if server0 is not None and server1 is not None:
        spent["server_cpu_s"] = round(server1 - server0, 2)
    return {**out, "seconds": seconds, "rss_start_mb": rss0 / 1e6, "rss_peak_mb": peak_rss() / 1e6, **spent}


REPEAT = 1  # --repeat: the baselines and our export/import phases run this many times, the fastest kept
SERVER: dict[str, str] = {}  # "dsn": the embedded server, checkpointed before every phase (see run)


def best(name: str, fn, *args, samples: dict | None = None, cleanup=None) -> dict:
    """The fastest of REPEAT runs of :func:`run` (``runs`` lists every time); ``cleanup(result)`` between runs."""
    results = []
    for i in range(REPEAT):
        results.append(run(name, fn, *args, samples=samples))
        if cleanup is not None and i < REPEAT - 1:
            cleanup(results[-1])
    fastest = min(results, key=lambda r: r["seconds"])
    kept = {"path": results[-1]["path"]} if "path" in results[-1] else {}  # cleanup removed the earlier ones
    return {**fastest, **kept, "runs": [round(r["seconds"], 2) for r in results]}


def quiet_server(pg: str) -> None:
    """No autovacuum on the benchmark's server: a VACUUM of the table one phase loaded would otherwise run
    during a later phase, on the same 2 cores, and be counted as that phase's server CPU. Every phase
    starts after a CHECKPOINT (see :func:`run`)."""
    import psycopg

    with psycopg.connect(pg, autocommit=True) as conn:
        conn.execute("ALTER SYSTEM SET autovacuum = off")
        conn.execute("SELECT pg_reload_conf()")
    SERVER["dsn"] = pg


def run(name: str, fn, *args, samples: dict | None = None) -> dict:
    """``fn(*args)`` in a fresh spawned process; the parent samples its RSS (MB) every 0.2 s."""
    import psutil

    print(f"  {name} ...", file=sys.stderr, flush=True)
    if "dsn" in SERVER:  # the WAL of earlier phases is checkpointed now, not by whichever phase comes next
        import psycopg

        with psycopg.connect(SERVER["dsn"], autocommit=True) as conn:
            conn.execute("CHECKPOINT")
    os.sync()  # the previous phase's written data goes to disk before this one starts, not during it
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        future = pool.submit(measured, fn, args)
        trace, t0 = [], time.perf_counter()
        workers = [psutil.Process(pid) for pid in pool._processes]  # the one worker running the phase
        while not future.done():
            try:
                rss = sum(w.memory_info().rss for w in workers)
                trace.append((round(time.perf_counter() - t0, 2), round(rss / 1e6, 1)))
            except psutil.Error:
                pass
            time.sleep(0.2)
        result = future.result()
    if samples is not None:
        samples[name] = trace
    return {"phase": name, **result}


# --- driver ----------------------------------------------------------------------------------------

def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--jobs", default="1,2,4")
    ap.add_argument("--sweep", action="store_true", help="also export at zstd 1/3/6 x plain/byte_stream_split")
    ap.add_argument("--skip-peers", action="store_true", help="leave out pg_dump/pg_restore")
    ap.add_argument("--skip-hnsw", action="store_true", help="leave out the HNSW import")
    ap.add_argument("--repeat", type=int, default=1, help="run baselines, exports and imports N times, keep the fastest")
    ap.add_argument("--out", help="write the results as JSON here")
    ap.add_argument("--hnsw-only", action="store_true",
                    help="load, export, then only the HNSW import; its phase is added to (or replaces the one "
                         "in) the --out file, marked as a separate run")
    ap.add_argument("--poll", help=argparse.SUPPRESS)
    a = ap.parse_args()
    if a.poll:
        return poll(a.poll, a.dim)
    os.environ["PROCOS_ENV"] = "dev"
    if a.hnsw_only:
        return hnsw_only(a)
    global REPEAT
    REPEAT = max(1, a.repeat)
    load, measured_at = os.getloadavg(), commit()  # the code measured: the checkout as the run starts
    root = Path(tempfile.mkdtemp(prefix="procos-bench-restore-"))
    os.chmod(root, 0o755)
    import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    os.environ[PGDATA_ENV] = str(root / "pgdata")  # the phases (spawned children) read the server's CPU
    pg = server.get_uri()
    quiet_server(pg)
    base = pg.split("?")[0]
    sep = "&" if "?" in pg else "?"
    faiss_dir = root / "faiss"
    rows, samples = [], {}
    jobs = [int(j) for j in a.jobs.split(",") if j]
    try:
        print(f"loading {a.count} x {a.dim} ...", file=sys.stderr)
        run("load-pgvector", phase_load, f"{pg}{sep}table={SRC}&index=flat", a.count, a.dim, 10_000)
        run("load-faiss", phase_load, f"faiss:{faiss_dir}?index=flat", a.count, a.dim, 10_000)
        settle(pg)
        src = f"{pg}{sep}table={SRC}"
        drop = lambda r: shutil.rmtree(r["path"], ignore_errors=True)  # noqa: E731 - between repeats
        rows.append(best("raw-copy-out", phase_raw_copy_out, pg))
        rows.append(best("faiss-read", phase_faiss_read, str(faiss_dir)))
        bundle = None
        for j in jobs:
            r = best(f"export-pg-j{j}", phase_export, src, str(root / f"snaps-j{j}"), j, None, None, cleanup=drop)
            rows.append(r)
            bundle = bundle or r["path"]
        rows.append(best("export-faiss", phase_export, f"faiss:{faiss_dir}", str(root / "snaps-faiss"), 1, None,
                         None, cleanup=drop))
        if a.sweep:
            for level in (1, 3, 6):
                for enc in ("plain", "byte_stream_split"):
                    rows.append(best(f"export-z{level}-{enc}", phase_export, src, str(root / "sweep"), 1, level, enc,
                                     cleanup=drop))
        for j in jobs:
            rows.append(run(f"verify-j{j}", phase_verify, bundle, j))
        copy_file = root / "rows.pgcopy"
        run("dump-copy-file", phase_dump_copy_file, pg, str(copy_file))
        rows.append(best("raw-copy-in", phase_raw_copy_in, pg, str(copy_file), a.dim, "bench_raw_in"))
        copy_file.unlink()
        for j in (j for j in jobs if j > 1):  # the baseline with j connections, as import --jobs j loads
            parts = [str(root / f"rows-{k}.pgcopy") for k in range(j)]
            for k, part in enumerate(parts):
                run("dump-copy-file", phase_dump_copy_file, pg, part, (k, j))
            rows.append(best(f"raw-copy-in-j{j}", phase_raw_copy_in, pg, parts, a.dim, "bench_raw_in"))
            for part in parts:
                os.unlink(part)
        for i in range(REPEAT):  # each run into a new store (a table of its own)
            rows.append(run("import-flat", phase_import, bundle, f"{pg}{sep}table=imp_flat{i}&index=flat", None,
                            samples=samples))
        flat = [r for r in rows if r["phase"] == "import-flat"]
        rows = [r for r in rows if r["phase"] != "import-flat"] + [{**min(flat, key=lambda r: r["seconds"]),
                                                                   "runs": [round(r["seconds"], 2) for r in flat]}]
        for j in (j for j in jobs if j > 1):  # streams of shards side by side, one connection each
            runs = [run(f"import-flat-j{j}", phase_import, bundle, f"{pg}{sep}table=imp_j{j}_{i}&index=flat", j)
                    for i in range(REPEAT)]
            rows.append({**min(runs, key=lambda r: r["seconds"]), "runs": [round(r["seconds"], 2) for r in runs]})
        rows.append(best("import-append", phase_import, bundle, f"{pg}{sep}table=imp_flat0&index=flat", None))
        if not a.skip_hnsw:
            rows.append(run("import-hnsw", phase_import_hnsw, bundle, f"{pg}{sep}table=imp_hnsw&index=hnsw", a.dim,
                            samples=samples))
        faiss_bundle = next(r["path"] for r in rows if r["phase"] == "export-faiss")
        rows.append(run("faiss-add", phase_faiss_add, str(faiss_dir), a.dim))
        rows.append(run("import-faiss", phase_import, faiss_bundle, f"faiss:{root / 'faiss-imp'}?index=flat", None))
        rows.append(run("validate", phase_validate, src, f"{pg}{sep}table=imp_flat0"))
        rows.append(run("drift", phase_drift, src, bundle))
        if not a.skip_peers:
            bindir = Path(pgserver.__file__).parent / "pginstall" / "bin"
            restored = pg.replace(f"/{base.rsplit('/', 1)[-1]}?", "/restored?", 1)
            rows.append(run("pg_dump-Fc", phase_peer, [str(bindir / "pg_dump"), "-Fc", "-t", SRC, "-f",
                                                       str(root / "dump.fc"), pg], {}))
            rows.append(run("pg_dump-Fd-j2", phase_peer, [str(bindir / "pg_dump"), "-Fd", "-j", "2", "-t", SRC,
                                                          "-f", str(root / "dump.d"), pg], {}))
            import psycopg

            with psycopg.connect(pg, autocommit=True) as conn:
                conn.execute("CREATE DATABASE restored")
            with psycopg.connect(restored, autocommit=True) as conn:
                conn.execute("CREATE EXTENSION vector")
            rows.append(run("pg_restore-j2", phase_peer, [str(bindir / "pg_restore"), "-j", "2", "-d", restored,
                                                          str(root / "dump.d")], {}))
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    report(a, load, rows, samples, measured_at)


def hnsw_only(a) -> None:
    """The HNSW import alone (the longest phase: about half an hour at 1M x 768 on 2 cores), merged into --out."""
    import pgserver

    measured_at, load = commit(), os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="procos-bench-hnsw-"))
    os.chmod(root, 0o755)
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    os.environ[PGDATA_ENV] = str(root / "pgdata")
    pg = server.get_uri()
    quiet_server(pg)
    sep = "&" if "?" in pg else "?"
    try:
        run("load-pgvector", phase_load, f"{pg}{sep}table={SRC}&index=flat", a.count, a.dim, 10_000)
        settle(pg)
        bundle = run("export-pg-j1", phase_export, f"{pg}{sep}table={SRC}", str(root / "snaps"), 1, None, None)["path"]
        row = run("import-hnsw", phase_import_hnsw, bundle, f"{pg}{sep}table=imp_hnsw&index=hnsw", a.dim)
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    row["separate_run"] = {"commit": measured_at, "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                           "loadavg": load}
    print(f"import-hnsw: first query after {row['first_query_s']:.1f} s, ANN-ready after {row['ann_ready_s']:.1f} s "
          f"({row['client_cpu_s']:.1f} + {row.get('server_cpu_s', 0):.1f} CPU-s)")
    if a.out:
        out = Path(a.out)
        doc = json.loads(out.read_text()) if out.is_file() else {"count": a.count, "dim": a.dim, "loadavg": load,
                                                                  "cpus": os.cpu_count(), "commit": measured_at,
                                                                  "phases": [], "ratios": {}, "rss_trace": {}}
        doc["phases"] = [p for p in doc["phases"] if p["phase"] != "import-hnsw"] + [row]
        out.write_text(json.dumps(doc, indent=1))


if __name__ == "__main__":
    main()
