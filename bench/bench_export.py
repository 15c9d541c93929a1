"""Snapshot export throughput next to raw PostgreSQL COPY, on one embedded server.

    python bench/bench_export.py [--count 100000] [--dim 768] [--batch-size 4096]
                                 [--compression-level 6] [--repeat 1] [--profile] [--out results.json]

N x D synthetic records are loaded into a pgvector store (index=flat, so loading stays fast) and a
FAISS flat store. Then, each phase in a fresh spawned child process (peak RSS = that phase's
VmHWM, see bench_store.py), side by side in the same run:

- ``raw-copy``: ``COPY (SELECT id, embedding, metadata_json, version, source_hash, created_ts,
  updated_ts FROM t ORDER BY id) TO STDOUT (FORMAT BINARY)`` read fully and discarded (the floor);
- ``iter_batches``: the pgvector store's own stream (COPY + decoding into RecordBatches), a
  breakdown row that shows what the export's read side costs;
- ``export`` (pgvector) and ``export`` (faiss): ``engine.snapshot.export_snapshot(repo, out_dir)``
  end to end (Parquet + vector hashes + checksums + manifest, plus ``index.faiss`` for FAISS).

The goal is export throughput >= 0.8 x raw COPY throughput for pgvector; the bench prints the
ratio and PASS or MISS. ``--profile`` runs the pgvector export once more under cProfile (its time
is not used for the ratio) and prints the functions where the time goes. The embedded server and
every file live in one temporary folder, removed at the end.
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

from bench_store import peak_rss, phase_load, phase_stream, row  # noqa: E402

GOAL = 0.8
WARM_EXPORT = ("pyarrow.parquet,zstandard,faiss,psycopg,engine.repository.pgvector,engine.repository.faiss,"
               "engine.snapshot.writer,engine.snapshot.parquet_io,engine.snapshot.faiss_file")
PG_TABLE = "bench_export"
RAW_COPY = ("COPY (SELECT id, embedding, metadata_json, version, source_hash, created_ts, updated_ts "
            "FROM {table} ORDER BY id) TO STDOUT (FORMAT BINARY)")


# --- phases (each runs in its own child process) -------------------------------------------------

def phase_raw_copy(pg_uri: str, table: str) -> dict:
    import psycopg

    nbytes = 0
    with psycopg.connect(pg_uri, autocommit=True) as conn:
        conn.execute("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY")  # as the store reads
        with conn.cursor() as cur, cur.copy(RAW_COPY.format(table=table)) as cp:
            for data in cp:
                nbytes += len(data)
        rows = conn.execute(f"SELECT count(*) FROM {table}").fetchone()[0]
        conn.execute("COMMIT")
    return {"rows": rows, "bytes": nbytes}


def phase_export(uri: str, out_dir: str, batch_size: int, level: int) -> dict:
    from engine.repository import open_repository
    from engine.snapshot import export_snapshot

    repo = open_repository(uri)
    try:
        result = export_snapshot(repo, out_dir, batch_size=batch_size, compression_level=level)
    finally:
        repo.close()
    bundle = Path(result.path)
    sizes = {p.relative_to(bundle).as_posix(): p.stat().st_size for p in bundle.rglob("*") if p.is_file()}
    shutil.rmtree(bundle)
    return {"rows": result.record_count, "bytes": sum(sizes.values()), "files": sizes}


def phase_profile(uri: str, out_dir: str, batch_size: int, level: int) -> dict:
    """The pgvector export under cProfile: the top functions by cumulative and by own time."""
    import cProfile
    import io
    import pstats
    import threading

    profiles = []
    original = threading.Thread.run

    def profiled_run(self):  # the export's prefetch thread reads the store: profile it too
        prof = cProfile.Profile()
        profiles.append(prof)
        prof.runcall(original, self)

    threading.Thread.run = profiled_run
    main = cProfile.Profile()
    try:
        out = main.runcall(phase_export, uri, out_dir, batch_size, level)
    finally:
        threading.Thread.run = original
    report = {}
    for name, profs in (("main thread", [main]), ("prefetch thread", profiles)):
        if not profs:
            continue
        buf = io.StringIO()
        stats = pstats.Stats(profs[0], stream=buf)
        for extra in profs[1:]:
            stats.add(extra)
        stats.sort_stats("tottime").print_stats(14)
        report[name] = buf.getvalue()
    return {**out, "profile": report}


def measured(fn, warm: str | None, args: tuple) -> dict:
    """Run one phase in this (fresh) process after importing ``warm`` (comma-separated modules):
    wall time, RSS at start and RSS high-water."""
    import importlib

    import psutil

    for module in (warm or "").split(","):
        if module:
            importlib.import_module(module)
    rss0 = psutil.Process().memory_info().rss
    cpu0 = sum(os.times()[:2])
    t0 = time.perf_counter()
    out = fn(*args)
    seconds = time.perf_counter() - t0
    return {**out, "seconds": seconds, "cpu_s": sum(os.times()[:2]) - cpu0, "rss_start_mb": rss0 / 1e6,
            "rss_peak_mb": peak_rss() / 1e6}


def run(fn, *args, warm: str | None = None, repeat: int = 1) -> dict:
    """The fastest of ``repeat`` runs, each in a fresh spawned process (``runs`` lists every time)."""
    results = []
    for _ in range(max(1, repeat)):
        with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
            results.append(pool.submit(measured, fn, warm, args).result())
    best = min(results, key=lambda r: r["seconds"])
    return {**best, "runs": [round(r["seconds"], 3) for r in results]}


def timed_row(store: str, phase: str, r: dict, vector_bytes: int) -> dict:
    """bench_store's table row plus this process's CPU seconds and every run's time."""
    return {**row(store, phase, r, vector_bytes), "cpu_s": round(r["cpu_s"], 2), "runs": r["runs"]}


