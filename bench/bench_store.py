"""Store throughput benchmark: bulk load and full streaming per backend, next to raw PostgreSQL COPY.

    python bench/bench_store.py [--count 100000] [--dim 768]
                                [--backends faiss-flat,faiss-hnsw,pgvector] [--out results.json]

Every phase runs in a fresh (spawned) child process, so "peak RSS" is the high-water mark of that
phase alone (it includes the interpreter, NumPy and the backend's libraries; "start RSS" shows that
floor). The PostgreSQL server's own memory is not included. The raw baseline uses the same embedded
server: ``COPY ... FROM STDIN (FORMAT BINARY)`` of the same records pre-encoded in a file, and
``COPY (SELECT * FROM t) TO STDOUT (FORMAT BINARY)`` read and discarded. Small writes (a 10-record
upsert and a 10-id delete) run against each loaded store; for FAISS the bench lists which files
they changed, to show the index checkpoint is not rewritten.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import shutil
import sys
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
sys.path.insert(0, str(Path(__file__).resolve().parent))

from copy_baseline import encode_copy_file, phase_copy_in, phase_copy_out  # noqa: E402

BACKENDS = {  # name -> (URI template, backend module warmed up before timing)
    "faiss-flat": ("faiss:{root}/faiss-flat?index=flat", "engine.repository.faiss"),
    "faiss-hnsw": ("faiss:{root}/faiss-hnsw?index=hnsw", "engine.repository.faiss"),
    "pgvector": ("{pg}&table=bench_flat&index=flat", "engine.repository.pgvector"),
    "pgvector-hnsw": ("{pg}&table=bench_hnsw&index=hnsw", "engine.repository.pgvector"),
}


# --- phases (each runs in its own child process) -------------------------------------------------

def phase_generate(count: int, dim: int, batch_size: int) -> dict:
    from engine.synthetic import synthetic_batches

    return {"rows": sum(len(b) for b in synthetic_batches(count, dim, batch_size=batch_size))}


def phase_load(uri: str, count: int, dim: int, batch_size: int) -> dict:
    from engine.repository import open_repository
    from engine.synthetic import synthetic_batches

    repo = open_repository(uri, dimensions=dim)
    try:
        result = repo.bulk_load(synthetic_batches(count, dim, batch_size=batch_size))
        return {"rows": result.written}
    finally:
        repo.close()


def phase_stream(uri: str, batch_size: int) -> dict:
    from engine.repository import open_repository

    repo = open_repository(uri)
    try:
        return {"rows": sum(len(b) for b in repo.iter_batches(batch_size))}
    finally:
        repo.close()


def phase_iter_records(uri: str) -> dict:
    from engine.repository import open_repository

    repo = open_repository(uri)
    try:
        return {"rows": sum(1 for _ in repo.iter_records())}
    finally:
        repo.close()


def files_of(location: str | None) -> dict[str, tuple[int, int, int]]:
    if not location or not os.path.isdir(location):
        return {}
    out = {}
    for base, _, names in os.walk(location):
        for name in names:
            st = os.stat(os.path.join(base, name))
            out[os.path.relpath(os.path.join(base, name), location)] = (st.st_size, st.st_mtime_ns, st.st_ino)
    return out


def phase_small_writes(uri: str, dim: int) -> dict:
    from dataclasses import replace

    from engine.repository import open_repository, parse_uri
    from engine.synthetic import record_id

    parsed = parse_uri(uri)
    location = parsed.location if parsed.scheme == "faiss" else None
    before = files_of(location)
    t0 = time.perf_counter()
    repo = open_repository(uri)
    t_open = time.perf_counter() - t0
    try:
        width = max(7, len(str(repo.count())))
        stored = repo.fetch([record_id(i, width) for i in range(10)])
        t0 = time.perf_counter()
        repo.upsert([replace(r, version=r.version + 1, metadata={**r.metadata, "edited": True}) for r in stored])
        t_upsert = time.perf_counter() - t0
        t0 = time.perf_counter()
        deleted = repo.delete([record_id(i, width) for i in range(10, 20)])
        t_delete = time.perf_counter() - t0
    finally:
        repo.close()
    after = files_of(location)
    changed = sorted(p for p in set(before) | set(after) if before.get(p) != after.get(p))
    index_files = sorted(p for p in before if p.endswith(".faiss"))  # FAISS index checkpoint(s)
    return {"rows": len(stored), "deleted": deleted, "open_s": t_open, "upsert_s": t_upsert,
            "delete_s": t_delete, "changed_files": [(p, before.get(p, (0,))[0], after.get(p, (0,))[0]) for p in changed],
            "checkpoint": ", ".join(index_files) or None,
            "checkpoint_mb": sum(before[p][0] for p in index_files) / 1e6,
            "checkpoint_changed": any(p.endswith(".faiss") for p in changed) if index_files else None}


PHASES = {f.__name__: f for f in (phase_generate, phase_load, phase_stream, phase_iter_records,
                                  phase_small_writes, phase_copy_in, phase_copy_out)}


def peak_rss() -> int:
    """This process's RSS high-water mark in bytes (VmHWM: reset by exec, unlike ru_maxrss)."""
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


