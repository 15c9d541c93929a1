"""``procos validate``: prove a target answers like its source (thin shell over engine.api.validate)."""

from __future__ import annotations

import time

import click

from .output import JSON_OPT, emit_json


@click.command()
@click.argument("source")
@click.argument("target")
@click.option("--queries", type=click.IntRange(min=0), default=20, show_default=True,
              help="Random queries (half from stored vectors, half random directions).")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Top-k per query.")
@click.option("--sample", type=click.IntRange(min=1), help="Check the vector hashes of N random records "
              "instead of all (every id is still checked).")
@click.option("--min-overlap", type=click.FloatRange(0, 1), help="Top-k overlap threshold (default: 1.0 per "
              "query for exact indexes, mean 0.95 when either side is approximate).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for queries and samples.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Markdown report file (default: validation_<UTC time>.md in the current folder).")
@JSON_OPT
def validate(source: str, target: str, queries: int, k: int, sample: int | None, min_overlap: float | None,
             seed: int, report_path: str | None, as_json: bool) -> None:
    """Compare TARGET with SOURCE (store URIs or bundles); exit 0 only when validation passes.

    \b
    Checks: counts, dimensions and metric; every id present; vector hashes; artifact checksums;
    top-k overlap, rank agreement and score differences of random queries.
    """
    from engine import api

    path = report_path or f"validation_{time.strftime('%Y%m%d_%H%M%S', time.gmtime())}.md"
    result = api.validate(source, target, queries=queries, k=k, sample=sample, min_overlap=min_overlap,
                          seed=seed, report_path=path)
    if as_json:
        emit_json(result)
    else:
        click.echo(f"{'PASS' if result['passed'] else 'FAIL'}: {result['queries']} queries, mean top-{k} "
                   f"overlap {result['mean_overlap']:.4f}; report: {path}")
        for failure in result["failures"]:
            click.echo(f"  {failure['check']}: {failure['message']}")
    if not result["passed"]:
        raise SystemExit(1)
