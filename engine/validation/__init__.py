"""Validation: prove that a target holds what its source holds, and serves it well.

``validate(source, target)`` compares two store URIs or bundles:

- records: count, dimensions and metric; every id present; per-record vector_hash, metadata and
  version equality (all records, or ``sample`` random ones); artifact checksums;
- exact check (equivalence of data): one query set (see :mod:`.queryset`) answered by an exact
  search on both sides; top-k ids and ranks must be identical, ties allowed to reorder;
- recall (serving quality): each side's approximate top-k against its own exact top-k; the target
  passes by the recall floor (default 0.95) or by the source's recall minus a tolerance.

``passed`` is the conjunction of all of them. A bundle side is exact by nature (brute force).
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from .answers import compare_queries, describe_side, skipped
from .compare import compare_records
from .queryset import combine, draw_queries, load_queries_file
from .recall import DEFAULT_FLOOR, RecallRule
from .report import default_report_path, write_markdown
from .result import Validation
from .sides import open_side
from .tuning import tune_search

# 100 queries: with 20, one hard query of a good HNSW graph (about 1 in 100 stored vectors is poorly
# reachable) moves the measured recall by 0.05, enough to fail a 0.95 floor by chance
DEFAULT_QUERIES = 100

__all__ = ["DEFAULT_FLOOR", "DEFAULT_QUERIES", "RecallRule", "Validation", "default_report_path", "tune_search", "validate",
           "write_markdown"]


def validate(source: str, target: str, *, queries: int = DEFAULT_QUERIES, k: int = 10, sample: int | None = None,
             min_overlap: float | None = None, seed: int = 0, report_path: str | Path | None = None,
             recall_floor: float | None = None, recall_vs_source: float | None = None,
             queries_file: str | Path | None = None) -> Validation:
    """Compare ``target`` against ``source`` (store URIs or bundle paths) and return the outcome.

    ``queries`` are drawn from the stored vectors (half as they are, half perturbed); the rows of
    ``queries_file`` (``.npy``, shape (n, d)) are added to them. ``min_overlap`` below 1.0 loosens
    the exact check to that share of each query's top-k. ``recall_floor`` or ``recall_vs_source``
    chooses the recall rule (default: floor 0.95).
    """
    rule = RecallRule.of(recall_floor, recall_vs_source)
    rng = np.random.default_rng(seed)
    with contextlib.ExitStack() as stack:
        src = open_side(source, stack)
        dst = open_side(target, stack)
        result = Validation(source=src.name, target=dst.name)
        result.sides = {"source": describe_side(src), "target": describe_side(dst)}
        _compare_settings(src, dst, result)
        _compare_artifacts(src.artifacts, dst.artifacts, result)
        if src.dimensions != dst.dimensions or src.metric != dst.metric:
            if src.dimensions == dst.dimensions:
                compare_records(src, dst, result, sample, rng, pool_size=0)
            skipped(result, k, rule, "the two sides have different dimensions or metrics", passed=False)
        else:
            from_file = None
            if queries_file is not None and src.dimensions is not None:  # read first: a bad file stops here
                from_file = load_queries_file(queries_file, src.dimensions, src.metric)
            pool = compare_records(src, dst, result, sample, rng, pool_size=queries)
            query_set = draw_queries(pool, queries, src.metric, rng)
            if from_file is not None:
                query_set = combine(query_set, from_file)
            compare_queries(src, dst, query_set, k, min_overlap, rule, result)
            result.checks["queries"].update(file=str(queries_file) if queries_file else None, seed=seed)
    if report_path is not None:
        write_markdown(result, Path(report_path))
    return result


def _compare_settings(src: Any, dst: Any, result: Validation) -> None:
    result.checks["settings"] = {"source": {"count": src.count, "dimensions": src.dimensions, "metric": src.metric},
                                 "target": {"count": dst.count, "dimensions": dst.dimensions, "metric": dst.metric}}
    if src.count != dst.count:
        result.fail("count", f"source has {src.count} records, target {dst.count}")
    if src.dimensions != dst.dimensions:
        result.fail("dimensions", f"source has {src.dimensions} dimensions, target {dst.dimensions}",
                    setting="dimensions")
    if src.metric != dst.metric:
        result.fail("metric", f"source uses metric {src.metric!r}, target {dst.metric!r}", setting="metric")


def _compare_artifacts(src: dict[str, str], dst: dict[str, str], result: Validation) -> None:
    missing = sorted(set(src) - set(dst))
    extra = sorted(set(dst) - set(src))
    changed = sorted(p for p in set(src) & set(dst) if src[p] != dst[p])
    result.checks["artifacts"] = {"source": len(src), "target": len(dst), "missing": len(missing),
                                  "unexpected": len(extra), "changed": len(changed)}
    if missing:
        result.fail("artifacts_missing", f"{len(missing)} artifact(s) missing in the target", files=missing)
    if extra:
        result.fail("artifacts_unexpected", f"{len(extra)} artifact(s) only in the target", files=extra)
    if changed:
        result.fail("artifact_checksum", f"{len(changed)} artifact(s) differ in content", files=changed)
