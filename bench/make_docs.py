"""Render docs/benchmarks.md and its plots from bench/results/restore_*.json (written by bench_restore.py).

    python bench/make_docs.py [--results bench/results] [--docs docs]

Tables per size (every phase, its time, rows/s, size, peak RSS), the ratios against the baselines of
the same run with PASS/MISS, the export option sweep, and three PNG plots (matplotlib): throughput
of ours vs the baselines, RSS over time during an import, and the jobs scaling curve. The prose of
the page lives in bench/benchmarks_notes.md and is copied in as it is.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(results: Path) -> list[dict]:
    runs = [json.loads(p.read_text()) for p in sorted(results.glob("restore_*.json"))]
    return sorted(runs, key=lambda r: r["count"])


def fmt_rows(run: dict) -> list[str]:
    lines = ["| phase | seconds (fastest) | rows/s | MB on disk | peak RSS MB | every run (s) |",
             "|---|---:|---:|---:|---:|---|"]
    for p in run["phases"]:
        rate = f"{p['rows'] / p['seconds']:,.0f}" if p.get("rows") and p["seconds"] else ""
        size = f"{p['bytes'] / 1e6:,.0f}" if p.get("bytes") and p["phase"].startswith("export") else ""
        runs = ", ".join(str(x) for x in p.get("runs", [])) if len(p.get("runs", [])) > 1 else ""
        lines.append(f"| {p['phase']} | {p['seconds']:.2f} | {rate} | {size} | {p['rss_peak_mb']:.0f} | {runs} |")
        if p["phase"] == "import-hnsw":
            lines.append(f"| ↳ first query answered after | {p['first_query_s']:.1f} | | | | |")
            lines.append(f"| ↳ ANN-ready (HNSW built) after | {p['ann_ready_s']:.1f} | | | | |")
    return lines


def fmt_ratios(run: dict) -> list[str]:
    lines = ["| ours / baseline (same run) | ratio | goal | |", "|---|---:|---:|---|"]
    for name, v in run["ratios"].items():
        verdict = "" if v["goal"] is None else ("PASS" if v["ratio"] >= v["goal"] else "MISS")
        goal = "" if v["goal"] is None else f">= {v['goal']}"
        lines.append(f"| {name} | {v['ratio']:.2f} | {goal} | {verdict} |")
    return lines


def plots(runs: list[dict], docs: Path) -> list[str]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    img = docs / "img"
    img.mkdir(parents=True, exist_ok=True)
    made = []
    # 1. throughput vs baseline: ours / baseline of the same run, with the goals
    fig, ax = plt.subplots(figsize=(8, 4))
    names = sorted({n for run in runs for n in run["ratios"]}, key=lambda n: list(runs[0]["ratios"]).index(n)
                   if n in runs[0]["ratios"] else 99)
    width = 0.8 / max(1, len(runs))
    for k, run in enumerate(runs):
        values = [run["ratios"].get(n, {}).get("ratio", 0) for n in names]
        ax.bar([i + k * width for i in range(len(names))], values, width, label=f"{run['count']:,} x {run['dim']}")
    for i, n in enumerate(names):
        goal = next((run["ratios"][n]["goal"] for run in runs if n in run["ratios"]), None)
        if goal:
            ax.hlines(goal, i - 0.1, i + 0.8, colors="red", linestyles="--", linewidth=1)
    ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))],
                  [n.replace(" / ", "\n/ ") for n in names], fontsize=7)
    ax.set_ylabel("throughput, ours / baseline")
    ax.set_title("procos vs the raw baseline of the same run (red: goal)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img / "throughput.png", dpi=110)
    made.append("img/throughput.png")
    # 2. RSS over time during the imports
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        for phase, trace in run.get("rss_trace", {}).items():
            if trace:
                ax.plot([t for t, _ in trace], [m for _, m in trace], label=f"{phase} {run['count']:,}")
    ax.axhline(512, color="red", linestyle="--", linewidth=1, label="512 MB goal")
    ax.set_xlabel("seconds")
    ax.set_ylabel("RSS of the importing process (MB)")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img / "import_rss.png", dpi=110)
    made.append("img/import_rss.png")
    # 3. jobs scaling
    fig, ax = plt.subplots(figsize=(7, 4))
    for run in runs:
        for prefix, label in (("export-pg-j", "export"), ("verify-j", "verify")):
            points = sorted((int(p["phase"][len(prefix):]), p["rows"] / p["seconds"]) for p in run["phases"]
                            if p["phase"].startswith(prefix))
            if points:
                ax.plot([j for j, _ in points], [r for _, r in points], marker="o", label=f"{label} {run['count']:,}")
    ax.set_xlabel("--jobs")
    ax.set_ylabel("rows/s")
    ax.set_xticks([1, 2, 4])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img / "jobs_scaling.png", dpi=110)
    made.append("img/jobs_scaling.png")
    return made


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--docs", default=str(HERE.parent / "docs"))
    a = ap.parse_args()
    runs = load(Path(a.results))
    docs = Path(a.docs)
    out = ["# Benchmarks", "",
           "Generated by `make bench-docs` (bench/bench_restore.py, then bench/make_docs.py) from "
           "`bench/results/restore_*.json`; do not edit by hand. Every ratio compares two phases of one run.", ""]
    notes = HERE / "benchmarks_notes.md"
    if notes.is_file():
        out += [notes.read_text().rstrip(), ""]
    for run in runs:
        la = run["loadavg"]
        out += [f"## {run['count']:,} x {run['dim']} (float32)", "",
                f"{run['cpus']} CPUs, load average at the start {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f} "
                "(a shared machine: read the ratios, not the absolute times).", ""]
        out += fmt_ratios(run) + [""] + fmt_rows(run) + [""]
    if runs:
        out += ["## Plots", ""] + [f"![{Path(m).stem}]({m})" for m in plots(runs, docs)] + [""]
    (docs / "benchmarks.md").write_text("\n".join(out))
    print(f"wrote {docs / 'benchmarks.md'} from {len(runs)} run(s)")


if __name__ == "__main__":
    main()
