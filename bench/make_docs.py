"""Render docs/benchmarks.md and its plots from bench/results/restore_*.json (written by bench_restore.py).

    python bench/make_docs.py [--results bench/results] [--docs docs]

Tables per size (every phase, its time, rows/s, size, peak RSS), the ratios against the baselines of
the same run with PASS/MISS, the export option sweep, and three PNG plots (matplotlib): throughput
of ours vs the baselines, RSS over time during an import, and the jobs scaling curve. The prose of
the page lives in bench/benchmarks_notes.md and is copied in as it is. The README's short table of
current figures (between the ``restore-figures`` markers) is rewritten from the same results.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

HERE = Path(__file__).resolve().parent


def load(results: Path) -> list[dict]:
    """Every run, by size then date; ``label`` names the size (and the run's time when a size ran twice)."""
    runs = sorted((json.loads(p.read_text()) for p in sorted(results.glob("restore_*.json"))),
                  key=lambda r: (r["count"], r.get("date", "")))
    for run in runs:
        twice = sum(1 for r in runs if (r["count"], r["dim"]) == (run["count"], run["dim"])) > 1
        run["label"] = f"{run['count']:,} x {run['dim']}" + (f", {run.get('date', '?')}" if twice else "")
    return runs


def fmt_rows(run: dict) -> list[str]:
    cores = run.get("cpus") or 1
    lines = ["| phase | seconds (fastest) | rows/s | MB on disk | peak RSS MB | CPU s: ours + server (of cores x wall) "
             "| every run (s) |",
             "|---|---:|---:|---:|---:|---:|---|"]
    for p in run["phases"]:
        seconds = p.get("inner_seconds", p["seconds"])  # faiss-add: FAISS's add itself, not reading the vectors
        rate = f"{p['rows'] / seconds:,.0f}" if p.get("rows") and seconds else ""
        size = f"{p['bytes'] / 1e6:,.0f}" if p.get("bytes") and p["phase"].startswith("export") else ""
        runs = ", ".join(str(x) for x in p.get("runs", [])) if len(p.get("runs", [])) > 1 else ""
        shown = f"{seconds:.2f}" + (f" (the add; {p['seconds']:.2f} with the read)" if "inner_seconds" in p else "")
        name = p["phase"] + (f" (a separate run: {separate(p)})" if "separate_run" in p else "")
        lines.append(f"| {name} | {shown} | {rate} | {size} | {p['rss_peak_mb']:.0f} | {cpu_cell(p, cores)} "
                     f"| {runs} |")
        if p["phase"] == "import-hnsw":
            lines.append(f"| ↳ first query answered after | {p['first_query_s']:.1f} | | | | | |")
            lines.append(f"| ↳ ANN-ready (HNSW built) after | {p['ann_ready_s']:.1f} | | | | | |")
    return lines


def separate(phase: dict) -> str:
    """Where a phase measured apart from its file's run (``bench_restore.py --hnsw-only``) comes from."""
    r = phase["separate_run"]
    return f"commit {r.get('commit') or '?'}, {r.get('date', '?')}, load {r['loadavg'][0]:.2f}"


def cpu_cell(phase: dict, cores: int) -> str:
    """``ours + server (share)``: CPU seconds of the phase's process and of PostgreSQL, and their sum as a
    share of what ``cores`` cores could give in the phase's wall time (near 100%: CPU-bound)."""
    if "server_cpu_s" not in phase:
        return ""
    used = phase["client_cpu_s"] + phase["server_cpu_s"]
    share = used / (cores * phase["seconds"]) if phase["seconds"] else 0
    return f"{phase['client_cpu_s']:.1f} + {phase['server_cpu_s']:.1f} ({share:.0%})"


def fmt_ratios(run: dict) -> list[str]:
    lines = ["| ours / baseline (same run) | ratio | goal | |", "|---|---:|---:|---|"]
    for name, v in run["ratios"].items():
        verdict = "" if v["goal"] is None else ("PASS" if v["ratio"] >= v["goal"] else "MISS")
        goal = "" if v["goal"] is None else f">= {v['goal']}"
        lines.append(f"| {name} | {v['ratio']:.2f} | {goal} | {verdict} |")
    return lines


SIZES = ((100_000, 768), (1_000_000, 768))  # what docs/benchmarks.md reports (issue 17)
README_START = "<!-- restore-figures:start (bench/make_docs.py writes this table) -->"
README_END = "<!-- restore-figures:end -->"
SUMMARY = (  # README row, ours, baseline (None: no ratio)
    ("export from pgvector (`--jobs 1`)", "export-pg-j1", "raw-copy-out"),
    ("export from FAISS (flat)", "export-faiss", "faiss-read"),
    ("`snapshot verify`", "verify-j1", None),
    ("import into a new pgvector store (flat)", "import-flat", "raw-copy-in"),
    ("the same with `--jobs 2` (two connections; a one-shard bundle, up to 100,000 rows, loads on one)", "import-flat-j2",
     "raw-copy-in"),
    ("import into a store holding every id (append)", "import-append", "raw-copy-in"),
    ("import into a FAISS store (flat)", "import-faiss", "faiss-add"),
    ("`validate` (20 queries) / `drift`", "validate", None),
    ("peers: `pg_dump -Fc` / `pg_dump -Fd -j 2` / `pg_restore -j 2`", "pg_dump-Fc", None),
)


def readme_table(runs: list[dict]) -> list[str]:
    """The README's summary: per size, our time, the ratio against the baseline and peak RSS."""
    head = "| operation | " + " | ".join(r["label"] for r in runs) + " |"
    lines = [head, "|---|" + "---|" * len(runs)]
    for label, ours, base in SUMMARY:
        cells = []
        for run in runs:
            by = {p["phase"]: p for p in run["phases"]}
            if ours not in by:
                cells.append("not measured")
                continue
            p = by[ours]
            if ours == "pg_dump-Fc":
                cells.append(" / ".join(f"{by[n]['seconds']:.1f} s" if n in by else "-"
                                        for n in ("pg_dump-Fc", "pg_dump-Fd-j2", "pg_restore-j2")))
                continue
            if ours == "validate":
                drift = by.get("drift")
                cells.append(f"{p['seconds']:.1f} s, {p['rss_peak_mb']:.0f} MB / "
                             + (f"{drift['seconds']:.1f} s, {drift['rss_peak_mb']:.0f} MB" if drift else "-"))
                continue
            key = next((k for k in run["ratios"] if k.startswith(f"{ours} / ")), None)
            ratio = ""
            if base is not None and key is not None and base in by:
                v = run["ratios"][key]
                verdict = "" if v["goal"] is None else (" (goal {}: {})".format(
                    v["goal"], "met" if v["ratio"] >= v["goal"] else "missed"))
                base_s = by[base].get("inner_seconds", by[base]["seconds"])  # faiss-add: the add itself
                ratio = f", {v['ratio']:.2f}x {base} ({base_s:.2f} s){verdict}"
            cells.append(f"{p['seconds']:.2f} s{ratio}, {p['rss_peak_mb']:.0f} MB RSS")
        lines.append(f"| {label} | " + " | ".join(cells) + " |")
    hnsw = [run for run in runs if any(p["phase"] == "import-hnsw" for p in run["phases"])]
    if hnsw:
        cells = []
        for run in runs:
            p = next((p for p in run["phases"] if p["phase"] == "import-hnsw"), None)
            cells.append("not measured" if p is None else
                         f"first query after {p['first_query_s']:.1f} s, ANN-ready after {p['ann_ready_s']:.1f} s"
                         + (f" ({separate(p)})" if "separate_run" in p else ""))
        lines.append("| import into a new HNSW pgvector store | " + " | ".join(cells) + " |")
    lines.append("| measured at | " + " | ".join(
        f"commit {run.get('commit') or '?'}, load {run['loadavg'][0]:.2f}" for run in runs) + " |")
    return lines


def write_readme(runs: list[dict], readme: Path) -> bool:
    """Replace the table between the README's markers; False when the README has no markers."""
    text = readme.read_text()
    if README_START not in text or README_END not in text:
        return False
    before, rest = text.split(README_START, 1)
    after = rest.split(README_END, 1)[1]
    readme.write_text(before + README_START + "\n" + "\n".join(readme_table(runs)) + "\n" + README_END + after)
    return True


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
        ax.bar([i + k * width for i in range(len(names))], values, width, label=run["label"])
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
                ax.plot([t for t, _ in trace], [m for _, m in trace], label=f"{phase} {run['label']}")
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
                ax.plot([j for j, _ in points], [r for _, r in points], marker="o", label=f"{label} {run['label']}")
    ax.set_xlabel("--jobs")
    ax.set_ylabel("rows/s")
    ax.set_xticks([1, 2, 4])
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(img / "jobs_scaling.png", dpi=110)
    made.append("img/jobs_scaling.png")
    return made


def graph_section(results: Path) -> list[str]:
    """The ``bench_hnsw_graph.py`` runs: one row per build, recall@10 / queries finding nothing per effort."""
    out: list[str] = []
    for path in sorted(results.glob("hnsw_graph_*.json")):
        run = json.loads(path.read_text())
        efforts = list(run["builds"][0]["efforts"]) if run["builds"] else []
        la = run["load_average"]
        out += [f"## HNSW graph quality: ef_construction at {run['count']:,} x {run['dim']}", "",
                f"`python bench/bench_hnsw_graph.py --count {run['count']} --dim {run['dim']}` (`{path.name}`, load "
                f"average {la[0]:.2f}): each build is the product's own pgvector build of the same synthetic records "
                f"(ten topic clusters), answering {run.get('queries', 1000)} seeded queries; a cell is recall@10 / "
                "queries that found none of their ten neighbours; the last column is the worst topic's recall at "
                "ef_search 320. `build s` is the HNSW load minus a flat load of the same rows "
                f"({run['flat_load_s']} s).", "",
                "| ef_construction | build | build s | " + " | ".join(f"ef {ef}" for ef in efforts) + " | worst topic @320 |",
                "|---:|---:|---:|" + "---:|" * len(efforts) + "---|"]
        for b in run["builds"]:
            cells = " | ".join(f"{v['recall']:.3f} / {v['none_found']}" for v in b["efforts"].values())
            worst = b["efforts"].get("320")
            tail = f"{worst['worst_topic']} {worst['worst_topic_recall']:.3f}" if worst else ""
            out.append(f"| {b['ef_construction']} | {b['build']} | {b['build_s']} | {cells} | {tail} |")
        out.append("")
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--results", default=str(HERE / "results"))
    ap.add_argument("--docs", default=str(HERE.parent / "docs"))
    ap.add_argument("--readme", default=str(HERE.parent / "README.md"))
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
        end = run.get("loadavg_end")
        out += [f"## {run['label']} (float32)", "",
                f"Measured at commit `{run.get('commit') or 'unknown'}` on {run.get('date', 'an unrecorded date')}, "
                f"{run['cpus']} CPUs, load average at the start {la[0]:.2f} / {la[1]:.2f} / {la[2]:.2f}"
                + (f", at the end {end[0]:.2f} / {end[1]:.2f} / {end[2]:.2f}" if end else "")
                + " (a shared machine: read the ratios, not the absolute times).", ""]
        out += fmt_ratios(run) + [""] + fmt_rows(run) + [""]
    measured = {(r["count"], r["dim"]) for r in runs}
    for count, dim in SIZES:
        if (count, dim) not in measured:
            out += [f"## {count:,} x {dim} (float32)", "",
                    f"Not measured yet: no `bench/results/restore_{count}x{dim}.json` (`make bench-docs` runs it; "
                    "at 1,000,000 x 768 about an hour on 2 cores).", ""]
    out += graph_section(Path(a.results))
    if runs:
        out += ["## Plots", ""] + [f"![{Path(m).stem}]({m})" for m in plots(runs, docs)] + [""]
    (docs / "benchmarks.md").write_text("\n".join(out))
    print(f"wrote {docs / 'benchmarks.md'} from {len(runs)} run(s)")
    readme = Path(a.readme)
    if runs and readme.is_file() and write_readme(runs, readme):
        print(f"updated the figures in {readme}")


if __name__ == "__main__":
    main()
