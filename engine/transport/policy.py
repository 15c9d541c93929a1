"""Which bundles a retention policy keeps: restic's ``forget`` rules, plus delta chains kept whole.

:func:`plan_prune` is a pure function over bundle descriptions (``{"name", "snapshot_id",
"created_utc", "kind", "parent"}``, as ``snapshot list`` gives them). The policy rules are restic's
(``internal/restic/snapshot_policy.go``, ``ApplyPolicy``): bundles are walked newest first;
``--keep-last N`` keeps the N newest; ``--keep-daily N`` keeps the newest bundle of each of the N
newest days that have one (likewise ISO weeks and months); while a rule still has count left when
the walk reaches the oldest bundle, that oldest bundle is kept as well. A bundle is kept when any
rule keeps it. An empty policy keeps everything.

Then chains: a kept delta needs its parent, and so on up to its full bundle, so every ancestor of a
kept (or retained) delta is kept too, whatever the policy says. Bundles whose snapshot id is unknown
(encrypted ones) are all kept when some kept delta's parent is not found among the known bundles,
since that parent could be one of them. Bundles under Object Lock retention that the policy would
remove are reported as ``retained`` (they cannot be removed yet) and their chains are kept as well.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

NOT_KEPT = "not kept by the policy"


@dataclass(frozen=True)
class Policy:
    """How many bundles to keep: the N newest, and the newest of each of the N newest days, weeks, months."""

    last: int = 0
    daily: int = 0
    weekly: int = 0
    monthly: int = 0

    @property
    def empty(self) -> bool:
        return not (self.last or self.daily or self.weekly or self.monthly)

    def to_json(self) -> dict[str, int]:
        return {"keep_last": self.last, "keep_daily": self.daily, "keep_weekly": self.weekly,
                "keep_monthly": self.monthly}


def _when(bundle: dict[str, Any]) -> datetime:
    return datetime.strptime(str(bundle["created_utc"]), "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=UTC)


def _day(d: datetime, nr: int) -> int:
    return d.year * 10000 + d.month * 100 + d.day


def _week(d: datetime, nr: int) -> int:
    year, week, _ = d.isocalendar()
    return year * 100 + week


def _month(d: datetime, nr: int) -> int:
    return d.year * 100 + d.month


def _always(d: datetime, nr: int) -> int:
    return nr


def newest_first(bundles: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(bundles, key=lambda b: (_when(b), b["name"]), reverse=True)


def plan_prune(bundles: list[dict[str, Any]], policy: Policy,
               retained: dict[str, str] | None = None) -> dict[str, Any]:
    """``{"keep", "remove", "retained", "reasons": {name: [why, ...]}, "warnings", "policy"}``, names newest first.

    ``keep``, ``remove`` and ``retained`` split the bundles (each name in exactly one of them).

    ``retained`` maps the names of bundles that cannot be removed yet (Object Lock) to why.
    """
    retained = retained or {}
    order = newest_first(bundles)
    reasons: dict[str, list[str]] = {b["name"]: [] for b in order}
    if policy.empty:
        for b in order:
            reasons[b["name"]].append("policy is empty")
    else:
        _apply_rules(order, policy, reasons)
    held = {b["name"] for b in order if reasons[b["name"]]}
    for name, why in retained.items():
        if name in reasons and name not in held:
            reasons[name].append(f"retained: {why}")
    warnings = _keep_chains(order, reasons, held | set(retained))
    keep = [b["name"] for b in order if reasons[b["name"]] and not _only_retained(reasons[b["name"]])]
    kept_retained = [b["name"] for b in order if _only_retained(reasons[b["name"]])]
    remove = [b["name"] for b in order if not reasons[b["name"]]]
    for name in remove:
        reasons[name].append(NOT_KEPT)
    return {"keep": keep, "remove": remove, "retained": kept_retained, "reasons": reasons,
            "warnings": warnings, "policy": policy.to_json()}


def _only_retained(why: list[str]) -> bool:
    return bool(why) and all(w.startswith("retained: ") for w in why)


def _apply_rules(order: list[dict[str, Any]], policy: Policy, reasons: dict[str, list[str]]) -> None:
    rules: list[list[Any]] = [  # [count left, bucket of a time, last bucket value, reason]
        [policy.last, _always, None, "last snapshot"],
        [policy.daily, _day, None, "daily snapshot"],
        [policy.weekly, _week, None, "weekly snapshot"],
        [policy.monthly, _month, None, "monthly snapshot"],
    ]
    for nr, bundle in enumerate(order):
        when = _when(bundle)
        for rule in rules:
            count, bucket, last, reason = rule
            if count <= 0:
                continue
            value = bucket(when, nr)
            if value != last or nr == len(order) - 1:  # the oldest is kept while a rule has count left
                rule[0] -= 1
                rule[2] = value
                reasons[bundle["name"]].append(reason)


def _keep_chains(order: list[dict[str, Any]], reasons: dict[str, list[str]], held: set[str]) -> list[str]:
    """Keep every ancestor of every held delta (and unknown-id bundles when a parent cannot be found).

    Returns a warning for every held delta whose parent is not among the bundles.
    """
    by_name = {b["name"]: b for b in order}
    by_id: dict[str, list[str]] = {}
    for b in order:
        if b.get("snapshot_id"):
            by_id.setdefault(str(b["snapshot_id"]), []).append(b["name"])
    unknown = [b["name"] for b in order if not b.get("snapshot_id")]
    stack = sorted(held)
    seen = set(held)
    warnings: list[str] = []
    while stack:
        child = stack.pop()
        parent = by_name[child].get("parent") if child in by_name else None
        if by_name.get(child, {}).get("kind") != "delta" or not isinstance(parent, dict):
            continue
        found = by_id.get(str(parent.get("snapshot_id")), [])
        if not found:
            warnings.append(f"{child} is a delta whose parent {parent.get('snapshot_id')} is not in this "
                            "location: its chain is broken")
        for name in found:
            if name not in seen:
                reasons[name].append(f"needed by the chain of {child}")
                seen.add(name)
                stack.append(name)
    if warnings:
        for name in unknown:
            if name not in seen:
                reasons[name].append("its snapshot id is unknown (encrypted) and a kept delta's parent is missing")
                seen.add(name)
    return warnings
