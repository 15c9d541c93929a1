"""HNSW graph quality against build cost: pgvector stores built with ef_construction 64 and 128.

    python bench/bench_hnsw_graph.py [--count 50000] [--dim 256] [--builds 4] [--ef-construction 64,128]
                                     [--out bench/results/hnsw_graph_50000x256.json]

The product's default ``ef_construction`` (128, ``engine.repository.base.DEFAULT_HNSW``) is chosen by
this run. For each value, ``--builds`` stores of the same synthetic records (``store seed``'s data:
ten tight topic clusters) are loaded into an embedded PostgreSQL with the product's own build
(``bulk_load``: COPY into a fresh table, then ``CREATE INDEX CONCURRENTLY`` in parallel). A flat
load of the same rows in the same run is the baseline: ``build s`` is the HNSW load minus the flat
one. Each graph then answers 1,000 seeded queries (stored and perturbed stored vectors, as a
validation draws them) at ef_search 40 to 1000; recall@10 is against a brute force of every vector.
Printed per build: recall at each effort, queries that found none of their neighbours, and the
worst topic's recall (a poorly reachable cluster shows there). pgvector's parallel build is not
deterministic, so builds of one setting differ: that spread is the point.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from engine.repository import open_repository  # noqa: E402
from engine.synthetic import synthetic_batches  # noqa: E402
from engine.validation.queryset import Reservoir, draw_queries  # noqa: E402
from engine.validation.recall import recall_at_k  # noqa: E402
from engine.validation.truth import brute_force  # noqa: E402

EFFORTS = (40, 80, 160, 320, 640, 1000)


def load(uri: str, count: int, dim: int) -> float:
    started = time.perf_counter()
    with open_repository(uri, create=True, dimensions=dim) as repo:
        repo.bulk_load(synthetic_batches(count, dim, batch_size=10_000))
    return time.perf_counter() - started


def measure(uri: str, queries: np.ndarray, exact: list, topics: list[str], efforts: tuple[int, ...]) -> dict:
    out = {}
    with open_repository(uri, create=False) as repo:
        for ef in efforts:
            repo.set_ef_search(ef)
            found = np.array([recall_at_k(e, repo.query(q, 10)) for q, e in zip(queries, exact, strict=True)])
            worst = min((float(found[[t == topic for t in topics]].mean()), topic) for topic in set(topics))
            out[ef] = {"recall": round(float(found.mean()), 4), "none_found": int((found == 0).sum()),
                       "worst_topic": worst[1], "worst_topic_recall": round(worst[0], 4)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--count", type=int, default=50_000)
    ap.add_argument("--dim", type=int, default=256)
    ap.add_argument("--builds", type=int, default=4)
    ap.add_argument("--ef-construction", default="64,128")
    ap.add_argument("--queries", type=int, default=1000)
    ap.add_argument("--efforts", default=",".join(map(str, EFFORTS)), help="ef_search values measured")
    ap.add_argument("--out")
    a = ap.parse_args()
    efforts = tuple(int(x) for x in a.efforts.split(","))
    import pgserver

    root = Path(tempfile.mkdtemp(prefix="procos-bench-hnsw-"))
    server = pgserver.get_server(root / "pgdata", cleanup_mode="delete")
    pg = server.get_uri()
    sep = "&" if "?" in pg else "?"
    load_avg = os.getloadavg()
    flat = load(f"{pg}{sep}table=flat_base&index=flat", a.count, a.dim)
    with open_repository(f"{pg}{sep}table=flat_base", create=False) as repo:
        rng = np.random.default_rng(2024)
        pool = Reservoir(a.queries, rng)
        pool.offer_batches(repo.iter_batches(10_000))
        queries = draw_queries(pool.array(a.dim), a.queries, "cosine", rng).vectors
        exact = brute_force(repo.iter_batches(10_000), queries, 10, "cosine")
        topics = [r.metadata["topic"] for r in repo.fetch([e[0].id for e in exact])]
    print(f"{a.count} x {a.dim}, flat load {flat:.1f} s, load average {load_avg[0]:.1f}", file=sys.stderr)
    builds = []
    for efc in [int(x) for x in a.ef_construction.split(",")]:
        for i in range(a.builds):
            uri = f"{pg}{sep}table=g{efc}_{i}&index=hnsw&m=16&ef_construction={efc}"
            total = load(uri, a.count, a.dim)
            served = measure(uri.split("&index")[0], queries, exact, topics, efforts)
            builds.append({"ef_construction": efc, "build": i, "load_s": round(total, 2),
                           "build_s": round(total - flat, 2), "efforts": served})
            cells = "  ".join(f"ef{ef} {v['recall']:.3f}/{v['none_found']}" for ef, v in served.items())
            worst = {ef: f"{v['worst_topic']} {v['worst_topic_recall']:.3f}" for ef, v in served.items() if ef == 320}
            print(f"efc {efc} #{i}: build {total - flat:5.1f} s  {cells}  worst topic {worst}", file=sys.stderr)
    summary = {}
    for efc in sorted({b["ef_construction"] for b in builds}):
        mine = [b for b in builds if b["ef_construction"] == efc]
        summary[efc] = {"build_s_mean": round(float(np.mean([b["build_s"] for b in mine])), 2),
                        **{f"recall@{ef}_min": min(b["efforts"][ef]["recall"] for b in mine) for ef in efforts},
                        **{f"none_found@{ef}_max": max(b["efforts"][ef]["none_found"] for b in mine) for ef in efforts}}
        print(f"ef_construction {efc}: {json.dumps(summary[efc])}")
    if a.out:
        Path(a.out).write_text(json.dumps({"count": a.count, "dim": a.dim, "flat_load_s": round(flat, 2), "queries": a.queries,
                                           "load_average": load_avg, "builds": builds, "summary": summary},
                                          indent=1) + "\n")
    server.cleanup()


if __name__ == "__main__":
    main()
