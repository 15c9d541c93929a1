"""Validation and disaster-recovery drill operations of the front door."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

from engine.errors import os_errors


@os_errors("validate")
def validate(source: str, target: str, *, queries: int = 20, k: int = 10, sample: int | None = None,
             min_overlap: float | None = None, seed: int = 0, report_path: str | Path | None = None
             ) -> dict[str, Any]:
    """Compare ``target`` with ``source`` (store URIs or bundles); ``{"passed","failures","queries","mean_overlap",...}``."""
    from engine.validation import validate as run

    result = run(source, target, queries=queries, k=k, sample=sample, min_overlap=min_overlap, seed=seed,
                 report_path=report_path)
    out = result.to_json()
    if report_path is not None:
        out["report"] = str(report_path)
    return out


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
    md_path = json_path.with_suffix(".md")
    validation = report.get("validation", {})
    lines = [f"# DR drill: {'PASS' if validation.get('passed') else 'FAIL'}", "",
             f"- Source: `{report.get('source')}`", f"- Bundle: `{report.get('bundle')}`",
             f"- Scratch target: `{report.get('scratch')}`",
             f"- Records restored: {report.get('record_count')}",
             f"- Restore time: {report.get('restore_seconds')} s",
             f"- Validation: passed={validation.get('passed')}, mean overlap {validation.get('mean_overlap')}",
             ""]
    for failure in validation.get("failures", []):
        lines.append(f"- failure **{failure.get('check')}**: {failure.get('message')}")
    md_path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return {"report": str(json_path), "markdown": str(md_path)}