# --- driver ----------------------------------------------------------------------------------------

def print_table(rows: list[dict]) -> None:
    head = (f"{'store':<10}{'phase':<14}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'MB/s':>8}{'RSS0 MB':>9}"
            f"{'peak MB':>9}{'CPU s':>7}  runs (s)")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:<10}{r['phase']:<14}{r['rows']:>9}{r['seconds']:>9.2f}{r['rows_per_s'] or 0:>10}"
              f"{r['vector_mb_per_s'] or 0:>8}{r['rss_start_mb']:>9}{r['rss_peak_mb']:>9}{r['cpu_s']:>7}  "
              f"{' '.join(str(x) for x in r['runs'])}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=4_096, help="export read batch (the writer's default)")
    ap.add_argument("--compression-level", type=int, default=6)
    ap.add_argument("--repeat", type=int, default=1, help="run each measured phase N times, keep the fastest")
    ap.add_argument("--profile", action="store_true", help="also profile the pgvector export (cProfile)")
    ap.add_argument("--out", help="also write the results as JSON to this file")
    a = ap.parse_args()
    vbytes = a.count * a.dim * 4
    load1, load5, load15 = os.getloadavg()
    root = Path(tempfile.mkdtemp(prefix="procos-bench-export-"))
    os.chmod(root, 0o755)  # pgserver runs postgres as another user when we are root
    import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    pg = server.get_uri()
    pg_uri = f"{pg}&table={PG_TABLE}&index=flat"
    faiss_uri = f"faiss:{root / 'faiss-flat'}?index=flat"
    snaps = str(root / "snaps")
    rows, loads, extra = [], [], {}
    try:
        print(f"loading {a.count} x {a.dim} into pgvector and FAISS ...", file=sys.stderr)
        loads.append(timed_row("pgvector", "bulk_load", run(phase_load, pg_uri, a.count, a.dim, 10_000,
                                                      warm="engine.repository.pgvector"), vbytes))
        loads.append(timed_row("faiss", "bulk_load", run(phase_load, faiss_uri, a.count, a.dim, 10_000,
                                                   warm="engine.repository.faiss"), vbytes))
        print("measuring ...", file=sys.stderr)
        raw = run(phase_raw_copy, pg, PG_TABLE, warm="psycopg", repeat=a.repeat)
        rows.append(timed_row("pgvector", "raw-copy", raw, vbytes))
        rows.append(timed_row("pgvector", "iter_batches", run(phase_stream, pg_uri, a.batch_size,
                                                              warm="engine.repository.pgvector",
                                                              repeat=a.repeat), vbytes))
        pg_export = run(phase_export, pg_uri, snaps, a.batch_size, a.compression_level,
                        warm=WARM_EXPORT, repeat=a.repeat)
        rows.append(timed_row("pgvector", "export", pg_export, vbytes))
        faiss_export = run(phase_export, faiss_uri, snaps, a.batch_size, a.compression_level,
                           warm=WARM_EXPORT, repeat=a.repeat)
        rows.append(timed_row("faiss", "export", faiss_export, vbytes))
        extra = {"raw_copy_bytes": raw["bytes"], "pgvector_bundle": pg_export["files"],
                 "faiss_bundle": faiss_export["files"]}
        if a.profile:
            print("profiling the pgvector export ...", file=sys.stderr)
            extra["profile"] = run(phase_profile, pg_uri, snaps, a.batch_size, a.compression_level,
                                   warm=WARM_EXPORT)["profile"]
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)

    ratio = raw["seconds"] / pg_export["seconds"]
    faiss_ratio = raw["seconds"] / faiss_export["seconds"]
    verdict = "PASS" if ratio >= GOAL else "MISS"
    print(f"\n{a.count} records x {a.dim} dims ({vbytes / 1e6:.0f} MB of float32 vectors), export batch "
          f"{a.batch_size}, zstd level {a.compression_level}, fastest of {a.repeat} run(s) per measured phase; "
          f"MB/s counts vector bytes only; CPU s is the client process's (not the server's); "
          f"load average at start {load1:.2f} {load5:.2f} {load15:.2f} ({os.cpu_count()} CPUs)\n")
    print_table(loads + rows)
    print(f"\nraw COPY read {raw['bytes'] / 1e6:.0f} MB; bundles: pgvector "
          f"{sum(pg_export['files'].values()) / 1e6:.0f} MB, faiss {sum(faiss_export['files'].values()) / 1e6:.0f} MB")
    print(f"pgvector export / raw COPY throughput = {ratio:.2f} (goal >= {GOAL}): {verdict}")
    print(f"faiss export / raw COPY throughput    = {faiss_ratio:.2f} (for comparison)")
    for name, text in extra.get("profile", {}).items():
        print(f"\n--- cProfile, {name} (by own time) ---\n{text}")
    if a.out:
        Path(a.out).write_text(json.dumps({
            "count": a.count, "dim": a.dim, "batch_size": a.batch_size, "compression_level": a.compression_level,
            "repeat": a.repeat, "loadavg": [load1, load5, load15], "cpus": os.cpu_count(), "loads": loads, "phases": rows,
            "ratio": ratio, "goal": GOAL, "verdict": verdict, "faiss_ratio": faiss_ratio,
            **{k: v for k, v in extra.items() if k != "profile"}}, indent=2))


if __name__ == "__main__":
    main()
