"""The outcome of a validation and what it records for every failed check."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

MAX_LISTED = 20


@dataclass
class Validation:
    """The outcome: ``passed`` and one entry in ``failures`` per thing that failed.

    ``exact`` and ``recall`` are the two query checks (see :mod:`.answers`); ``per_query`` has one
    row per query. ``mean_overlap``, ``min_overlap``, ``rank_agreement`` and ``max_score_diff``
    describe how far the target's exact answers agree with the source's (1.0, 1.0, 1.0 and ~0 for
    identical records).
    """

    source: str
    target: str
    passed: bool = True
    failures: list[dict[str, Any]] = field(default_factory=list)
    checks: dict[str, Any] = field(default_factory=dict)
    queries: int = 0
    mean_overlap: float = 1.0
    min_overlap: float = 1.0
    rank_agreement: float = 1.0
    max_score_diff: float = 0.0
    exact: dict[str, Any] = field(default_factory=dict)
    recall: dict[str, Any] = field(default_factory=dict)
    per_query: list[dict[str, Any]] = field(default_factory=list)
    sides: dict[str, Any] = field(default_factory=dict)

    def fail(self, check: str, message: str, **details: Any) -> None:
        self.passed = False
        self.failures.append({"check": check, "message": message, **details})

    def to_json(self) -> dict[str, Any]:
        return {"passed": self.passed, "failures": self.failures, "queries": self.queries,
                "mean_overlap": self.mean_overlap, "min_overlap": self.min_overlap,
                "rank_agreement": self.rank_agreement, "max_score_diff": self.max_score_diff,
                "source": self.source, "target": self.target, "checks": self.checks,
                "exact": self.exact, "recall": self.recall, "per_query": self.per_query, "sides": self.sides}
