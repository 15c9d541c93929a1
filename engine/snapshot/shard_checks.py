"""Verification of schema_version 2 embeddings: the shards against the manifest and each other.

Each shard is checked on its own (in a thread pool: Parquet decoding and hashing release the GIL)
with :func:`~.data_checks.check_parquet`; then the shard list as a whole: names
``part-00000``, ``part-00001``, ... in order, each shard's rows and first/last id as the manifest
says, ids ascending across shards, every shard but the last full (``shard_rows``), the rows adding
up to ``record_count``, and no shard on disk or in ``checksums.sha256`` that the manifest leaves out.
"""

from __future__ import annotations

import contextvars
from concurrent.futures import Executor
from pathlib import Path
from typing import Any

from . import layout
from .data_checks import FileCheck, check_parquet

Problems = list[tuple[str, str]]  # (bundle-relative path, problem)


def _section(doc: dict[str, Any]) -> dict[str, Any]:
    emb = doc.get("embeddings")
    return emb if isinstance(emb, dict) else {}


def _entries(doc: dict[str, Any], problems: Problems) -> list[dict[str, Any]]:
    shards = _section(doc).get("shards")
    if not isinstance(shards, list) or not shards:
        problems.append((layout.MANIFEST, "embeddings.shards lists no shard (a bundle holds at least part-00000)"))
        return []
    good = []
    for i, entry in enumerate(shards):
        expected = layout.shard_name(i) if i < layout.MAX_SHARDS else None
        if not isinstance(entry, dict) or entry.get("file") != expected:
            got = entry.get("file") if isinstance(entry, dict) else entry
            problems.append((layout.MANIFEST, f"embeddings.shards[{i}] is {got!r}, expected {expected!r} "
                             "(shards are numbered from part-00000 in order)"))
            continue
        good.append(entry)
    return good


def check_shards(root: Path, doc: dict[str, Any], listed: dict[str, str], pool: Executor,
                 stats: dict[str, Any], rows: bool = True) -> Problems:
    """Every problem of the bundle's shards; fills ``stats["rows_checked"]``."""
    problems: Problems = []
    entries = _entries(doc, problems)
    named = {e["file"] for e in entries}
    files, _ = layout.relative_files(root)
    for rel in sorted((set(files) | set(listed)) - named):
        if rel.startswith(layout.SHARD_DIR + "/"):
            problems.append((rel, "is in the embeddings folder but not in the manifest's embeddings.shards"))
    if layout.EMBEDDINGS in listed or layout.EMBEDDINGS in files:
        problems.append((layout.EMBEDDINGS, "schema_version 2 bundles hold embeddings/part-NNNNN.parquet shards, "
                         "not embeddings.parquet"))
    dims = doc.get("dimensions")
    present = []
    for entry in entries:
        path = layout.member(root, entry["file"])
        if path.is_file() and not path.is_symlink():
            present.append(entry)
        elif entry["file"] not in listed:
            problems.append((entry["file"], "listed in the manifest's embeddings.shards but missing"))
    index = {e["file"]: i for i, e in enumerate(entries)}
    from .shard_jobs import Tally

    record_count = doc.get("record_count")
    tally = Tally("verify", record_count if isinstance(record_count, int) else None)
    contexts = {e["file"]: contextvars.copy_context() for e in present}  # progress reaches the caller's sink
    results: list[FileCheck] = list(pool.map(
        lambda e: contexts[e["file"]].run(check_parquet, layout.member(root, e["file"]), e.get("rows"), dims,
                                          f"embeddings.shards[{index[e['file']]}].rows", tally.add, rows), present))
    stats["rows_checked"] = sum(r.rows_checked for r in results)
    previous: tuple[str, str] | None = None  # (file, last id)
    for entry, result in zip(present, results, strict=True):
        rel = entry["file"]
        problems += [(rel, p) for p in result.problems]
        if result.rows_checked and result.rows_checked == result.rows:
            for key, got in (("first_id", result.first_id), ("last_id", result.last_id)):
                if entry.get(key) != got:
                    problems.append((rel, f"its {key.replace('_', ' ')} is {got!r}, the manifest says "
                                     f"{key}={entry.get(key)!r}"))
        if result.first_id is not None and previous is not None and result.first_id <= previous[1]:
            problems.append((rel, f"its first id {result.first_id!r} is not after the last id {previous[1]!r} "
                             f"of {previous[0]} (ids must ascend across shards)"))
        if result.last_id is not None:
            previous = (rel, result.last_id)
    _check_sizes(doc, entries, present, results, problems)
    return problems


def _check_sizes(doc: dict[str, Any], entries: list[dict[str, Any]], present: list[dict[str, Any]],
                 results: list[FileCheck], problems: Problems) -> None:
    shard_rows = _section(doc).get("shard_rows")
    declared = [e.get("rows") for e in entries]
    if isinstance(shard_rows, int) and all(isinstance(n, int) for n in declared):
        for i, (entry, rows) in enumerate(zip(entries, declared, strict=True)):
            last = i == len(entries) - 1
            if (not last and rows != shard_rows) or rows > shard_rows or (rows == 0 and len(entries) > 1):
                problems.append((layout.MANIFEST, f"embeddings.shards[{i}] ({entry['file']}) has {rows} rows; every "
                                 f"shard but the last holds shard_rows={shard_rows}, the last 1 to {shard_rows}"))
    record_count = doc.get("record_count")
    if isinstance(record_count, int):
        if all(isinstance(n, int) for n in declared) and sum(declared) != record_count:
            problems.append((layout.MANIFEST, f"embeddings.shards add up to {sum(declared)} rows, the manifest says "
                             f"record_count={record_count}"))
        if len(present) == len(entries) and all(r.rows is not None for r in results):
            held = sum(r.rows or 0 for r in results)
            if held != record_count and held != sum(n for n in declared if isinstance(n, int)):
                problems.append((layout.MANIFEST, f"the shards hold {held} rows, the manifest says "
                                 f"record_count={record_count}"))
