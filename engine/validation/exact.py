"""The exact check: both sides' exact top-k for the same queries, compared rank by rank.

Two answers agree at a rank when they name the same record at the same distance, or two records
whose distances are equal within ``SCORE_TOL`` (a tie, which may be ordered either way). With a
``min_overlap`` below 1.0 a query only needs that share of the source's top-k in the target's.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from engine.repository import Hit

from .result import MAX_LISTED

SCORE_TOL = 1e-4  # relative to max(1, |distance|): float32 arithmetic of two backends differs by ~1e-7


def tied(a: float, b: float) -> bool:
    """Whether two distances are equal within the tolerance."""
    return abs(a - b) <= SCORE_TOL * max(1.0, abs(a), abs(b))


def overlap(expected: list[Hit], got: list[Hit], k: int) -> float:
    """Share of ``expected`` found in ``got``; a miss whose score ties ``got``'s last score still agrees."""
    if not expected:
        return 1.0 if not got else 0.0
    got_ids = {h.id for h in got}
    boundary = got[-1].score if got and len(got) >= min(k, len(expected)) else None
    agree = sum(1 for h in expected if h.id in got_ids or (boundary is not None and tied(h.score, boundary)))
    return agree / len(expected)


def _agree(a: Hit, b: Hit, expected_scores: dict[str, float]) -> bool:
    """One rank agrees: the same distance, and the same record or another one genuinely tied with it.

    A record the source ranks elsewhere is tied only if its own source distance equals this one, so
    a target that swaps the ids of two hits is caught even though the distances line up.
    """
    if not tied(a.score, b.score):
        return False
    return a.id == b.id or b.id not in expected_scores or tied(expected_scores[b.id], b.score)


def rank_agreement(expected: list[Hit], got: list[Hit]) -> float:
    """Share of ranks holding the same record, or records tied within the tolerance."""
    if not expected:
        return 1.0
    scores = {h.id: h.score for h in expected}
    return sum(1 for a, b in zip(expected, got, strict=False) if _agree(a, b, scores)) / len(expected)


def first_difference(expected: list[Hit], got: list[Hit]) -> int | None:
    """The first rank where ``got`` differs from ``expected`` beyond a tie, or None when they agree."""
    scores = {h.id: h.score for h in expected}
    for rank in range(max(len(expected), len(got))):
        if rank >= len(expected) or rank >= len(got) or not _agree(expected[rank], got[rank], scores):
            return rank
    return None


def _hit(hits: list[Hit], rank: int) -> dict[str, Any] | None:
    return {"id": hits[rank].id, "score": hits[rank].score} if rank < len(hits) else None


@dataclass
class ExactCheck:
    """The outcome per query (``matches``, ``overlaps``, ``ranks``) and over all of them."""

    k: int
    min_overlap: float
    matches: list[bool] = field(default_factory=list)
    overlaps: list[float] = field(default_factory=list)
    ranks: list[float] = field(default_factory=list)
    mismatches: list[dict[str, Any]] = field(default_factory=list)
    max_score_diff: float = 0.0

    @property
    def passed(self) -> bool:
        return all(self.matches)

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "queries": len(self.matches), "k": self.k, "mismatches": self.mismatches,
                "mismatched": self.matches.count(False), "min_overlap": self.min_overlap,
                "score_tolerance": SCORE_TOL}


def compare_exact(source: list[list[Hit]], target: list[list[Hit]], kinds: list[str], k: int,
                  min_overlap: float = 1.0) -> ExactCheck:
    """Compare the two sides' exact answers query by query (lists in the same query order)."""
    check = ExactCheck(k=k, min_overlap=min_overlap)
    for i, (expected, got) in enumerate(zip(source, target, strict=True)):
        share = overlap(expected, got, k)
        rank = first_difference(expected, got)
        match = rank is None if min_overlap >= 1.0 else share >= min_overlap
        check.overlaps.append(share)
        check.ranks.append(rank_agreement(expected, got))
        check.matches.append(match)
        check.max_score_diff = max([check.max_score_diff] + [abs(a.score - b.score) for a, b in
                                                             zip(expected, got, strict=False) if a.id == b.id])
        if not match and len(check.mismatches) < MAX_LISTED:
            at = rank if rank is not None else 0
            check.mismatches.append({"query": i, "kind": kinds[i], "overlap": share, "rank": at,
                                     "source": _hit(expected, at), "target": _hit(got, at)})
    return check