def measured(name: str, warm: str | None, args: tuple) -> dict:
    """Run one phase in this (fresh) process: wall time, RSS at start and RSS high-water."""
    import importlib

    import psutil

    if warm:
        importlib.import_module(warm)
    rss0 = psutil.Process().memory_info().rss
    t0 = time.perf_counter()
    out = PHASES[name](*args)
    seconds = time.perf_counter() - t0
    peak = peak_rss()
    return {**out, "seconds": seconds, "rss_start_mb": rss0 / 1e6, "rss_peak_mb": peak / 1e6}


def run(name: str, *args, warm: str | None = None) -> dict:
    with ProcessPoolExecutor(1, mp_context=get_context("spawn")) as pool:
        return pool.submit(measured, name, warm, args).result()


# --- driver ----------------------------------------------------------------------------------------

def row(backend: str, phase: str, r: dict, vector_bytes: int) -> dict:
    s = r["seconds"]
    return {"backend": backend, "phase": phase, "rows": r["rows"], "seconds": round(s, 3),
            "rows_per_s": round(r["rows"] / s) if s else None,
            "vector_mb_per_s": round(vector_bytes / 1e6 / s, 1) if s else None,
            "rss_start_mb": round(r["rss_start_mb"]), "rss_peak_mb": round(r["rss_peak_mb"])}


def print_table(rows: list[dict], small: list[dict]) -> None:
    head = f"{'backend':<14}{'phase':<14}{'rows':>9}{'seconds':>9}{'rows/s':>10}{'MB/s':>8}{'RSS0 MB':>9}{'peak MB':>9}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['backend']:<14}{r['phase']:<14}{r['rows']:>9}{r['seconds']:>9.2f}{r['rows_per_s'] or 0:>10}"
              f"{r['vector_mb_per_s'] or 0:>8}{r['rss_start_mb']:>9}{r['rss_peak_mb']:>9}")
    for s in small:
        line = (f"{s['backend']}: open {s['open_s'] * 1000:.0f} ms, upsert 10 {s['upsert_s'] * 1000:.1f} ms, "
                f"delete 10 {s['delete_s'] * 1000:.1f} ms ({s['deleted']} existed)")
        if s["checkpoint"]:
            state = "REWRITTEN" if s["checkpoint_changed"] else "unchanged"
            line += (f"; index checkpoint {s['checkpoint']} ({s['checkpoint_mb']:.1f} MB) {state}; files "
                     "changed: " + ", ".join(f"{p} ({b / 1e6:.1f} -> {n / 1e6:.1f} MB)" for p, b, n in s["changed_files"]))
        print(line)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--count", type=int, default=100_000)
    ap.add_argument("--dim", type=int, default=768)
    ap.add_argument("--batch-size", type=int, default=10_000)
    ap.add_argument("--backends", default="faiss-flat,faiss-hnsw,pgvector",
                    help=f"comma-separated, from {', '.join(BACKENDS)}")
    ap.add_argument("--out", help="also write the results as JSON to this file")
    a = ap.parse_args()
    names = [n.strip() for n in a.backends.split(",") if n.strip()]
    unknown = [n for n in names if n not in BACKENDS]
    if unknown:
        ap.error(f"unknown backend(s) {unknown}; choose from {', '.join(BACKENDS)}")
    vbytes = a.count * a.dim * 4
    root = Path(tempfile.mkdtemp(prefix="procos-bench-"))
    os.chmod(root, 0o755)
    import pgserver

    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    pg = server.get_uri()
    rows, small, failed = [], [], {}
    try:
        rows.append(row("synthetic", "generate", run("phase_generate", a.count, a.dim, a.batch_size,
                                                   warm="engine.synthetic"), vbytes))
        copy_file = root / "records.pgcopy"
        t0 = time.perf_counter()
        size = encode_copy_file(copy_file, a.count, a.dim, a.batch_size)
        print(f"encoded {size / 1e6:.1f} MB of binary COPY in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        rows.append(row("pg-copy", "copy-in", run("phase_copy_in", pg, str(copy_file), a.dim, warm="psycopg"), vbytes))
        rows.append(row("pg-copy", "copy-out", run("phase_copy_out", pg, warm="psycopg"), vbytes))
        copy_file.unlink()
        for name in names:
            template, warm = BACKENDS[name]
            uri = template.format(root=root, pg=pg)
            print(f"running {name} ...", file=sys.stderr)
            try:
                rows.append(row(name, "bulk_load", run("phase_load", uri, a.count, a.dim, a.batch_size,
                                                       warm=warm), vbytes))
                rows.append(row(name, "iter_batches", run("phase_stream", uri, a.batch_size, warm=warm), vbytes))
                rows.append(row(name, "iter_records", run("phase_iter_records", uri, warm=warm), vbytes))
                small.append({"backend": name, **run("phase_small_writes", uri, a.dim, warm=warm)})
            except Exception as exc:  # noqa: BLE001 - one failing backend must not hide the others' figures
                print(f"{name} FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
                failed[name] = f"{type(exc).__name__}: {exc}"
    finally:
        server.cleanup()
        shutil.rmtree(root, ignore_errors=True)
    print(f"\n{a.count} records x {a.dim} dims ({vbytes / 1e6:.0f} MB of float32 vectors), "
          f"batch size {a.batch_size}; MB/s counts vector bytes only\n")
    print_table(rows, small)
    for name, why in failed.items():
        print(f"{name}: FAILED ({why})")
    if a.out:
        Path(a.out).write_text(json.dumps({"count": a.count, "dim": a.dim, "batch_size": a.batch_size,
                                           "phases": rows, "small_writes": small,
                                           "failed": failed}, indent=2))


if __name__ == "__main__":
    main()
