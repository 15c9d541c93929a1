"""``procos validate``: prove a target holds what its source holds and serves it well (over engine.api.validate)."""

from __future__ import annotations

import click

from .output import JSON_OPT, emit_json, paint


@click.command()
@click.argument("source")
@click.argument("target")
@click.option("--queries", type=click.IntRange(min=0), default=100, show_default=True,
              help="Queries drawn from the stored vectors: half as they are, half with a little noise.")
@click.option("--queries-file", type=click.Path(exists=True, dir_okay=False),
              help="Also query with the rows of this .npy file (shape (n, d), float32), e.g. real user traffic.")
@click.option("-k", "k", type=click.IntRange(min=1), default=10, show_default=True, help="Top-k per query.")
@click.option("--sample", type=click.IntRange(min=1), help="Check the vector hashes of N random records "
              "instead of all (every id is still checked).")
@click.option("--recall-floor", type=click.FloatRange(0, 1), help="Rule floor: the target's recall@k must be at "
              "least X (default rule, X = 0.95).")
@click.option("--recall-vs-source", type=click.FloatRange(0, 1), metavar="TOL", help="Rule vs_source: the "
              "target's recall@k must be at least the source's minus TOL (instead of a floor).")
@click.option("--min-overlap", type=click.FloatRange(0, 1), help="Loosen the exact check: a query passes when this "
              "share of the source's exact top-k is in the target's (default 1.0: identical ids and ranks).")
@click.option("--seed", type=int, default=0, show_default=True, help="Random seed for queries and samples.")
@click.option("--report", "report_path", type=click.Path(dir_okay=False),
              help="Markdown report file (default: $PROCOS_HOME/reports/validation_<UTC time>.md).")
@JSON_OPT
def validate(source: str, target: str, queries: int, queries_file: str | None, k: int, sample: int | None,
             recall_floor: float | None, recall_vs_source: float | None, min_overlap: float | None, seed: int,
             report_path: str | None, as_json: bool) -> None:
    """Compare TARGET with SOURCE (store URIs or bundles); exit 0 when validation passes, 4 when it fails.

    \b
    Checks: counts, dimensions and metric; every id present; vector hashes; artifact checksums;
    exact check: both sides' exact top-k of the same queries are identical (ties may reorder);
    recall: each side's served top-k against its own exact top-k, the target judged by the rule.

    \b
    Example:
      procos validate faiss:./source postgresql+embedded:./target-pg --recall-floor 0.95 --json
    """
    from engine import api

    if recall_floor is not None and recall_vs_source is not None:
        raise click.UsageError("give --recall-floor or --recall-vs-source, not both")
    path = report_path or str(api.validation_report_path())
    result = api.validate(source, target, queries=queries, k=k, sample=sample, min_overlap=min_overlap,
                          seed=seed, report_path=path, recall_floor=recall_floor, recall_vs_source=recall_vs_source,
                          queries_file=queries_file)
    if as_json:
        emit_json(result)
    else:
        exact, recall = result["exact"], result["recall"]
        line = f"{paint('PASS' if result['passed'] else 'FAIL')}: {result['queries']} queries"
        if not exact.get("skipped"):
            line += (f", exact top-{k} identical for {exact['queries'] - exact['mismatched']} of {exact['queries']}, "
                     f"recall@{k} target {recall['target']:.3f} / source {recall['source']:.3f} "
                     f"(rule {recall['rule']}, needs {recall['floor']:.3f})")
        click.echo(f"{line}; report: {path}")
        for failure in result["failures"]:
            click.echo(f"  {failure['check']}: {failure['message']}")
    if not result["passed"]:
        raise SystemExit(4)  # a check failed
