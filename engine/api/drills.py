"""Disaster-recovery drill operations of the front door: scratch targets, reports, history, RPO."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from engine.errors import os_errors

from .stores import opened


def scratch_store_uri(base_dir: str | Path) -> str:
    """A URI for a fresh embedded pgvector store under ``base_dir`` (for DR drills)."""
    base = Path(base_dir).resolve()
    base.mkdir(parents=True, exist_ok=True)
    n = 1
    while (base / f"scratch_pg_{n}").exists():
        n += 1
    return f"postgresql+embedded:{base / f'scratch_pg_{n}'}"


@os_errors("write the drill report")
def write_drill_report(out_dir: str | Path, report: dict[str, Any]) -> dict[str, Any]:
    """Write a DR drill report as JSON and Markdown in ``out_dir``; return both paths."""
    folder = Path(out_dir)
    folder.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d_%H%M%S", time.gmtime())
    json_path = folder / f"dr_drill_{stamp}.json"
    n = 2
    while json_path.exists():
        json_path = folder / f"dr_drill_{stamp}_{n}.json"
        n += 1
    json_path.write_text(json.dumps(report, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    _record_drill(json_path, report)
    md_path = json_path.with_suffix(".md")
    validation = report.get("validation", {})
    lines = [f"# DR drill: {'PASS' if validation.get('passed') else 'FAIL'}", "",
             f"- Source: `{report.get('source')}`", f"- Bundle: `{report.get('bundle')}`",
             f"- Scratch target: `{report.get('scratch')}`",
             f"- Records restored: {report.get('record_count')}",
             f"- Restore time: {report.get('restore_seconds')} s",
             f"- RTO (restore + validation until the target answers): {report.get('rto_seconds')} s",
             f"- RPO (age of the newest shipped change): {report.get('rpo_seconds')} s",
             f"- Validation: passed={validation.get('passed')}, mean overlap {validation.get('mean_overlap')}",
             ""]
    for failure in validation.get("failures", []):
        lines.append(f"- failure **{failure.get('check')}**: {failure.get('message')}")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"report": str(json_path), "markdown": str(md_path)}


def _drills_path() -> Path:
    from engine.config import home_dir

    return home_dir() / "reports" / "drills.jsonl"


def _record_drill(path: Path, report: dict[str, Any]) -> None:
    """One line per drill in ``PROCOS_HOME/reports/drills.jsonl`` (``procos drill history``)."""
    from engine.events import append_line, now_iso

    validation = report.get("validation") or {}
    append_line(_drills_path(), {
        "time": now_iso(), "report": str(path), "instance_id": report.get("instance_id"), "source": report.get("source"),
        "passed": bool(report.get("passed")), "record_count": report.get("record_count"),
        "restore_seconds": report.get("restore_seconds"), "rto_seconds": report.get("rto_seconds"),
        "rpo_seconds": report.get("rpo_seconds"), "recall": (validation.get("recall") or {}).get("target")})


def drill_history() -> list[dict[str, Any]]:
    """Every drill's figures, oldest first: ``[{"time", "report", "source", "passed", "record_count",
    "restore_seconds", "rto_seconds", "rpo_seconds", "recall"}]``."""
    path = _drills_path()
    if not path.is_file():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except ValueError:
            continue
    return out


def replication_age(location: str | Path, source: str | None = None) -> float | None:
    """Seconds since the newest change shipped to ``location`` (of ``source``'s store when given), or None."""
    from datetime import UTC, datetime

    from engine.transport.timeline import when_of

    from .transport import list_snapshots

    store_id = None
    if source is not None:
        with opened(source) as repo:
            store_id = repo.store_id
    entries = [e for e in list_snapshots(str(location)) if store_id is None or e.get("store_id") == store_id]
    if not entries:
        return None
    return round((datetime.now(UTC) - max(when_of(e) for e in entries)).total_seconds(), 3)
