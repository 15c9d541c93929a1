"""Serving quality: recall@k of each side's approximate answers against its own exact answers.

The target passes by one of two rules, chosen by the operator: ``floor`` (its recall is at least
the floor, default 0.95) or ``vs_source`` (at least the source's recall minus a tolerance, for a
target expected to serve as well as the source, not better).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from engine.errors import InvalidInput
from engine.repository import Hit

from .exact import tied

DEFAULT_FLOOR = 0.95


def recall_at_k(exact: list[Hit], approx: list[Hit]) -> float:
    """Share of the exact top-k the approximate answer found; a record tied with the exact k-th counts."""
    if not exact:
        return 1.0
    wanted = {h.id for h in exact}
    boundary = exact[-1].score
    found = sum(1 for h in approx if h.id in wanted or tied(h.score, boundary))
    return min(found, len(exact)) / len(exact)


@dataclass(frozen=True)
class RecallRule:
    """``floor`` with its floor, or ``vs_source`` with its tolerance."""

    rule: str = "floor"
    floor: float = DEFAULT_FLOOR
    tolerance: float | None = None

    @classmethod
    def of(cls, floor: float | None = None, vs_source: float | None = None) -> RecallRule:
        if floor is not None and vs_source is not None:
            raise InvalidInput("give either a recall floor or a tolerance against the source's recall, not both",
                               hint="use --recall-floor X or --recall-vs-source TOL")
        if vs_source is not None:
            if not 0.0 <= vs_source <= 1.0:
                raise InvalidInput(f"the recall tolerance must be between 0 and 1, got {vs_source}")
            return cls("vs_source", 0.0, float(vs_source))
        value = DEFAULT_FLOOR if floor is None else float(floor)
        if not 0.0 <= value <= 1.0:
            raise InvalidInput(f"the recall floor must be between 0 and 1, got {value}")
        return cls("floor", value, None)

    def threshold(self, source_recall: float) -> float:
        """The recall the target needs."""
        if self.rule == "vs_source":
            return max(0.0, source_recall - (self.tolerance or 0.0))
        return self.floor

    def describe(self, source_recall: float | None) -> str:
        if self.rule == "vs_source":
            base = "the source's recall" if source_recall is None else f"the source's recall {source_recall:.3f}"
            return f"{base} minus {self.tolerance:g} (rule vs_source)"
        return f"the floor {self.floor:g} (rule floor)"


def judge(source: list[float], target: list[float], rule: RecallRule, k: int) -> dict[str, Any]:
    """``{"source", "target", "floor", "rule", "passed", ...}`` from per-query recalls of both sides."""
    if not target:
        return {"source": None, "target": None, "floor": rule.floor if rule.rule == "floor" else None,
                "rule": rule.rule, "tolerance": rule.tolerance, "k": k, "passed": True, "queries": 0}
    src = sum(source) / len(source)
    dst = sum(target) / len(target)
    floor = rule.threshold(src)
    return {"source": src, "target": dst, "floor": floor, "rule": rule.rule, "tolerance": rule.tolerance,
            "k": k, "passed": dst >= floor - 1e-12, "queries": len(target)}
