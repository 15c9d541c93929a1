"""Validation and search tuning operations of the front door."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from .stores import opened


def validate(source: str, target: str, *, queries: int = 100, k: int = 10, sample: int | None = None,
             min_overlap: float | None = None, seed: int = 0, report_path: str | Path | None = None,
             recall_floor: float | None = None, recall_vs_source: float | None = None,
             queries_file: str | Path | None = None) -> dict[str, Any]:
    """Compare ``target`` with ``source`` (store URIs or bundles).

    Returns ``{"passed", "failures", "queries", "mean_overlap", "min_overlap", "rank_agreement",
    "max_score_diff", "exact": {"passed", "queries", "k", "mismatches", ...}, "recall": {"source",
    "target", "floor", "rule", "passed", ...}, "per_query", "checks", "sides", "source", "target"}``, plus
    ``"report"`` when a Markdown report was written to ``report_path`` (see
    :func:`validation_report_path` for the default place). ``recall_floor`` (default 0.95) and
    ``recall_vs_source`` (a tolerance) are the two recall rules; give at most one.
    """
    from engine.validation import validate as run

    result = run(source, target, queries=queries, k=k, sample=sample, min_overlap=min_overlap, seed=seed,
                 report_path=report_path, recall_floor=recall_floor, recall_vs_source=recall_vs_source,
                 queries_file=queries_file)
    out = result.to_json()
    if report_path is not None:
        out["report"] = str(report_path)
    return out


def validation_report_path() -> Path:
    """Where a validation report goes by default: a new ``$PROCOS_HOME/reports/validation_<UTC time>.md``
    (the folder is created with mode 0700)."""
    from engine.validation import default_report_path

    return default_report_path()


def tune_search(uri: str | None, *, recall_floor: float = 0.95, k: int = 10, queries: int | None = None,
                seed: int = 0) -> dict[str, Any]:
    """Raise the HNSW store's stored ``ef_search`` until its measured recall@k meets ``recall_floor``.

    Returns ``{"ef_search", "recall", "floor", "reached", "tuned", "tried", ...}`` (see
    :func:`engine.validation.tune_search`); flat and empty stores are left as they are.
    """
    from engine.validation.tuning import SAMPLE
    from engine.validation.tuning import tune_search as run

    with opened(uri) as repo:
        return run(repo, floor=recall_floor, k=k, queries=SAMPLE if queries is None else queries, seed=seed)
