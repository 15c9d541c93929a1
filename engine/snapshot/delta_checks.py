"""Verification of the lineage parts of a bundle: ``artifacts_state``, and for deltas ``changes.jsonl``.

Called by :func:`~engine.snapshot.verify.verify_dir` after the generic phases. For every bundle
that records ``artifacts_state``, each artifact file it holds must have that sha256; a full bundle's
state lists exactly its files. A delta's ``changes.jsonl`` must list strictly ascending ids with a
known op, agree with the manifest's counts, and its upsert lines must match the embedding rows
(the shards, or ``embeddings.parquet`` of version 1) one for one (id, version, vector_hash); removed artifacts are neither held
nor part of the state. A full bundle holds no ``changes.jsonl``; a delta holds no ``index.faiss``.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from . import layout, manifest

if TYPE_CHECKING:
    from .findings import VerifyReport

LINE_KEYS = {"id", "op", "version", "vector_hash"}
MAX_SHOWN = 3


def check_lineage(root: Path, doc: dict[str, Any], listed: dict[str, str], actual: dict[str, str],
                  report: VerifyReport) -> None:
    kind = manifest.kind_of(doc)
    held = {p: actual.get(p, h) for p, h in listed.items() if layout.artifact_kind(p) is not None}
    state = doc.get("artifacts_state")
    if isinstance(state, dict):
        for rel in sorted(held):
            if rel in state and state[rel] != held[rel]:
                report.add(layout.MANIFEST, f"artifacts_state gives {rel} sha256 {state[rel]}, the file has "
                           f"{held[rel]}", "lineage")
            elif rel not in state:
                report.add(layout.MANIFEST, f"artifacts_state does not list {rel}, which the bundle holds", "lineage")
        if kind == "full" and set(state) != set(held):
            extra = sorted(set(state) - set(held))[:MAX_SHOWN]
            report.add(layout.MANIFEST, f"artifacts_state lists files this full bundle does not hold: {extra}",
                       "lineage")
    if kind != "delta":
        if layout.CHANGES in listed:
            report.add(layout.CHANGES, "only delta bundles hold changes.jsonl", "unknown_file")
        return
    if layout.FAISS_INDEX in listed:
        report.add(layout.FAISS_INDEX, "delta bundles do not carry index.faiss", "unknown_file")
    removed = doc.get("removed_artifacts") or []
    for rel in removed:
        if rel in held:
            report.add(layout.MANIFEST, f"removed_artifacts lists {rel}, which the delta holds", "lineage")
        if isinstance(state, dict) and rel in state:
            report.add(layout.MANIFEST, f"removed_artifacts lists {rel}, which artifacts_state keeps", "lineage")
    if isinstance(doc.get("sequence"), int) and isinstance(doc.get("base_sequence"), int) \
            and doc["sequence"] < doc["base_sequence"]:
        report.add(layout.MANIFEST, f"sequence {doc['sequence']} is before base_sequence {doc['base_sequence']}",
                   "lineage")
    if layout.CHANGES not in listed:
        report.add(layout.CHANGES, "missing: a delta bundle holds changes.jsonl", "missing")
        return
    path = layout.changes_path(root)
    if path.is_file() and not path.is_symlink():
        for problem in _check_changes(root, doc, path):
            report.add(layout.CHANGES, problem, "data")


def iter_changes(path: Path) -> Iterator[tuple[int, Any]]:
    """``(line number, parsed JSON or None)`` of every line of ``changes.jsonl``."""
    with open(path, encoding="utf-8", errors="replace") as fh:
        for number, line in enumerate(fh, start=1):
            try:
                yield number, json.loads(line)
            except ValueError:
                yield number, None


def _upsert_rows(root: Path, doc: dict[str, Any]) -> Iterator[tuple[str, int, str]]:
    from .reader import iter_columns

    for batch in iter_columns(root, doc, ["id", "version", "vector_hash"], 8_192):
        yield from zip(batch.column("id").to_pylist(), batch.column("version").to_pylist(),
                       batch.column("vector_hash").to_pylist(), strict=True)


def _check_changes(root: Path, doc: dict[str, Any], path: Path) -> list[str]:
    problems: list[str] = []
    counts = {"upsert": 0, "delete": 0}
    last: str | None = None
    rows: Iterator[tuple[str, int, str]] | None
    try:
        rows = _upsert_rows(root, doc)
    except Exception:  # noqa: BLE001 - an unreadable parquet file is reported by the data phase
        rows = None
    mismatched = 0
    try:
        for number, line in iter_changes(path):
            if not isinstance(line, dict) or set(line) != LINE_KEYS or line["op"] not in counts \
                    or not isinstance(line["id"], str) or not isinstance(line["version"], int):
                problems.append(f"line {number} is not {{id, op: upsert|delete, version, vector_hash}}")
                if len(problems) > MAX_SHOWN:
                    return problems + ["(further lines not checked)"]
                continue
            rid = line["id"]
            if last is not None and rid <= last:
                problems.append(f"line {number}: id {rid!r} is not after {last!r} (ids must be strictly ascending)")
            last = rid
            counts[line["op"]] += 1
            if line["op"] == "delete":
                if line["vector_hash"] is not None:
                    problems.append(f"line {number}: a delete has a vector_hash")
                continue
            row = next(rows, None) if rows is not None else None
            if rows is not None and (row is None or (row[0], row[1], row[2]) != (rid, line["version"],
                                                                                line["vector_hash"])):
                mismatched += 1
    except Exception as exc:  # noqa: BLE001 - a damaged file is a finding, never a crash
        problems.append(f"cannot be checked ({type(exc).__name__}: {str(exc)[:200]})")
        return problems
    if rows is not None and next(rows, None) is not None:
        problems.append("the embeddings hold more rows than changes.jsonl has upsert lines")
    if mismatched:
        problems.append(f"{mismatched} upsert line(s) do not match the rows of the embeddings "
                        "(id, version, vector_hash, in order)")
    declared = doc.get("changes") or {}
    for op, key in (("upsert", "upserts"), ("delete", "deletes")):
        if declared.get(key) != counts[op]:
            problems.append(f"holds {counts[op]} {op} line(s), the manifest says changes.{key}={declared.get(key)!r}")
    return problems
