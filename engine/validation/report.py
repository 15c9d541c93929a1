"""The Markdown report of a validation: a summary, then tables (no JSON).

Reports go where the caller says; :func:`default_report_path` gives
``$PROCOS_HOME/reports/validation_<UTC time>.md`` (the folder created 0700), never the current folder.
"""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any

from .result import Validation


def default_report_path() -> Path:
    """A new ``validation_YYYYMMDD_HHMMSS.md`` under ``PROCOS_HOME/reports/`` (folder created, mode 0700)."""
    from engine.config import home_dir

    folder = home_dir() / "reports"
    folder.mkdir(parents=True, exist_ok=True, mode=0o700)
    os.chmod(folder, 0o700)
    stem = f"validation_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}"
    path, n = folder / f"{stem}.md", 2
    while path.exists():
        path, n = folder / f"{stem}_{n}.md", n + 1
    return path


def cell(value: Any) -> str:
    """One table cell: numbers rounded, None as a dash, pipes and newlines escaped."""
    if value is None:
        return "–"
    if isinstance(value, bool):
        return "yes" if value else "no"
    if isinstance(value, float):
        return f"{value:.4f}" if abs(value) >= 1e-3 or value == 0 else f"{value:.2e}"
    if isinstance(value, list | tuple):
        shown = ", ".join(str(v) for v in value[:20])
        return cell(shown + (f", … ({len(value)} in all)" if len(value) > 20 else ""))
    return str(value).replace("|", "\\|").replace("\n", " ")


def table(header: list[str], rows: list[list[Any]]) -> list[str]:
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(cell(v) for v in row) + " |" for row in rows]
    return lines + [""]


def _rule_text(recall: dict[str, Any]) -> str:
    if recall.get("rule") == "vs_source":
        return f"vs_source: target recall >= source recall - {recall.get('tolerance'):g}"
    return f"floor: target recall >= {recall.get('floor'):g}" if recall.get("floor") is not None else "floor"


def summary(result: Validation) -> list[str]:
    exact, recall = result.exact, result.recall
    k = exact.get("k")
    lines = [f"# Validation: {'PASS' if result.passed else 'FAIL'}", ""]
    if result.passed:
        lines.append(f"**PASS**: records, vector hashes and artifacts are identical; the exact top-{k} of "
                     f"{exact.get('queries')} queries is identical on both sides; the target's recall@{k} "
                     f"{cell(recall.get('target'))} meets the rule ({_rule_text(recall)}).")
    else:
        lines.append("**FAIL**, because:")
        lines.append("")
        lines += [f"- **{f['check']}**: {f['message']}" for f in result.failures]
    lines += ["", f"- Source: `{result.source}` ({_side_text(result.sides.get('source'))})",
              f"- Target: `{result.target}` ({_side_text(result.sides.get('target'))})",
              f"- Recall rule applied: {_rule_text(recall)}"]
    q = result.checks.get("queries", {})
    kinds = q.get("kinds", {})
    from_file = f"{kinds.get('file', 0)} from `{q['file']}`" if q.get("file") else "no query file"
    lines.append(f"- Queries: {result.queries} ({kinds.get('stored', 0)} stored vectors, {kinds.get('perturbed', 0)} "
                 f"perturbed, {from_file}), k = {k}, seed {q.get('seed')}")
    return lines + [""]


def _side_text(side: dict[str, Any] | None) -> str:
    if not side:
        return "unknown"
    if side["index"] == "bundle":
        return "bundle: exact by nature"
    if side["index"] == "hnsw":
        return f"hnsw index, ef_search {side.get('ef_search')}"
    return "flat index: exact"


