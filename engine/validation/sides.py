"""The two sides of a validation: a store URI or a snapshot bundle, read and queried the same way."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from engine.records import RecordBatch
from engine.repository import Hit, open_repository

from .truth import brute_force


@dataclass
class Side:
    """One side of a comparison: where it is, its settings, and how to read and query it.

    ``search`` answers as the side serves (approximate on HNSW stores), ``exact_search`` exactly;
    for a bundle both are the same brute force. ``index`` is ``hnsw``, ``flat`` or ``bundle``.
    """

    name: str
    count: int
    dimensions: int | None
    metric: str
    exact: bool
    artifacts: dict[str, str]
    batches: Any  # () -> Iterator[RecordBatch]
    search: Any  # (queries (q, d) float32, k) -> list[list[Hit]]
    exact_search: Any = None  # the same signature; None means ``search`` is exact
    close: Any = None
    index: str = "flat"
    ef_search: int | None = None

    def exact_answers(self, queries: np.ndarray, k: int) -> list[list[Hit]]:
        return (self.exact_search or self.search)(queries, k)


def _store_side(uri: str) -> Side:
    repo = open_repository(uri, create=False)

    def search(queries: np.ndarray, k: int) -> list[list[Hit]]:
        return [repo.query(q, k) for q in queries]

    def exact_search(queries: np.ndarray, k: int) -> list[list[Hit]]:
        return [repo.query(q, k, exact=True) for q in queries]

    s = repo.settings
    return Side(name=repo.uri, count=repo.count(), dimensions=s.dimensions, metric=s.metric,
                exact=s.index == "flat", artifacts={a.path: a.sha256 for a in repo.artifacts.list()},
                batches=lambda: repo.iter_batches(10_000), search=search, exact_search=exact_search,
                close=repo.close, index=s.index, ef_search=s.index_params.get("ef_search"))


def _bundle_side(path: str, stack: contextlib.ExitStack) -> Side:
    from engine.snapshot import open_bundle
    from engine.snapshot.layout import artifact_kind
    from engine.snapshot.reader import iter_batches, listed_files
    from engine.snapshot.verify import verified_manifest

    root = stack.enter_context(open_bundle(path))
    doc = verified_manifest(root, path, consequence="nothing was validated", purpose="validate against this bundle")
    listed = listed_files(root)
    artifacts = {p: h for p, h in listed.items() if artifact_kind(p) is not None}

    def batches() -> Iterator[RecordBatch]:
        return iter_batches(root, doc, 10_000)

    answered: dict[tuple[bytes, int], list[list[Hit]]] = {}

    def search(queries: np.ndarray, k: int) -> list[list[Hit]]:  # exact by nature: one brute force per query set
        key = (np.ascontiguousarray(queries).tobytes(), k)
        if key not in answered:
            answered[key] = brute_force(batches(), queries, k, doc["metric"])
        return answered[key]

    return Side(name=str(path), count=doc["record_count"], dimensions=doc["dimensions"], metric=doc["metric"],
                exact=True, artifacts=artifacts, batches=batches, search=search, index="bundle")


def open_side(ref: str, stack: contextlib.ExitStack) -> Side:
    p = Path(ref)
    if p.exists() and (p.is_dir() and (p / "manifest.json").exists() or ref.endswith(".tar.zst")):
        return _bundle_side(ref, stack)
    side = _store_side(ref)
    stack.callback(side.close)
    return side
