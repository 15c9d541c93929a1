"""Drift detection: do a store's vectors still hash like the bundle they were exported to?

:func:`check_drift` verifies the bundle (a tampered bundle is no baseline), then compares the
store with the bundle's ``vector_hash`` column:

- ``all`` mode streams the bundle's ``id``/``vector_hash`` columns (Parquet column projection,
  bounded batches) merged against ``repo.iter_batches`` (both ascending id), so it finds drifted,
  missing (in the bundle, not in the store) and unexpected (in the store, not in the bundle) ids;
- ``sample`` mode picks ``sample`` random bundle rows (seeded) and ``repo.fetch``-es them in chunks;
  it finds drifted and missing ids, and cannot see unexpected ones (``unexpected_checked`` is False).

A drifted id is one whose current vector bytes (little-endian float32, sha256) differ from the
bundle's. Lists are capped at ``max_listed`` ids each; ``counts`` always holds the full numbers.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from engine.errors import BundleError, InvalidInput, StoreCorrupt
from engine.records import vector_sha256

if TYPE_CHECKING:
    from engine.repository import VectorRepository

FETCH_CHUNK = 1_000
MAX_LISTED = 1_000


@dataclass
class DriftReport:
    """What a drift check found; ``drift`` is True when anything differs from the bundle."""

    uri: str
    snapshot: str
    snapshot_id: str
    mode: str  # all | sample
    checked: int = 0
    drifted: list[str] = field(default_factory=list)
    missing: list[str] = field(default_factory=list)
    unexpected: list[str] = field(default_factory=list)
    counts: dict[str, int] = field(default_factory=lambda: {"drifted": 0, "missing": 0, "unexpected": 0})
    settings_changed: list[dict[str, Any]] = field(default_factory=list)
    store_count: int = 0
    seed: int | None = None
    max_listed: int = MAX_LISTED

    @property
    def drift(self) -> bool:
        return any(self.counts.values()) or bool(self.settings_changed)

    def note(self, kind: str, rid: str) -> None:
        self.counts[kind] += 1
        listed = getattr(self, kind)
        if len(listed) < self.max_listed:
            listed.append(rid)

    def to_json(self) -> dict[str, Any]:
        return {"drift": self.drift, "drifted": self.drifted, "missing": self.missing,
                "unexpected": self.unexpected, "checked": self.checked, "counts": dict(self.counts),
                "truncated": any(self.counts[k] > len(getattr(self, k)) for k in self.counts),
                "mode": self.mode, "unexpected_checked": self.mode == "all", "seed": self.seed,
                "settings_changed": self.settings_changed, "store_count": self.store_count,
                "uri": self.uri, "snapshot": self.snapshot, "snapshot_id": self.snapshot_id}


def check_drift(repo: VectorRepository, bundle: str | os.PathLike[str], *, sample: int | None = None,
                seed: int = 0, batch_size: int = 10_000, max_listed: int = MAX_LISTED) -> DriftReport:
    """Compare ``repo`` with the verified ``bundle`` (folder or ``.tar.zst``); every record, or ``sample`` ones.

    Raises BundleInvalid / UnsupportedSchemaVersion when the bundle does not verify, InvalidInput
    for a bad ``sample``, StoreCorrupt when the store does not list ids in ascending order.
    """
    from engine.snapshot import open_bundle
    from engine.snapshot.verify import verified_manifest

    if sample is not None and sample < 1:
        raise InvalidInput(f"sample must be at least 1, got {sample}", hint="or check every record (--all)")
    with open_bundle(bundle) as root:
        doc = verified_manifest(root, bundle, consequence="it is not a trustworthy drift baseline",
                                purpose="use this bundle as a drift baseline")
        report = DriftReport(uri=repo.uri, snapshot=str(bundle), snapshot_id=doc["snapshot_id"],
                             mode="all" if sample is None else "sample", max_listed=max_listed,
                             seed=None if sample is None else seed)
        report.store_count = repo.count()
        _compare_settings(repo, doc, report)
        if sample is None:
            _merge_all(_bundle_rows(root, doc, batch_size), _store_rows(repo, batch_size), report,
                       int(doc["record_count"]))
        else:
            picked = _sample_rows(root, doc, sample, seed, batch_size)
            _check_sample(repo, picked, report)
    return report


def _compare_settings(repo: VectorRepository, doc: dict[str, Any], report: DriftReport) -> None:
    for name, was, now in (("dimensions", doc["dimensions"], repo.dimensions), ("metric", doc["metric"], repo.metric)):
        if now is not None and was != now:
            report.settings_changed.append({"setting": name, "snapshot": was, "store": now})


def _ascending(rows: Iterator[tuple[str, str]], where: str) -> Iterator[tuple[str, str]]:
    previous = None
    for rid, digest in rows:
        if previous is not None and rid <= previous:
            error = BundleError if where == "bundle" else StoreCorrupt
            raise error(f"the {where} lists id {rid!r} after {previous!r}: ids are not in ascending order",
                        hint="the drift check needs ascending ids on both sides; report this as a bug")
        previous = rid
        yield rid, digest


def _bundle_rows(root: Path, doc: dict[str, Any], batch_size: int) -> Iterator[tuple[str, str]]:
    """``(id, vector_hash)`` of every bundle row (every shard, or a v1 bundle's one file), only those columns."""
    from engine.snapshot.reader import iter_columns

    def rows() -> Iterator[tuple[str, str]]:
        for batch in iter_columns(root, doc, ["id", "vector_hash"], batch_size):
            yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist(), strict=True)

    return _ascending(rows(), "bundle")


