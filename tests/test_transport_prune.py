"""Retention: restic's forget rules over bundle histories, chains that stay whole, and applying a plan
to a local snapshots folder (catalog included)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st
from s3_support import fake_bundle, procos

from engine import api
from engine.snapshot import catalog, layout
from engine.transport.policy import Policy, plan_prune

BASE = datetime(2024, 1, 1, tzinfo=UTC)
STAMP = "%Y-%m-%dT%H:%M:%SZ"


def bundle(name: str, when: datetime, *, kind: str = "full", parent: str | None = None,
           sid: str | None = None) -> dict:
    return {"name": name, "snapshot_id": sid if sid is not None else f"id-{name}", "created_utc": when.strftime(STAMP),
            "kind": kind, "parent": {"snapshot_id": parent, "content_hash": "h"} if parent else None}


# --- restic's rules on hand-checked histories --------------------------------------------------------

HISTORY = [bundle("a", datetime(2024, 1, 1, 10)), bundle("b", datetime(2024, 1, 1, 12)),
           bundle("c", datetime(2024, 1, 2, 9)), bundle("d", datetime(2024, 1, 3, 8)),
           bundle("e", datetime(2024, 1, 3, 20))]


def test_keep_daily_keeps_the_newest_of_each_newest_day():
    plan = plan_prune(HISTORY, Policy(daily=2))
    assert plan["keep"] == ["e", "c"] and plan["remove"] == ["d", "b", "a"]
    assert plan["reasons"]["e"] == ["daily snapshot"] and plan["reasons"]["a"] == ["not kept by the policy"]


def test_a_rule_with_count_left_also_keeps_the_oldest_bundle():
    plan = plan_prune(HISTORY, Policy(daily=5))  # 3 days only: restic keeps the oldest too
    assert plan["keep"] == ["e", "c", "b", "a"] and plan["remove"] == ["d"]


def test_rules_add_up_and_keep_last_counts_bundles():
    plan = plan_prune(HISTORY, Policy(last=2, daily=1))
    assert plan["keep"] == ["e", "d"]
    assert plan["reasons"]["e"] == ["last snapshot", "daily snapshot"] and plan["reasons"]["d"] == ["last snapshot"]


def test_weekly_and_monthly_use_iso_weeks_and_calendar_months():
    history = [bundle("dec31", datetime(2024, 12, 31)), bundle("jan1", datetime(2025, 1, 1)),
               bundle("jan6", datetime(2025, 1, 6)), bundle("feb1", datetime(2025, 2, 1))]
    # 2024-12-31 and 2025-01-01 are both in ISO week 2025-W01
    assert plan_prune(history, Policy(weekly=2))["keep"] == ["feb1", "jan6"]
    assert plan_prune(history, Policy(monthly=2))["keep"] == ["feb1", "jan6"]
    assert plan_prune(history, Policy(monthly=3))["keep"] == ["feb1", "jan6", "dec31"]


def test_a_kept_delta_keeps_its_whole_chain():
    history = [bundle("full", BASE), bundle("d1", BASE + timedelta(days=1), kind="delta", parent="id-full"),
               bundle("d2", BASE + timedelta(days=2), kind="delta", parent="id-d1"),
               bundle("full2", BASE + timedelta(days=3)),
               bundle("d3", BASE + timedelta(days=4), kind="delta", parent="id-d2")]
    plan = plan_prune(history, Policy(last=1))
    assert plan["keep"] == ["d3", "d2", "d1", "full"] and plan["remove"] == ["full2"]
    assert plan["reasons"]["d1"] == ["needed by the chain of d2"]


def test_unknown_encrypted_bundles_are_kept_when_a_kept_delta_misses_its_parent():
    history = [bundle("sealed", BASE, sid=""), bundle("other", BASE + timedelta(hours=1)),
               bundle("d", BASE + timedelta(days=1), kind="delta", parent="id-somewhere")]
    plan = plan_prune(history, Policy(last=1))
    assert plan["keep"] == ["d", "sealed"] and plan["remove"] == ["other"]
    assert plan["warnings"] and "chain is broken" in plan["warnings"][0]


# --- property: any history, any policy ---------------------------------------------------------------

@st.composite
def histories(draw):
    n = draw(st.integers(1, 30))
    minutes = draw(st.lists(st.integers(0, 2 * 365 * 24 * 60), min_size=n, max_size=n, unique=True))
    items: list[dict] = []
    for i, m in enumerate(sorted(minutes)):
        name = f"knowledge_snapshot_{i:04d}"
        older = [b for b in items if b["snapshot_id"]]
        kind = "delta" if older and draw(st.booleans()) else "full"
        encrypted = kind == "full" and draw(st.integers(0, 9)) == 0
        parent = draw(st.sampled_from(older))["snapshot_id"] if kind == "delta" else None
        if kind == "delta" and draw(st.integers(0, 19)) == 0:
            parent = "id-gone"  # its parent was deleted by hand
        items.append(bundle(name, BASE + timedelta(minutes=m), kind=kind, parent=parent, sid="" if encrypted else None))
    return items


policies = st.builds(Policy, last=st.integers(0, 4), daily=st.integers(0, 4), weekly=st.integers(0, 4),
                     monthly=st.integers(0, 4)).filter(lambda p: not p.empty)


def newest_per_bucket(history: list[dict], key) -> list[str]:
    """The newest bundle of each bucket, buckets newest first."""
    order = sorted(history, key=lambda b: (b["created_utc"], b["name"]), reverse=True)
    seen, picks = set(), []
    for b in order:
        k = key(datetime.strptime(b["created_utc"], STAMP))
        if k not in seen:
            seen.add(k)
            picks.append(b["name"])
    return picks


@settings(max_examples=300, deadline=None)
@given(histories(), policies, st.data())
def test_any_policy_keeps_its_counts_and_every_kept_chain_whole(history, policy, data):
    first = plan_prune(history, policy)
    locked = data.draw(st.lists(st.sampled_from(first["remove"]), unique=True) if first["remove"] else st.just([]))
    plan = plan_prune(history, policy, {name: "compliance retention" for name in locked})
    keep, remove, retained = set(plan["keep"]), set(plan["remove"]), set(plan["retained"])
    names = {b["name"] for b in history}
    assert keep | remove | retained == names and not keep & remove and not keep & retained and not remove & retained
    assert retained == set(locked)

    by_id = {b["snapshot_id"]: b for b in history if b["snapshot_id"]}
    broken = False
    for b in history:  # every kept or retained delta has its whole chain kept or retained
        current = b
        while current["name"] in keep | retained and current["kind"] == "delta":
            parent = by_id.get(current["parent"]["snapshot_id"])
            if parent is None:
                broken = True
                break
            assert parent["name"] in keep | retained, f"{parent['name']} removed but {current['name']} needs it"
            current = parent
    if broken:  # an unknown (encrypted) bundle might be the missing parent: none is removed
        assert not {b["name"] for b in history if not b["snapshot_id"]} & remove

    order = sorted(history, key=lambda b: (b["created_utc"], b["name"]), reverse=True)
    assert {b["name"] for b in order[:policy.last]} <= keep | retained
    rules = [(policy.daily, "daily snapshot", lambda d: d.date()),
             (policy.weekly, "weekly snapshot", lambda d: d.isocalendar()[:2]),
             (policy.monthly, "monthly snapshot", lambda d: (d.year, d.month))]
    for count, reason, key in rules:
        picks = newest_per_bucket(history, key)
        assert set(picks[:count]) <= keep | retained
        tagged = [n for n, why in plan["reasons"].items() if reason in why]
        assert len(tagged) <= count
        if count > len(picks):  # count left at the oldest bundle: it is kept too
            assert order[-1]["name"] in keep | retained
    assert sum("last snapshot" in why for why in plan["reasons"].values()) == min(policy.last, len(history))
    for name in remove:
        assert plan["reasons"][name] == ["not kept by the policy"]


# --- applying a plan to a local folder ---------------------------------------------------------------

def tree(folder: Path) -> list[str]:
    return sorted(str(p.relative_to(folder)) for p in folder.rglob("*"))


def test_prune_of_a_local_folder_removes_bundles_and_their_catalog_lines(tmp_path: Path):
    folder = tmp_path / "snaps"
    full = fake_bundle(folder, "knowledge_snapshot_20240101_000000", created_utc="2024-01-01T00:00:00Z",
                       snapshot_id=str(uuid.uuid4()))
    old = fake_bundle(folder, "knowledge_snapshot_20240102_000000", created_utc="2024-01-02T00:00:00Z")
    delta = fake_bundle(folder, "knowledge_snapshot_20240103_000000", created_utc="2024-01-03T00:00:00Z",
                        kind="delta", parent=api.list_snapshots(folder)[-1]["snapshot_id"])
    (folder / f"{old.name}{layout.ARCHIVE_SUFFIX}").write_bytes(b"archive of the old bundle")
    for name in (full.name, old.name, delta.name, "knowledge_snapshot_19990101_000000"):
        catalog.append_line(layout.catalog_path(folder), dict.fromkeys(catalog.ENTRY_KEYS) | {
            "path": name, "snapshot_id": str(uuid.uuid4()), "kind": "full", "content_hash": "0" * 64,
            "counts": {}, "created_utc": "2024-01-01T00:00:00Z"})  # a well-formed line: the catalog reads it
    staging = folder / ".knowledge_snapshot_20240104_000000_tmp-abc"  # a killed export's staging: not ours
    staging.mkdir()
    before = tree(folder)

    plan = api.prune_snapshots(folder, keep_last=1, dry_run=True)
    assert plan["keep"] == [delta.name, full.name] and plan["remove"] == [old.name]
    assert tree(folder) == before  # the dry run changed nothing

    result = api.prune_snapshots(folder, keep_last=1)
    assert result["removed"] == [old.name] and result["failed"] == {}
    assert not old.exists() and not (folder / f"{old.name}{layout.ARCHIVE_SUFFIX}").exists()
    assert full.is_dir() and delta.is_dir() and staging.is_dir()
    entries, problems = catalog.read_catalog(folder)
    assert [e["path"] for e in entries] == [full.name, delta.name, "knowledge_snapshot_19990101_000000"]
    assert problems == []


def test_prune_without_a_policy_is_refused(tmp_path: Path):
    proc = procos("snapshot", "prune", str(tmp_path))
    assert proc.returncode == 1 and "no retention policy" in proc.stderr and "--keep-last" in proc.stderr
