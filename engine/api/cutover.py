"""The cutover's operations (the ``cutover`` process's scripts call these through ``ctx.api``).

The freeze of the source is set and cleared here only (:func:`freeze_source` / :func:`release_source`),
so it can move to a leased freeze (holder and expiry) in one place.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from .stores import opened


def freeze_source(uri: str) -> dict[str, Any]:
    """Refuse writes to ``uri`` from now on (its freeze flag); ``{"uri", "paused", "frozen_at"}`` (epoch seconds)."""
    from .freeze import pause_ingestion

    done = pause_ingestion(uri)
    return {**done, "frozen_at": time.time()}


def release_source(uri: str) -> dict[str, Any]:
    """Take writes on ``uri`` again (a cutover that did not switch)."""
    from .freeze import resume_ingestion

    return resume_ingestion(uri)


def apply_delta(bundle: str | Path, target: str, *, parent: str | None = None,
                trusted_keys: list[str] | None = None) -> dict[str, Any]:
    """Verify delta ``bundle`` and apply it to ``target``, which holds its parent's state (see
    :mod:`engine.snapshot.delta_apply`)."""
    from engine.snapshot.delta_apply import apply_delta as apply

    from .crypto import bundle_access

    with opened(target) as repo:
        return apply(repo, bundle, parent=parent, access=bundle_access(trusted_keys=trusted_keys))


def ship_delta(source: str, base: str | Path, out_dir: str | Path, target: str, *,
               parent: str | None) -> dict[str, Any]:
    """One cutover round: export what changed in ``source`` since bundle ``base`` as a delta into
    ``out_dir`` (signed with ``PROCOS_SIGNING_KEY`` when set) and apply it to ``target``.

    Returns ``{"path", "snapshot_id", "changes", "seconds"}``.
    """
    from .crypto import sign_snapshot
    from .settings import signing_key
    from .snapshots import export_delta

    started = time.perf_counter()
    delta = export_delta(source, base, out_dir)
    key = signing_key()
    if key:
        sign_snapshot(delta["path"], key)
    apply_delta(delta["path"], target, parent=parent)
    return {"path": str(delta["path"]), "snapshot_id": delta["snapshot_id"],
            "changes": int(delta["upserts"]) + int(delta["deletes"]),
            "seconds": round(time.perf_counter() - started, 3)}


def compare_answers(source: str, target: str, *, queries: int = 20, k: int = 10, seed: int = 0,
                    min_overlap: float = 0.8) -> dict[str, Any]:
    """Ask both stores the same queries (stored source vectors): ``{"queries", "mean_overlap", "anomalies":
    [{"query", "overlap", "problem"}]}``; an anomaly is a query whose top-``k`` overlap is below ``min_overlap``
    or that the target cannot answer."""
    import numpy as np

    from engine.errors import ProcosError

    with opened(source) as src:
        ids = [r.id for r in src.iter_records()]
        rng = np.random.default_rng(seed)
        picked = [ids[i] for i in rng.choice(len(ids), size=min(queries, len(ids)), replace=False)] if ids else []
        vectors = {r.id: r.vector for r in src.fetch(picked)}
        answers = {rid: [h.id for h in src.query(vectors[rid], k)] for rid in picked}
    overlaps, anomalies = [], []
    with opened(target) as tgt:
        for rid in picked:
            try:
                got = [h.id for h in tgt.query(vectors[rid], k)]
            except ProcosError as exc:
                anomalies.append({"query": rid, "overlap": 0.0, "problem": f"the target did not answer: {exc.message}"})
                continue
            expected = answers[rid]
            overlap = len(set(got) & set(expected)) / max(1, len(expected))
            overlaps.append(overlap)
            if overlap < min_overlap:
                anomalies.append({"query": rid, "overlap": round(overlap, 3),
                                  "problem": f"top-{k} overlap {overlap:.2f} below {min_overlap}"})
    return {"queries": len(picked), "mean_overlap": round(float(np.mean(overlaps)), 4) if overlaps else None,
            "anomalies": anomalies}


def write_endpoint(path: str | Path, uri: str) -> dict[str, Any]:
    """Set ``VECTOR_ENDPOINT=<uri>`` (password redacted) in the file ``path``, keeping its other lines.

    The file is written aside and renamed over the old one. Returns ``{"file", "endpoint"}``.
    """
    import os

    from engine.secrets import redact_text

    target = Path(path)
    endpoint = redact_text(uri)
    lines = target.read_text(encoding="utf-8").splitlines() if target.is_file() else []
    kept = [line for line in lines if not line.strip().startswith("VECTOR_ENDPOINT=")]
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    tmp.write_text("\n".join([*kept, f"VECTOR_ENDPOINT={endpoint}"]) + "\n", encoding="utf-8")
    os.replace(tmp, target)
    return {"file": str(target), "endpoint": endpoint}


def write_cutover_report(folder: str | Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write the cutover report (JSON, and Markdown beside it) into ``folder``; ``{"report", "markdown"}``."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    path = out / f"cutover_{stamp}_{report.get('instance_id', 'x')}.json"
    path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    md = path.with_suffix(".md")
    rounds = report.get("rounds") or []
    lines = [f"# Cutover: {'PASS' if report.get('passed') else 'FAIL'}", "",
             f"- Source: `{report.get('source')}` (frozen since the switch)", f"- Target: `{report.get('target')}`",
             f"- Write pause (freeze to cutover): {report.get('write_pause_seconds')} s",
             f"- Total duration: {report.get('total_seconds')} s",
             f"- Catch-up rounds: {len(rounds)} (changes per round: {', '.join(str(r['changes']) for r in rounds) or '-'})",
             f"- Validation: passed={report.get('validation_passed')}",
             f"- Monitoring: {report.get('monitor', {}).get('checks', 0)} checks, "
             f"{len(report.get('monitor', {}).get('anomalies', []))} anomalies", ""]
    md.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"report": str(path), "markdown": str(md)}