def _store_rows(repo: VectorRepository, batch_size: int) -> Iterator[tuple[str, str]]:
    """``(id, sha256 of the current vector bytes)`` of every stored record."""
    def rows() -> Iterator[tuple[str, str]]:
        for batch in repo.iter_batches(batch_size):
            yield from zip(batch.ids, batch.vector_hashes(), strict=True)

    return _ascending(rows(), "store")


def _merge_all(bundle: Iterator[tuple[str, str]], store: Iterator[tuple[str, str]], report: DriftReport,
               total: int | None = None) -> None:
    from engine import progress

    progress.update("drift", 0, total)
    b, s = next(bundle, None), next(store, None)
    while b is not None or s is not None:
        if s is None or (b is not None and b[0] < s[0]):
            report.checked += 1
            report.note("missing", b[0])
            b = next(bundle, None)
        elif b is None or s[0] < b[0]:
            report.note("unexpected", s[0])
            s = next(store, None)
        else:
            report.checked += 1
            if b[1] != s[1]:
                report.note("drifted", b[0])
            b, s = next(bundle, None), next(store, None)
        if not report.checked % 4096:
            progress.update("drift", report.checked, total)
    progress.update("drift", report.checked, report.checked)


def _sample_rows(root: Path, doc: dict[str, Any], sample: int, seed: int, batch_size: int) -> list[tuple[str, str]]:
    """``sample`` bundle rows at seeded random positions (all rows when the bundle is smaller), in id order."""
    count = int(doc["record_count"])
    rng = np.random.default_rng(seed)
    positions = np.sort(rng.choice(count, size=min(sample, count), replace=False)) if count else np.zeros(0, int)
    wanted = iter(positions.tolist())
    target = next(wanted, None)
    picked: list[tuple[str, str]] = []
    for position, row in enumerate(_bundle_rows(root, doc, batch_size)):
        if target is None:
            break
        if position == target:
            picked.append(row)
            target = next(wanted, None)
    return picked


def _check_sample(repo: VectorRepository, picked: list[tuple[str, str]], report: DriftReport) -> None:
    for start in range(0, len(picked), FETCH_CHUNK):
        chunk = picked[start:start + FETCH_CHUNK]
        current = {r.id: vector_sha256(r.vector) for r in repo.fetch([rid for rid, _ in chunk])}
        for rid, expected in chunk:
            report.checked += 1
            if rid not in current:
                report.note("missing", rid)
            elif current[rid] != expected:
                report.note("drifted", rid)