def render_markdown(result: Validation) -> str:
    lines = summary(result)
    lines += _records_section(result)
    lines += _exact_section(result)
    lines += _recall_section(result)
    if result.per_query:
        lines += ["## Per query", ""]
        lines += table(["query #", "kind", "exact match", "overlap", "source recall", "target recall"],
                       [[r["query"], r["kind"], r["exact_match"], r["overlap"], r["source_recall"], r["target_recall"]]
                        for r in result.per_query])
    lines += ["## Failures", ""]
    if not result.failures:
        lines += ["None.", ""]
    else:
        lines += table(["check", "message", "details"],
                       [[f["check"], f["message"], _details(f)] for f in result.failures])
    return "\n".join(lines).rstrip("\n") + "\n"


def _details(failure: dict[str, Any]) -> str:
    parts = []
    for key, value in failure.items():
        if key not in ("check", "message"):
            parts.append(f"{key}: {cell(value)}")
    return "; ".join(parts)


def _records_section(result: Validation) -> list[str]:
    settings = result.checks.get("settings", {})
    src, dst = settings.get("source", {}), settings.get("target", {})
    rec = result.checks.get("records", {})
    art = result.checks.get("artifacts", {})
    rows = [["records", src.get("count"), dst.get("count"), src.get("count") == dst.get("count")],
            ["dimensions", src.get("dimensions"), dst.get("dimensions"), src.get("dimensions") == dst.get("dimensions")],
            ["metric", src.get("metric"), dst.get("metric"), src.get("metric") == dst.get("metric")]]
    if rec:
        rows += [["source ids missing in the target", None, rec["missing"], rec["missing"] == 0],
                 ["target ids not in the source", None, rec["unexpected"], rec["unexpected"] == 0],
                 ["vector hashes checked / differing", rec["hash_checked"], rec["vector_mismatch"],
                  rec["vector_mismatch"] == 0],
                 ["metadata or version differing", None, rec["metadata_mismatch"], rec["metadata_mismatch"] == 0]]
    if art:
        rows += [["artifacts", art["source"], art["target"], art["source"] == art["target"]],
                 ["artifacts missing / unexpected / changed", None,
                  f"{art['missing']} / {art['unexpected']} / {art['changed']}",
                  art["missing"] == art["unexpected"] == art["changed"] == 0]]
    return ["## Records, hashes and artifacts", ""] + table(["check", "source", "target", "ok"], rows)


def _exact_section(result: Validation) -> list[str]:
    exact = result.exact
    lines = ["## Exact check (equivalence of data)", ""]
    if exact.get("skipped"):
        return lines + [f"Not run: {exact['skipped']}.", ""]
    lines += table(["queries", "k", "identical", "mismatched", "mean overlap", "rank agreement",
                    "max score difference", "passed"],
                   [[exact["queries"], exact["k"], exact["queries"] - exact.get("mismatched", 0),
                     exact.get("mismatched", 0), result.mean_overlap, result.rank_agreement, result.max_score_diff,
                     exact["passed"]]])
    if exact.get("mismatches"):
        lines += ["First difference of each mismatched query:", ""]
        lines += table(["query #", "kind", "rank", "source id", "source score", "target id", "target score"],
                       [[m["query"], m["kind"], m["rank"], (m["source"] or {}).get("id"),
                         (m["source"] or {}).get("score"), (m["target"] or {}).get("id"),
                         (m["target"] or {}).get("score")] for m in exact["mismatches"]])
    return lines


def _recall_section(result: Validation) -> list[str]:
    recall = result.recall
    lines = [f"## Recall@{recall.get('k')} (served answers against exact answers)", ""]
    if recall.get("skipped"):
        return lines + [f"Not run: {recall['skipped']}.", ""]
    sides = result.sides
    lines += table(["side", "search", "recall"],
                   [["source", _side_text(sides.get("source")), recall["source"]],
                    ["target", _side_text(sides.get("target")), recall["target"]]])
    lines += table(["rule", "target needs", "target has", "passed"],
                   [[_rule_text(recall), recall["floor"], recall["target"], recall["passed"]]])
    return lines


def write_markdown(result: Validation, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(result), encoding="utf-8")
    return path
