"""The two query checks of a validation, on one query set answered four ways.

- **exact**: the source's exact top-k against the target's exact top-k (equivalence of data);
- **recall**: each side's served (approximate) top-k against its own exact top-k (serving quality),
  judged by a :class:`~.recall.RecallRule`.
"""

from __future__ import annotations

from typing import Any

from engine.repository import Hit

from .exact import compare_exact
from .queryset import QuerySet
from .recall import RecallRule, judge, recall_at_k
from .result import MAX_LISTED, Validation
from .sides import Side


def describe_side(side: Side) -> dict[str, Any]:
    return {"name": side.name, "index": side.index, "ef_search": side.ef_search if side.index == "hnsw" else None,
            "count": side.count}


def skipped(result: Validation, k: int, rule: RecallRule, why: str, passed: bool) -> None:
    """Record that the query checks did not run (``passed``: whether that is acceptable)."""
    result.exact = {"passed": passed, "queries": 0, "k": k, "mismatches": [], "skipped": why}
    result.recall = {**judge([], [], rule, k), "passed": passed, "skipped": why}


def compare_queries(source: Side, target: Side, queries: QuerySet, k: int, min_overlap: float | None,
                    rule: RecallRule, result: Validation) -> None:
    """Run both checks and record them in ``result`` (``exact``, ``recall``, ``per_query``, failures)."""
    result.queries = len(queries)
    result.checks["queries"] = {"count": len(queries), "k": k, "kinds": queries.counts()}
    if not len(queries):
        why = "no queries requested" if source.count else "the source holds no records"
        skipped(result, k, rule, why, passed=True)
        return
    vectors = queries.vectors
    src_exact, dst_exact = source.exact_answers(vectors, k), target.exact_answers(vectors, k)
    check = compare_exact(src_exact, dst_exact, queries.kinds, k, 1.0 if min_overlap is None else min_overlap)
    src_recall = [recall_at_k(e, a) for e, a in zip(src_exact, _served(source, src_exact, vectors, k), strict=True)]
    dst_recall = [recall_at_k(e, a) for e, a in zip(dst_exact, _served(target, dst_exact, vectors, k), strict=True)]
    result.exact = check.to_json()
    result.recall = judge(src_recall, dst_recall, rule, k)
    result.mean_overlap = sum(check.overlaps) / len(check.overlaps)
    result.min_overlap = min(check.overlaps)
    result.rank_agreement = sum(check.ranks) / len(check.ranks)
    result.max_score_diff = check.max_score_diff
    result.per_query = [{"query": i, "kind": kind, "exact_match": match, "overlap": share,
                         "source_recall": s, "target_recall": t}
                        for i, (kind, match, share, s, t) in enumerate(zip(
                            queries.kinds, check.matches, check.overlaps, src_recall, dst_recall, strict=True))]
    _record_failures(result, check.matches, k, rule)


def _served(side: Side, exact: list[list[Hit]], vectors: Any, k: int) -> list[list[Hit]]:
    """The side's served answers: its exact ones again when it serves exactly (a flat index or a bundle),
    so a flat store is not scanned twice per query (its recall is 1.0 by construction)."""
    return exact if side.exact else side.search(vectors, k)


def _record_failures(result: Validation, matches: list[bool], k: int, rule: RecallRule) -> None:
    bad = [i for i, ok in enumerate(matches) if not ok]
    if bad:
        result.fail("exact_top_k", f"{len(bad)} of {len(matches)} queries: the target's exact top-{k} differs "
                    "from the source's (ids or ranks, beyond ties)", queries=bad[:MAX_LISTED])
    recall = result.recall
    if not recall["passed"]:
        message = (f"target recall@{k} {recall['target']:.3f} is below {rule.describe(recall['source'])}, "
                   f"needed {recall['floor']:.3f}")
        if not result.failures:
            message += ": the records are identical and the exact check passed, so the target's search index " \
                       "serves poor approximate results"
        result.fail("recall", message, target_recall=recall["target"], source_recall=recall["source"],
                    hint="raise the target's search effort (the import tunes it: engine.api.tune_search), or "
                         "rebuild its index with larger m / ef_construction")
