"""A readable Markdown rendering of a validation outcome."""

from __future__ import annotations

import json
from pathlib import Path

from .result import Validation


def render_markdown(result: Validation) -> str:
    lines = [f"# Validation: {'PASS' if result.passed else 'FAIL'}", "",
             f"- Source: `{result.source}`", f"- Target: `{result.target}`",
             f"- Queries: {result.queries}, mean top-k overlap {result.mean_overlap:.4f} "
             f"(min {result.min_overlap:.4f}), rank agreement {result.rank_agreement:.4f}, "
             f"max score difference {result.max_score_diff:.2e}", "", "## Checks", ""]
    for name, detail in result.checks.items():
        lines.append(f"- **{name}**: `{json.dumps(detail, sort_keys=True)}`")
    lines += ["", "## Failures", ""]
    if not result.failures:
        lines.append("None.")
    for failure in result.failures:
        extra = {k: v for k, v in failure.items() if k not in ("check", "message")}
        lines.append(f"- **{failure['check']}**: {failure['message']}"
                     + (f" — `{json.dumps(extra, sort_keys=True)}`" if extra else ""))
    return "\n".join(lines) + "\n"


def write_markdown(result: Validation, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(render_markdown(result), encoding="utf-8")
    return path
