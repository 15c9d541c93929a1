"""Validation: prove that a target answers like its source.

``validate(source, target)`` compares two store URIs or bundles: count, dimensions and metric,
every id present, per-record vector_hash equality (all records, or ``sample`` random ones),
artifact checksums, and ``queries`` random queries (half from stored vectors, half random
directions) for top-k overlap, rank agreement and score differences. Thresholds: all ids present,
hashes equal, overlap 1.0 per query when both sides are exact; a recall floor (0.95) otherwise.
"""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import numpy as np

from .compare import compare_records
from .queries import compare_queries
from .report import write_markdown
from .result import Validation
from .sides import open_side

__all__ = ["Validation", "validate", "write_markdown"]


def validate(source: str, target: str, *, queries: int = 20, k: int = 10, sample: int | None = None,
             min_overlap: float | None = None, seed: int = 0, report_path: str | Path | None = None
             ) -> Validation:
    """Compare ``target`` against ``source`` (store URIs or bundle paths) and return the outcome."""
    rng = np.random.default_rng(seed)
    with contextlib.ExitStack() as stack:
        src = open_side(source, stack)
        dst = open_side(target, stack)
        result = Validation(source=src.name, target=dst.name)
        _compare_settings(src, dst, result)
        _compare_artifacts(src.artifacts, dst.artifacts, result)
        if src.dimensions == dst.dimensions:
            pool = compare_records(src, dst, result, sample, rng)
            if src.metric == dst.metric:
                compare_queries(src, dst, pool, queries, k, min_overlap, rng, result)
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
