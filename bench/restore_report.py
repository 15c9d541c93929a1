"""bench_restore.py's report: the code measured (its commit) and the printed and JSON results, with
each ratio of ours against its baseline of the same run.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from pathlib import Path


def commit() -> str | None:
    """The checkout's commit (short), with ``+dirty`` when tracked files differ from it."""
    root = Path(__file__).resolve().parent.parent
    try:
        head = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", "engine",
                                "bench/bench_restore.py", "bench/bench_store.py"],
                               cwd=root, capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return None
    return head + ("+dirty" if dirty else "")


def report(a, load, rows, samples, measured_at: str | None = None) -> None:
    by = {r["phase"]: r for r in rows}
    ratios = {}

    def ratio(name: str, ours: str, base: str, goal: float) -> None:
        if ours in by and base in by:
            ratios[name] = {"ratio": round(by[base]["seconds"] / by[ours]["seconds"], 3), "goal": goal}

    for r in rows:
        if r["phase"].startswith("export-pg-j"):
            ratio(f"{r['phase']} / raw-copy-out", r["phase"], "raw-copy-out", 0.9)
    ratio("export-faiss / faiss-read", "export-faiss", "faiss-read", 0.9)
    ratio("import-flat / raw-copy-in", "import-flat", "raw-copy-in", 0.9)
    for r in rows:
        if r["phase"].startswith("import-flat-j"):
            j = r["phase"].rsplit("-j", 1)[1]
            ratio(f"{r['phase']} / raw-copy-in", r["phase"], "raw-copy-in", 0.9)
            ratio(f"{r['phase']} / raw-copy-in-j{j}", r["phase"], f"raw-copy-in-j{j}", None)
    ratio("import-append / raw-copy-in", "import-append", "raw-copy-in", 0.5)
    if "faiss-add" in by:
        by["faiss-add"] = {**by["faiss-add"], "seconds": by["faiss-add"]["inner_seconds"]}
    ratio("import-faiss / faiss-add", "import-faiss", "faiss-add", None)
    print(f"\n{a.count} x {a.dim}; load average at start {load[0]:.2f} {load[1]:.2f} {load[2]:.2f} "
          f"({os.cpu_count()} CPUs)\n")
    print(f"{'phase':<24}{'rows':>9}{'seconds':>10}{'rows/s':>10}{'MB':>9}{'peak RSS MB':>13}"
          f"{'CPU s (ours + server)':>24}")
    for r in rows:
        mb = r.get("bytes", 0) / 1e6
        rate = r["rows"] / r["seconds"] if r["rows"] and r["seconds"] else 0
        cpu = f"{r['client_cpu_s']:.1f} + {r['server_cpu_s']:.1f}" if "server_cpu_s" in r else ""
        print(f"{r['phase']:<24}{r['rows']:>9}{r['seconds']:>10.2f}{rate:>10.0f}{mb:>9.1f}{r['rss_peak_mb']:>13.0f}"
              f"{cpu:>24}")
        if r["phase"] == "import-hnsw":
            print(f"{'':<24}first query after {r['first_query_s']:.1f} s, ANN-ready after {r['ann_ready_s']:.1f} s "
                  f"(import returned after {r['import_returned_s']:.1f} s; building seen: {r['building_seen']})")
    print()
    for name, v in ratios.items():
        verdict = "" if v["goal"] is None else (" PASS" if v["ratio"] >= v["goal"] else " MISS")
        print(f"{name:<36} {v['ratio']:.2f} (goal >= {v['goal']}){verdict}")
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps({"count": a.count, "dim": a.dim, "loadavg": load, "cpus": os.cpu_count(),
                                           "loadavg_end": os.getloadavg(), "commit": measured_at,
                                           "date": time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime()),
                                           "phases": rows, "ratios": ratios, "rss_trace": samples}, indent=1))
