"""Cutover under a steady writer: the write pause (freeze to switch) next to the total duration.

    python bench/bench_cutover.py --count 100000 --dim 768 [--rate 50] [--monitor-seconds 5]

Seeds an embedded pgvector source, starts a writer that upserts ``--rate`` records per second into it,
runs the ``cutover`` process (dev: no approval) into a second embedded pgvector table, and prints the
write pause, the total time, the catch-up rounds, the writes acknowledged and refused, and checks that
every acknowledged write reached the target. Everything lives in a temporary folder, removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import sys
import tempfile
import threading
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--count", type=int, default=100_000)
    parser.add_argument("--dim", type=int, default=768)
    parser.add_argument("--rate", type=float, default=50.0, help="writes per second during the cutover")
    parser.add_argument("--monitor-seconds", type=int, default=5)
    parser.add_argument("--index", choices=("flat", "hnsw"), default="flat", help="the stores' index (hnsw builds take minutes at 100k x 768)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="procos-bench-cutover-"))
    os.chmod(root, 0o755)  # the embedded server runs as its own user when we are root
    os.environ.update(PROCOS_HOME=str(root / "home"), PROCOS_ENV="dev")
    try:
        return run(root, args)
    finally:
        shutil.rmtree(root, ignore_errors=True)


def run(root: Path, args: argparse.Namespace) -> int:
    import numpy as np

    from engine import api
    from engine.errors import IngestionPaused
    from engine.records import EmbeddingRecord
    from engine.repository import open_repository
    from engine.workflow import WorkflowService
    from engine.workflow.identity import login_name

    pg = root / "pg"
    source = f"postgresql+embedded:{pg}?table=source&index={args.index}"
    target = f"postgresql+embedded:{pg}?table=target&index={args.index}"
    started = time.perf_counter()
    api.seed_store(source, args.count, args.dim, artifacts=False)
    print(f"seeded {args.count} x {args.dim} in {time.perf_counter() - started:.1f} s", flush=True)
    svc = WorkflowService()
    me = login_name()
    svc.directory.add(svc.directory.identity(me), me, ["Admin", "Owner"])
    acked, refused, stop = [], [0], threading.Event()

    def writer() -> None:
        repo = open_repository(source)
        rng = np.random.default_rng(1)
        n = 0
        try:
            while not stop.is_set():
                tick = time.perf_counter()
                rid = f"live{n:07d}"
                try:
                    repo.upsert([EmbeddingRecord(id=rid, vector=rng.random(args.dim, dtype=np.float32) + 0.01)])
                    acked.append(rid)
                    n += 1
                except IngestionPaused:
                    refused[0] += 1
                time.sleep(max(0.0, 1 / args.rate - (time.perf_counter() - tick)))
        finally:
            repo.close()

    thread = threading.Thread(target=writer, daemon=True)
    thread.start()
    time.sleep(1)
    result = svc.start_process("cutover", {"source": source, "target": target, "endpoint_file": str(root / "app.env"),
                                           "monitor_seconds": args.monitor_seconds, "work_dir": str(root / "work")},
                               user=me)
    stop.set()
    thread.join()
    data = result["data"]
    if result["state"] != "completed":
        print(json.dumps(svc.show_instance(result["instance_id"])["error"]))
        return 1
    with open_repository(target) as repo:
        missing = len(acked) - len(repo.fetch(acked))
    figures = {"records": args.count, "dim": args.dim, "write_rate": args.rate,
               "write_pause_seconds": data["write_pause_seconds"], "total_seconds": data["total_seconds"],
               "full_copy_seconds": data["full_copy_seconds"], "rounds": data["rounds"],
               "final_delta": data["final_delta"], "monitor_seconds": args.monitor_seconds,
               "writes_acknowledged": len(acked), "writes_refused_while_frozen": refused[0],
               "acknowledged_missing_on_target": missing, "passed": data["passed"]}
    print(json.dumps(figures, indent=2))
    svc.close()
    return 0 if missing == 0 and data["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
